"""Two sessions on one folder: untagged updates at the moments RFC 3501 7.4.1 allows; IDLE."""

from __future__ import annotations

import asyncio
import time

from tests.imap.helpers import SAMPLE, USER, RawClient, deliver, deliver_smtp, wait_for_line
from tests.support.harness import LiveServer


async def test_idle_wakes_on_delivery_within_a_second(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    client = await RawClient.connect(live_server)
    await client.login()
    await client.command("SELECT INBOX")
    await client.send(b"i1 IDLE\r\n")
    assert (await client.line()).startswith(b"+ ")
    started = time.monotonic()
    await deliver_smtp(live_server, SAMPLE)
    line = await wait_for_line(client, lambda data: data.endswith(b"EXISTS"), deadline=1.0)
    assert line == b"* 1 EXISTS"
    # The SMTP round trip is included: the push itself is well under a second.
    assert time.monotonic() - started < 1.0
    await client.send(b"DONE\r\n")
    untagged, status = await client.until(b"i1")
    assert untagged == [b"* 1 RECENT"]  # after its EXISTS: this session saw it first
    assert status == b"OK IDLE terminated"
    await client.close()


async def test_updates_between_two_sessions(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    for _ in range(3):
        await deliver(live_server, SAMPLE)
    first = await RawClient.connect(live_server)
    second = await RawClient.connect(live_server)
    for client in (first, second):
        await client.login()
        await client.command("SELECT INBOX")
    await first.command("STORE 2 +FLAGS.SILENT (\\Deleted \\Seen)")
    await first.command("EXPUNGE")
    await first.command("STORE 1 FLAGS (\\Flagged)")
    await deliver(live_server, SAMPLE)
    # FETCH without UID: flag changes and EXISTS may come, EXPUNGE must wait (RFC 3501 7.4.1).
    untagged, status = await second.command("FETCH 3 (UID)")
    assert status == b"OK FETCH completed"
    assert untagged == [b"* 3 FETCH (UID 3)", b"* 2 FETCH (FLAGS (\\Deleted \\Seen) UID 2)"]
    untagged, _ = await second.command("NOOP")
    assert untagged == [
        b"* 2 EXPUNGE",
        b"* 1 FETCH (FLAGS (\\Flagged) UID 1)",
        b"* 3 EXISTS",
        b"* 1 RECENT",  # the new message: the second session saw it first
    ]
    untagged, _ = await second.command("UID FETCH 1:* (FLAGS)")
    assert untagged == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged))",
        b"* 2 FETCH (UID 3 FLAGS ())",
        b"* 3 FETCH (UID 4 FLAGS (\\Recent))",
    ]
    await first.close()
    await second.close()


async def test_expunge_withheld_during_fetch_then_sent(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    for _ in range(2):
        await deliver(live_server, SAMPLE)
    first = await RawClient.connect(live_server)
    second = await RawClient.connect(live_server)
    for client in (first, second):
        await client.login()
        await client.command("SELECT INBOX")
    await first.command("UID STORE 1 +FLAGS (\\Deleted)")
    await first.command("UID EXPUNGE 1")
    untagged, _ = await second.command("SEARCH ALL")
    # The \Deleted flag is reported; the EXPUNGE behind it is held back.
    assert untagged == [b"* SEARCH 2", b"* 1 FETCH (FLAGS (\\Deleted) UID 1)"]
    untagged, _ = await second.command("UID SEARCH ALL")
    assert untagged == [b"* SEARCH 2", b"* 1 EXPUNGE"]
    await first.close()
    await second.close()


async def test_drain_says_bye_to_idle_sessions(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    await client.login()
    imap = protocol_server.running.imap
    assert imap is not None
    aborted = await imap.drain(1.0)
    assert aborted == 0
    assert await client.line() == b"* BYE Server shutting down"
    await client.close()
    await asyncio.sleep(0)
