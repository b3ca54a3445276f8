"""Request bodies are bounded before anything reads them, over a real socket (uvicorn).

A client streams a large body; the server must answer (401 without a token, 413 past the
route's limit) long before the body is through. Each test counts the bytes the client managed
to push before the answer came back: socket buffers hold a few MiB at most, so a server that
read the whole body first shows up as the whole body sent.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.tokens import issue_token
from tests.support.harness import LiveServer, start_live_server
from tests.support.harness import test_config as make_config

MIB = 1024 * 1024
BODY_BYTES = 96 * MIB
# Kernel buffers on both ends plus the limit itself: far below the body size.
MAX_PUSHED = 24 * MIB
CHUNK = b"x" * (64 * 1024)


@dataclass
class Answer:
    status: int
    content_type: str
    body: dict[str, object]
    pushed: int  # body bytes the client got out before the answer (or a closed socket)


def _read_answer(sock: socket.socket) -> tuple[int, str, dict[str, object]]:
    raw = b""
    while b"\r\n\r\n" not in raw:
        more = sock.recv(65536)
        if not more:
            break
        raw += more
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    return status, headers.get("content-type", ""), json.loads(rest[:length] or b"{}")


def push_body(
    address: tuple[str, int], path: str, headers: dict[str, str], chunked: bool
) -> Answer:
    """Send a BODY_BYTES body; stop as soon as the server answers or stops the connection."""
    sock = socket.create_connection(address, timeout=20)
    try:
        length = {"Content-Length": str(BODY_BYTES)}
        framing = {"Transfer-Encoding": "chunked"} if chunked else length
        head = f"POST {path} HTTP/1.1\r\nHost: admin.test\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in {**headers, **framing}.items())
        sock.sendall((head + "\r\n").encode())
        piece = (b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n") if chunked else CHUNK
        pending, pushed, pieces_left = b"", 0, BODY_BYTES // len(CHUNK)
        while pending or pieces_left:
            readable, writable, _ = select.select([sock], [sock], [], 20)
            if readable:
                break  # the answer (or the close) has come
            if not writable:
                raise AssertionError("the server neither read nor answered")
            if not pending:
                pending, pieces_left = piece, pieces_left - 1
            try:
                sent = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending, pushed = pending[sent:], pushed + sent
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        status, content_type, body = _read_answer(sock)
        return Answer(status, content_type, body, pushed)
    finally:
        sock.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    config = make_config(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        admin_api={"listen": "127.0.0.1:0", "max_body_bytes": MIB, "max_import_bytes": 2 * MIB},
    )
    live = await start_live_server(config)
    try:
        yield live
    finally:
        await live.running.stop(grace=1.0)


async def system_token(live: LiveServer) -> str:
    store = live.running.instance.store
    return await store.write(lambda s: issue_token(s, "test", "root", "system_admin"))


def assert_problem(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.content_type == "application/problem+json"
    assert answer.body["status"] == status
    assert answer.pushed < MAX_PUSHED, f"{answer.pushed} bytes read before the answer"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_large_body_without_token_is_refused_unread(
    server: LiveServer, chunked: bool
) -> None:
    headers = {"Content-Type": "application/json"}
    answer = await asyncio.to_thread(
        push_body, server.address("admin_api"), "/v1/agencies", headers, chunked
    )
    assert_problem(answer, 401)


async def test_bad_token_is_refused_before_the_body(server: LiveServer) -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer gm_not-a-token"}
    answer = await asyncio.to_thread(
        push_body, server.address("admin_api"), "/v1/mailboxes", headers, False
    )
    assert_problem(answer, 401)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/agencies", "application/json"), ("/v1/imports/staff", "text/csv")],
    ids=["json", "csv-import"],
)
async def test_body_over_the_route_limit_is_cut(
    server: LiveServer, path: str, content_type: str, chunked: bool
) -> None:
    token = await system_token(server)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    answer = await asyncio.to_thread(push_body, server.address("admin_api"), path, headers, chunked)
    assert_problem(answer, 413)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_public_password_change_is_limited_too(server: LiveServer, chunked: bool) -> None:
    headers = {"Content-Type": "application/json"}
    answer = await asyncio.to_thread(
        push_body, server.address("admin_api"), "/v1/password-change", headers, chunked
    )
    assert_problem(answer, 413)
