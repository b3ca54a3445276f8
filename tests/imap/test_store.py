"""STORE over a real connection: new keywords are announced in FLAGS (RFC 3501 7.2.6).

Cases follow Dovecot's imaptest, which checks that every keyword a FETCH shows was announced
in an untagged FLAGS first (copy, select, search-flags, nil groups).
"""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer

MESSAGE = f"From: a@sotest.gov.vn\r\nTo: {USER}\r\nSubject: k\r\n\r\nx\r\n".encode()
FLAGS_WITH_HELLO = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello)"
PERMANENT_WITH_HELLO = (
    b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello \\*)]"
    b" Flags permitted"
)


async def _selected(server: LiveServer) -> RawClient:
    client = await RawClient.connect(server)
    await client.login()
    _, status = await client.command("SELECT INBOX")
    assert status.startswith(b"OK"), status
    return client


async def test_a_new_keyword_is_announced_to_both_sessions(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, MESSAGE)
    storing = await _selected(protocol_server)
    watching = await _selected(protocol_server)

    untagged, status = await storing.command("STORE 1 +FLAGS ($hello)")
    assert status == b"OK STORE completed"
    # \Recent: the storing session selected first, so the message is recent there only.
    assert untagged == [
        FLAGS_WITH_HELLO,
        PERMANENT_WITH_HELLO,
        b"* 1 FETCH (FLAGS (\\Recent $hello))",
    ]

    untagged, _ = await watching.command("NOOP")
    assert untagged == [
        FLAGS_WITH_HELLO,
        PERMANENT_WITH_HELLO,
        b"* 1 FETCH (FLAGS ($hello) UID 1)",
    ]
    # Announced once: the same keyword again needs no new FLAGS.
    untagged, _ = await storing.command("STORE 1 +FLAGS (\\Seen)")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Recent $hello \\Seen))"]
    await storing.close()
    await watching.close()


async def test_append_with_a_new_keyword_announces_it_before_exists(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    client = await _selected(protocol_server)
    await client.send(b"ap APPEND INBOX ($hello) {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    untagged, status = await client.until(b"ap")
    assert status.startswith(b"OK [APPENDUID ")
    assert untagged == [FLAGS_WITH_HELLO, PERMANENT_WITH_HELLO, b"* 1 EXISTS", b"* 1 RECENT"]
    await client.close()


async def test_a_stale_flag_change_is_not_sent_after_the_newer_state(
    protocol_server: LiveServer,
) -> None:
    """imaptest's stress mode: "MODSEQ dropped". Another session's change, still pending here,
    must not follow this session's newer STORE (or FETCH) of the same message."""
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, MESSAGE)
    first = await _selected(protocol_server)
    second = await _selected(protocol_server)
    await first.command("ENABLE CONDSTORE")
    await second.command("STORE 1 +FLAGS.SILENT (\\Seen)")  # pending in the first session
    untagged, _ = await first.command("STORE 1 +FLAGS (\\Flagged)")
    newest = untagged[-1]
    assert b"FLAGS (\\Recent \\Flagged \\Seen)" in newest and b"MODSEQ (" in newest
    untagged, _ = await first.command("NOOP")
    assert untagged == []  # not the older \Seen-only state
    # FETCH too: it shows the newest state, so the older pending change is dropped.
    await second.command("STORE 1 +FLAGS.SILENT (\\Answered)")
    await second.command("STORE 1 +FLAGS.SILENT ($Later)")
    untagged, _ = await first.command("FETCH 1 (FLAGS)")
    assert untagged[-1].startswith(b"* 1 FETCH (FLAGS (\\Recent $Later \\Answered")
    untagged, _ = await first.command("NOOP")
    assert untagged == []
    await first.close()
    await second.close()
