"""SELECT, EXAMINE and STATUS over a real connection: \\Recent (RFC 3501 2.3.2, 7.3.2).

A message is \\Recent in exactly one IMAP4rev1 session, the first to see it; EXAMINE and STATUS
only look. Cases follow Dovecot's imaptest scripted groups (select, copy, search-flags).
"""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer

MESSAGE = f"From: a@sotest.gov.vn\r\nTo: {USER}\r\nSubject: r\r\n\r\nx\r\n".encode()


async def _client(server: LiveServer) -> RawClient:
    client = await RawClient.connect(server)
    await client.login()
    return client


async def test_examine_shows_recent_and_select_claims_it(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    for _ in range(2):
        await deliver(protocol_server, MESSAGE)
    client = await _client(protocol_server)
    untagged, _ = await client.command("EXAMINE INBOX")
    assert b"* 2 RECENT" in untagged
    untagged, _ = await client.command("FETCH 1:2 FLAGS")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Recent))", b"* 2 FETCH (FLAGS (\\Recent))"]
    await client.command("CLOSE")
    untagged, _ = await client.command("STATUS INBOX (MESSAGES RECENT)")
    assert untagged == [b"* STATUS INBOX (MESSAGES 2 RECENT 2)"]

    untagged, _ = await client.command("SELECT INBOX")
    assert b"* 2 RECENT" in untagged
    untagged, _ = await client.command("SEARCH RECENT")
    assert untagged == [b"* SEARCH 1 2"]
    # Claimed: no other session sees them as recent, and STATUS counts none.
    other = await _client(protocol_server)
    untagged, _ = await other.command("STATUS INBOX (RECENT)")
    assert untagged == [b"* STATUS INBOX (RECENT 0)"]
    untagged, _ = await other.command("SELECT INBOX")
    assert b"* 0 RECENT" in untagged
    untagged, _ = await other.command("SEARCH OLD")
    assert untagged == [b"* SEARCH 1 2"]
    await client.close()
    await other.close()


async def test_new_mail_is_recent_in_the_first_session_to_see_it(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    first = await _client(protocol_server)
    second = await _client(protocol_server)
    await first.command("SELECT INBOX")
    await second.command("SELECT INBOX")
    await deliver(protocol_server, MESSAGE)
    untagged, _ = await first.command("NOOP")
    assert untagged == [b"* 1 EXISTS", b"* 1 RECENT"]
    untagged, _ = await second.command("NOOP")
    assert untagged == [b"* 1 EXISTS"]
    untagged, _ = await first.command("FETCH 1 FLAGS")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Recent))"]
    untagged, _ = await second.command("FETCH 1 FLAGS")
    assert untagged == [b"* 1 FETCH (FLAGS ())"]
    untagged, _ = await first.command("SEARCH NEW")
    assert untagged == [b"* SEARCH 1"]
    untagged, _ = await second.command("SEARCH NEW")
    assert untagged == [b"* SEARCH"]
    await first.close()
    await second.close()


async def test_imap4rev2_sessions_have_no_recent(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, MESSAGE)
    client = await _client(protocol_server)
    await client.command("ENABLE IMAP4rev2")
    untagged, _ = await client.command("SELECT INBOX")
    assert not any(line.endswith(b" RECENT") for line in untagged)
    untagged, _ = await client.command("FETCH 1 FLAGS")
    assert untagged == [b"* 1 FETCH (FLAGS ())"]
    # Not claimed either: the next IMAP4rev1 session still gets it.
    other = await _client(protocol_server)
    untagged, _ = await other.command("SELECT INBOX")
    assert b"* 1 RECENT" in untagged
    await client.close()
    await other.close()
