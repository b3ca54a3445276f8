"""CONDSTORE/QRESYNC (RFC 7162), ENABLE (RFC 5161) and UTF8=ACCEPT (RFC 6855)."""

from __future__ import annotations

import re

from tests.imap.helpers import SAMPLE, USER, RawClient, deliver
from tests.support.harness import LiveServer


def _modseq(line: bytes) -> int:
    found = re.search(rb"MODSEQ \((\d+)\)", line)
    assert found, line
    return int(found.group(1))


async def test_condstore_store_unchangedsince_and_changedsince(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    for _ in range(3):
        await deliver(live_server, SAMPLE)
    client = await RawClient.connect(live_server)
    await client.login()
    untagged, _ = await client.command("SELECT INBOX (CONDSTORE)")
    highest = [u for u in untagged if b"HIGHESTMODSEQ" in u]
    assert len(highest) == 1
    untagged, _ = await client.command("FETCH 1:3 (FLAGS)")
    before = [_modseq(line) for line in untagged]
    assert before == sorted(before) and len(set(before)) == 3
    untagged, status = await client.command("STORE 2 +FLAGS (\\Seen)")
    assert status == b"OK STORE completed"
    after = _modseq(untagged[0])
    assert after > max(before)
    assert untagged == [b"* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (%d))" % after]
    # RFC 7162 3.1.3 example: a stale UNCHANGEDSINCE fails for that message only.
    untagged, status = await client.command(
        f"STORE 1:2 (UNCHANGEDSINCE {before[0]}) +FLAGS (\\Flagged)"
    )
    assert status == b"OK [MODIFIED 2] Conditional STORE failed for some messages"
    assert len(untagged) == 1
    assert untagged[0].startswith(b"* 1 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ")
    untagged, _ = await client.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {after})")
    assert [re.sub(rb"MODSEQ \(\d+\)", b"M", u) for u in untagged] == [
        b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged) M)"
    ]
    untagged, _ = await client.command(f"SEARCH MODSEQ {after}")
    assert re.fullmatch(rb"\* SEARCH 1 2 \(MODSEQ \d+\)", untagged[0]), untagged
    await client.close()


async def test_qresync_select_reports_vanished_and_changes(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    for _ in range(3):
        await deliver(live_server, SAMPLE)
    client = await RawClient.connect(live_server)
    await client.login()
    untagged, _ = await client.command("ENABLE QRESYNC")
    assert untagged == [b"* ENABLED QRESYNC"]
    untagged, _ = await client.command("SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(untagged)).group(1))  # type: ignore[union-attr]
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(untagged)).group(1))  # type: ignore[union-attr]
    await client.command("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    untagged, _ = await client.command("UID EXPUNGE 1")
    assert untagged == [b"* VANISHED 1"]
    await client.command("UID STORE 3 +FLAGS.SILENT (\\Answered)")
    await client.command("UNSELECT")
    untagged, status = await client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:3))")
    assert status == b"OK [READ-WRITE] SELECT completed"
    assert b"* VANISHED (EARLIER) 1" in untagged
    fetches = [re.sub(rb"MODSEQ \(\d+\)", b"M", u) for u in untagged if b"FETCH" in u]
    assert fetches == [b"* 2 FETCH (UID 3 FLAGS (\\Answered) M)"]
    await client.close()


async def test_utf8_accept_names_and_enable_rules(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    untagged, status = await client.command("ENABLE UTF8=ACCEPT")
    assert status.startswith(b"BAD")  # not before authentication
    await client.login()
    untagged, _ = await client.command("ENABLE UTF8=ACCEPT X-UNKNOWN")
    assert untagged == [b"* ENABLED UTF8=ACCEPT"]
    untagged, _ = await client.command("ENABLE UTF8=ACCEPT")
    assert untagged == [b"* ENABLED"]
    _, status = await client.command('CREATE "Văn bản đến"'.encode())
    assert status == b"OK CREATE completed"
    untagged, _ = await client.command('LIST "" "V*"')
    assert untagged == ['* LIST (\\HasNoChildren) "/" "Văn bản đến"'.encode()]
    untagged, _ = await client.command('STATUS "Văn bản đến" (MESSAGES)'.encode())
    assert untagged == ['* STATUS "Văn bản đến" (MESSAGES 0)'.encode()]
    await client.close()


async def test_imap4rev2_enabled_changes_responses(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, SAMPLE)
    client = await RawClient.connect(protocol_server)
    untagged, _ = await client.command("CAPABILITY")
    assert b" IMAP4rev2 " in untagged[0]
    await client.login()
    untagged, _ = await client.command("ENABLE imap4rev2")
    assert untagged == [b"* ENABLED IMAP4rev2"]
    untagged, _ = await client.command("SELECT INBOX")
    assert not any(b"RECENT" in u or b"[UNSEEN" in u for u in untagged)
    untagged, _ = await client.command("SEARCH UNSEEN")
    assert untagged == [b'* ESEARCH (TAG "t5") ALL 1']
    _, status = await client.command('CREATE "Lưu trữ"'.encode())
    assert status == b"OK CREATE completed"
    untagged, _ = await client.command('LIST "" "L*"')
    assert untagged == ['* LIST (\\HasNoChildren) "/" "Lưu trữ"'.encode()]
    untagged, _ = await client.command("SELECT Archive")
    assert untagged[0] == b"* OK [CLOSED] Previous mailbox is now closed"
    await client.close()
