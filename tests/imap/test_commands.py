"""Command families over a raw connection: exact responses, RFC examples, hostile input."""

from __future__ import annotations

import base64
import re

from tests.imap.helpers import SAMPLE, USER, RawClient, deliver
from tests.support.harness import LiveServer


def _message(subject: str, body: str = "Nội dung văn bản.") -> bytes:
    return (
        f"From: a@sotest.gov.vn\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


async def _append(client: RawClient, folder: str, raw: bytes, flags: str = "") -> bytes:
    await client.send(f"ap APPEND {folder} ({flags}) {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    _, status = await client.until(b"ap")
    return status


async def test_select_responses_and_state_rules(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    untagged, status = await client.command("SELECT INBOX")
    assert status == b"BAD SELECT is not allowed in this state"
    _, status = await client.command("FETCH 1 FLAGS")
    assert status.startswith(b"BAD")
    await client.login()
    _, status = await client.command("FETCH 1 FLAGS")
    assert status == b"BAD FETCH is not allowed in this state"
    untagged, status = await client.command("SELECT INBOX")
    assert status == b"OK [READ-WRITE] SELECT completed"
    assert untagged[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
    assert b"* 0 EXISTS" in untagged
    assert any(re.fullmatch(rb"\* OK \[UIDVALIDITY \d+\] UIDs valid", u) for u in untagged)
    assert b"* OK [UIDNEXT 1] Predicted next UID" in untagged
    _, status = await client.command("EXAMINE Nonexistent")
    assert status.startswith(b"NO [NONEXISTENT]")
    # A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
    _, status = await client.command("FETCH 1 FLAGS")
    assert status.startswith(b"BAD")
    await client.close()


async def test_append_store_search_expunge(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    client = await RawClient.connect(live_server)
    await client.login()
    status = await _append(client, "INBOX", _message("Văn bản số 1"))
    assert re.fullmatch(rb"OK \[APPENDUID \d+ 1\] APPEND completed", status), status
    status = await _append(
        client, "INBOX", _message("Giấy mời họp", "Đề nghị đồng chí dự"), "\\Seen"
    )
    assert re.fullmatch(rb"OK \[APPENDUID \d+ 2\] APPEND completed", status), status
    await client.command("SELECT INBOX")
    untagged, status = await client.command("STORE 1 +FLAGS (\\Deleted $Important)")
    # A new keyword is announced in FLAGS first (RFC 3501 7.2.6).
    assert untagged[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)"
    assert untagged[2:] == [b"* 1 FETCH (FLAGS (\\Recent $Important \\Deleted))"]
    assert status == b"OK STORE completed"
    untagged, _ = await client.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert untagged == []
    # Vietnamese search without regard to case or diacritics, on subject and body.
    untagged, _ = await client.command('SEARCH SUBJECT "VAN BAN"')
    assert untagged == [b"* SEARCH 1"]
    untagged, _ = await client.command("SEARCH CHARSET UTF-8 BODY {12+}\r\nĐỀ NGHỊ".encode())
    assert untagged == [b"* SEARCH 2"]
    # Diacritics typed in the key must be in the text: "dề nghi" is not "đề nghị".
    untagged, _ = await client.command("SEARCH CHARSET UTF-8 BODY {9+}\r\ndề nghi".encode())
    assert untagged == [b"* SEARCH"]
    untagged, _ = await client.command("SEARCH TEXT dong")
    assert untagged == [b"* SEARCH 2"]
    untagged, _ = await client.command("UID SEARCH RETURN (MIN MAX COUNT ALL) OR DELETED FLAGGED")
    assert untagged == [b'* ESEARCH (TAG "t9") UID MIN 1 MAX 2 ALL 1:2 COUNT 2']
    untagged, _ = await client.command("SEARCH NOT SEEN KEYWORD $Important")
    assert untagged == [b"* SEARCH 1"]
    untagged, status = await client.command("EXPUNGE")
    assert untagged == [b"* 1 EXPUNGE"]
    assert status == b"OK EXPUNGE completed"
    untagged, _ = await client.command("FETCH 1 (UID FLAGS)")
    assert untagged == [b"* 1 FETCH (UID 2 FLAGS (\\Recent \\Flagged \\Seen))"]
    _, status = await client.command("FETCH 2 FLAGS")
    assert status == b"BAD Invalid message sequence number"
    await client.close()


async def test_implicit_seen_of_a_fetch_is_reported_once(live_server: LiveServer) -> None:
    """A FETCH of BODY[] sets \\Seen and says so in its own response; the change it made must
    not come back as an update at the next command (only other sessions' changes do). The
    reader selects first, so both messages are \\Recent in its (IMAP4rev1) session only."""
    await live_server.add_mailbox(USER)
    for _ in range(2):
        await deliver(live_server, SAMPLE)
    reader = await RawClient.connect(live_server)
    other = await RawClient.connect(live_server)
    for client in (reader, other):
        await client.login()
        await client.command("SELECT INBOX")
    untagged, status = await reader.command("FETCH 1 (BODY[])")
    assert status == b"OK FETCH completed"
    assert len(untagged) == 1 and untagged[0].startswith(b"* 1 FETCH (")
    assert untagged[0].endswith(b" FLAGS (\\Recent \\Seen))") and SAMPLE in untagged[0]
    untagged, _ = await other.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Seen) UID 1)"]  # the reader's change, once
    untagged, _ = await reader.command("NOOP")
    assert untagged == [b"* 2 FETCH (FLAGS (\\Recent \\Flagged) UID 2)"]
    untagged, _ = await reader.command("FETCH 1 (BODY[])")
    assert len(untagged) == 1 and b"FLAGS" not in untagged[0].replace(SAMPLE, b"")
    await reader.close()
    await other.close()


async def test_copy_move_list_status(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    await deliver(live_server, SAMPLE)
    client = await RawClient.connect(live_server)
    await client.login()
    untagged, status = await client.command('LIST "" "*"')
    assert status == b"OK LIST completed"
    assert b'* LIST (\\HasNoChildren) "/" INBOX' in untagged
    assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent' in untagged
    _, status = await client.command("CREATE Lưu/2026".encode())
    assert status.startswith(b"BAD") or status.startswith(b"NO")  # 8-bit needs UTF8=ACCEPT
    _, status = await client.command("CREATE L&AbA-u/2026")
    assert status == b"OK CREATE completed"
    untagged, _ = await client.command('LIST "" "L&AbA-u*" RETURN (STATUS (MESSAGES UIDNEXT))')
    assert untagged[0] == b'* LIST (\\HasChildren) "/" L&AbA-u'
    assert untagged[1] == b"* STATUS L&AbA-u (MESSAGES 0 UIDNEXT 1)"
    assert untagged[2] == b'* LIST (\\HasNoChildren) "/" L&AbA-u/2026'
    await client.command("SELECT INBOX")
    untagged, status = await client.command("UID COPY 1 L&AbA-u/2026")
    assert re.fullmatch(rb"OK \[COPYUID \d+ 1 1\] UID COPY completed", status), status
    untagged, status = await client.command("MOVE 1 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 1 1\] Moved", untagged[0]), untagged
    assert untagged[1:] == [b"* 1 EXPUNGE"]
    assert status == b"OK MOVE completed"
    untagged, _ = await client.command("STATUS Archive (MESSAGES UNSEEN DELETED)")
    assert untagged == [b"* STATUS Archive (MESSAGES 1 UNSEEN 1 DELETED 0)"]
    _, status = await client.command("COPY 1:* Nowhere")
    assert status.startswith(b"OK")  # empty INBOX: 1:* names nothing
    _, status = await client.command("UID MOVE 1 Nowhere")
    assert status.startswith(b"OK")
    await client.command("SELECT Archive")
    _, status = await client.command("COPY 1 Nowhere")
    assert status.startswith(b"NO [TRYCREATE]")
    await client.close()


async def test_hostile_input_gets_clean_errors(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    _, status = await client.command("FROB")
    assert status.startswith(b"BAD")
    await client.send(b"x" * 70_000 + b"\r\n")
    line = await client.line()
    assert line.startswith(b"* BAD [TOOBIG]")
    await client.send(b"a1 LOGIN {99999999}\r\n")
    line = await client.line()
    assert line.startswith(b"a1 NO [TOOBIG]")
    _, status = await client.command("SEARCH " + "(" * 200 + "ALL" + ")" * 200)
    assert status.startswith(b"BAD")
    await client.login()
    await client.command("SELECT INBOX")
    _, status = await client.command("SEARCH " + "NOT " * 5000 + "ALL")
    assert status.startswith(b"BAD")
    _, status = await client.command("FETCH 1:* (BODY[1.2.3.HEADER.FIELDS (X Y)]<0.10>)")
    assert status == b"OK FETCH completed"
    _untagged, status = await client.command("NOOP")
    assert status == b"OK NOOP completed"
    await client.close()


async def test_authenticate_plain_exchange(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    await client.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert await client.line() == b"+ "
    await client.send(b"*\r\n")
    assert await client.line() == b"a1 BAD AUTHENTICATE cancelled"
    await client.send(b"a2 AUTHENTICATE PLAIN\r\n")
    assert await client.line() == b"+ "
    await client.send(b"not base64!\r\n")
    assert await client.line() == b"a2 BAD Invalid base64 in AUTHENTICATE response"
    other = base64.b64encode(f"boss@sotest.gov.vn\0{USER}\0x".encode())
    _, status = await client.command(b"AUTHENTICATE PLAIN " + other)
    assert status == b"NO [AUTHORIZATIONFAILED] Authorization identity not allowed"
    # Plaintext pipelined behind STARTTLS: tests/imap/test_starttls.py.
    response = base64.b64encode(f"\0{USER}\0Mat-khau#2026".encode())
    _, status = await client.command(b"AUTHENTICATE PLAIN " + response)
    assert status.startswith(b"OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    _, status = await client.command("LOGIN x y")
    assert status == b"BAD LOGIN is not allowed in this state"
    untagged, status = await client.command("LOGOUT")
    assert untagged == [b"* BYE govmail logging out"]
    assert status == b"OK LOGOUT completed"
    await client.close()
