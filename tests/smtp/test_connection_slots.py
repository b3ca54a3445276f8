"""Per-IP connection slots over STARTTLS: a session is one slot, however often TLS is started.

aiosmtpd calls ``connection_made`` a second time after the STARTTLS handshake (with the TLS
transport); counting that call too leaked one slot per session, and after a few dozen ordinary
sessions a busy peer got ``421 Too many connections`` with no socket open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.smtp.helpers import DOMAIN, Dialogue, blocking, client_tls, message
from tests.support.harness import TEST_PASSWORD, LiveServer, serving, start_live_server
from tests.support.harness import test_config as make_config

USER = f"an@{DOMAIN}"
# Five times the per-IP limit (20) would show a leak of one slot per session; 500 sessions (100 on
# submission, where each also logs in) is what a busy peer does in a few minutes. The sessions
# run in five sequential streams at once, well under the limit.
STREAMS = 5
# Outside mail goes to a closed port: it stays queued, never leaves the machine.
NOWHERE: dict[str, object] = {
    "routes": [{"domain": ".example.org", "host": "127.0.0.1", "port": 9, "tls": "none"}]
}

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[LiveServer]:
    async with serving(make_config(tmp_path / "data", db_url, routing=NOWHERE), USER) as live:
        yield live


def _starttls_sessions(address: tuple[str, int], count: int, login: bool) -> list[str]:
    """``count`` sequential sessions (STARTTLS, one message, QUIT); the failures, as text."""
    failures: list[str] = []
    sender = USER if login else "someone@example.org"
    raw = message(sender, USER)
    for index in range(count):
        try:
            with smtplib.SMTP(*address, timeout=10) as client:
                client.starttls(context=client_tls())
                if login:
                    client.login(USER, TEST_PASSWORD)
                refused = client.sendmail(sender, [USER], raw)
                if refused:
                    failures.append(f"{index}: {refused}")
        except smtplib.SMTPException as exc:
            failures.append(f"{index}: {exc!r}")
    return failures


def _live_slots(server: LiveServer, listener: str) -> int:
    (tracker,) = [t for t in server.running.trackers if t.name == listener]
    return sum(tracker.per_ip.values())


@pytest.mark.parametrize(
    ("listener", "login", "sessions"),
    [("smtp_mx", False, 500), ("smtp_submission", True, 100)],
)
async def test_sequential_starttls_sessions_never_run_out_of_slots(
    server: LiveServer, listener: str, login: bool, sessions: int
) -> None:
    address = server.address(listener)
    streams = [
        blocking(_starttls_sessions, address, sessions // STREAMS, login) for _ in range(STREAMS)
    ]
    failures = [failure for stream in await asyncio.gather(*streams) for failure in stream]
    assert failures == []


@pytest.mark.parametrize("listener", ["smtp_mx", "smtp_submission"])
async def test_the_limit_still_refuses_the_21st_simultaneous_connection(
    server: LiveServer, listener: str
) -> None:
    address = server.address(listener)
    limit = server.config.smtp.max_connections_per_ip
    assert limit == 20
    opened: list[Dialogue] = []
    try:
        for _ in range(limit):
            dialogue = await Dialogue.open(address)
            assert await dialogue.last("STARTTLS") == "220 2.0.0 Ready to start TLS"
            await dialogue.writer.start_tls(client_tls())
            assert (await dialogue.send("EHLO client.example.org"))[-1].startswith("250 ")
            opened.append(dialogue)
        assert _live_slots(server, listener) == limit
        refused = Dialogue(*await asyncio.open_connection(*address))
        assert await refused.reply() == ["421 4.7.0 Too many connections from your address"]
        assert await refused.reply() == ["<closed>"]
        await refused.close()
    finally:
        for dialogue in opened:
            await dialogue.close()


@pytest.mark.parametrize("hello", [False, True])
async def test_a_starttls_left_unfinished_until_the_timeout_frees_its_slot(
    tmp_path: Path, db_url: str, hello: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The command timeout ends a handshake the client never finishes (with or without its
    ClientHello): aiosmtpd's STARTTLS then returned as if the handshake had succeeded, and the
    session waited for ever on a transport that was gone, holding its slot."""
    caplog.set_level(logging.INFO)
    config = make_config(tmp_path / "d", db_url, smtp={"command_timeout_seconds": 0.3})
    live = await start_live_server(config)
    try:
        dialogue = await Dialogue.open(live.address("smtp_mx"))
        assert await dialogue.last("STARTTLS") == "220 2.0.0 Ready to start TLS"
        if hello:
            outgoing = ssl.MemoryBIO()
            tls = client_tls().wrap_bio(ssl.MemoryBIO(), outgoing)
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()
            dialogue.writer.write(outgoing.read())
        await dialogue.reader.read()  # until the server hangs up
        await dialogue.close()
        (tracker,) = [t for t in live.running.trackers if t.name == "smtp_mx"]
        assert await tracker.drain(grace=5.0) == 0  # ended by itself, nothing left to cut
        assert tracker.per_ip == {}
        assert "event=starttls_failed listener=smtp_mx peer=127.0.0.1" in caplog.text
    finally:
        await live.running.stop(grace=1.0)
