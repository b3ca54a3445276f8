"""Debian's swaks as the client: MX delivery with DSN parameters, and submission over STARTTLS
with AUTH PLAIN and LOGIN. Skipped (failed in CI) where swaks is not installed."""

from __future__ import annotations

import asyncio

import pytest

from tests.smtp.helpers import DOMAIN, folder_messages
from tests.support.harness import TEST_PASSWORD, LiveServer
from tests.support.requirements import require_program

pytestmark = pytest.mark.clients
USER = f"an@{DOMAIN}"


@pytest.fixture(autouse=True)
def _swaks_installed() -> None:
    require_program("swaks", "swaks")


async def swaks(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "swaks",
        "--timeout",
        "10",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode("utf-8", "replace")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_swaks_against_mx_and_submission(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    host, port = live_server.address("smtp_mx")
    code, out = await swaks(
        "--server",
        f"{host}:{port}",
        "--from",
        "x@example.org",
        "--to",
        USER,
        "--pipeline",
        "--header",
        "Subject: qua swaks",
        "--body",
        "Xin chao",
    )
    assert code == 0, out
    assert "\n<-  250 2.0.0 OK queued as " in out
    code, out = await swaks(
        "--server",
        f"{host}:{port}",
        "--from",
        "x@example.org",
        "--to",
        f"nobody@{DOMAIN}",
    )
    assert code == 24  # swaks: the only recipient was refused
    assert "<** 550 5.1.1 Recipient address rejected: user unknown" in out

    host, port = live_server.address("smtp_submission")
    for mechanism in ("PLAIN", "LOGIN"):
        code, out = await swaks(
            "--server",
            f"{host}:{port}",
            "--tls",
            "--auth",
            mechanism,
            "--auth-user",
            USER,
            "--auth-password",
            TEST_PASSWORD,
            "--from",
            USER,
            "--to",
            USER,
            "--header",
            f"Subject: {mechanism}",
        )
        assert code == 0, out
        assert "<~  235 2.7.0 Authentication successful" in out
    code, out = await swaks(
        "--server",
        f"{host}:{port}",
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        TEST_PASSWORD,
        "--from",
        f"other@{DOMAIN}",
        "--to",
        USER,
    )
    assert "<~* 553 5.7.1 Sender address not owned by the authenticated user" in out
    subjects = [
        m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
        for m in await folder_messages(live_server, USER)
    ]
    assert subjects == [b"qua swaks", b"PLAIN", b"LOGIN"]
