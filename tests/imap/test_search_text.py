"""IMAP SEARCH BODY and TEXT over every part of a message, as Dovecot searches it.

RFC 3501 / RFC 9051 6.4.4: BODY is the body of the message (everything after its header: part
headers, attached messages, preamble and epilogue, text and message/* parts), TEXT the header
or the body. Each case runs on SQLite and PostgreSQL, on the folder-scan plan and on the index
plan both before the background indexer ran (its pending rows are scanned) and after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage import search_index
from storage.text_indexer import has_pending, index_pending
from tests.imap.helpers import USER, RawClient
from tests.support.harness import LiveServer

ATTACHMENT = (
    "From: a@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\nSubject: tep dinh kem\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nXem tệp.\r\n"
    '--b1\r\nContent-Type: application/pdf; name="=?utf-8?q?T=E1=BB=9D_tr=C3=ACnh.pdf?="\r\n'
    "Content-Disposition: attachment; filename*=utf-8''B%C3%A1o%20c%C3%A1o%20qu%C3%BD.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
)
BOUNCE = (
    "From: MAILER-DAEMON@sotest.gov.vn\r\nTo: vanban@sotest.gov.vn\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
    "--r\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n"
    "--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.sotest.gov.vn\r\n"
    "\r\nFinal-Recipient: rfc822; nguoinhan@khongton.gov.vn\r\nAction: failed\r\n"
    "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n"
    "--r\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: vanban@sotest.gov.vn\r\n"
    "Message-ID: <goc-4711@sotest.gov.vn>\r\nSubject: hop giao ban\r\n--r--\r\n"
)
FORWARDED = (
    "From: b@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\nSubject: chuyen tiep\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n"
    "--f\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
    "--f\r\nContent-Type: message/rfc822\r\n\r\n"
    "From: Phong Nhan Su <nhansu@bo-ngoai.example>\r\n"
    "Subject: =?utf-8?q?K=E1=BA=BF_ho=E1=BA=A1ch_tuy=E1=BB=83n_d=E1=BB=A5ng?=\r\n"
    "X-Ma-Ho-So: HS-2026-0815\r\n\r\nNoi dung ben trong.\r\n--f--\r\n"
)
PREAMBLE = (
    "From: c@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\nSubject: phan mo dau\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=p\r\n\r\n"
    "Thư này theo định dạng MIME (preamble).\r\n"
    "--p\r\nContent-Type: text/plain\r\n\r\nplain\r\n--p--\r\n"
    "Epilogue: ket thuc thu.\r\n"
)
PLAIN = (
    "From: d@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\n"
    "Subject: =?utf-8?q?tuy=E1=BB=83n_d=E1=BB=A5ng?= HS-2026-0815\r\n\r\nnothing else\r\n"
)
MESSAGES = [ATTACHMENT, BOUNCE, FORWARDED, PREAMBLE, PLAIN]

# key: (UIDs BODY finds, UIDs TEXT finds)
CASES = {
    '"bao cao quy"': ({1}, {1}),  # RFC 2231 filename in Content-Disposition
    '"tờ trình"': ({1}, {1}),  # RFC 2047 name in Content-Type
    "application/pdf": ({1}, {1}),
    "nguoinhan@khongton.gov.vn": ({2}, {2}),  # message/delivery-status
    '"mailbox unavailable"': ({2}, {2}),
    "goc-4711@sotest": ({2}, {2}),  # text/rfc822-headers
    '"kế hoạch tuyển dụng"': ({3}, {3}),  # the header of an attached message
    "nhansu@bo-ngoai": ({3}, {3}),
    '"noi dung ben trong"': ({3}, {3}),
    '"tuyen dung"': ({3}, {3, 5}),  # the top-level header is TEXT, not BODY
    "HS-2026-0815": ({3}, {3, 5}),
    '"dinh dang mime"': ({4}, {4}),  # preamble
    '"ket thuc thu"': ({4}, {4}),  # epilogue
    "JVBERi0xLjQK": (set(), set()),  # binary part bodies are not text
}


PLANS = ["folder scan", "index, not yet indexed", "index, indexed"]


async def mailbox_with(
    live_server: LiveServer, plan: str, messages: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> RawClient:
    """A client with INBOX selected after ``messages`` were appended, the index as ``plan`` says."""
    if plan != "folder scan":
        monkeypatch.setattr(search_index, "SCAN_FOLDER_MAX", -1)
    store = live_server.running.instance.store
    indexer = live_server.running.text_indexer
    assert indexer is not None
    await indexer.stop()  # the test decides when the index catches up
    await live_server.add_mailbox(USER)
    client = await RawClient.connect(live_server)
    await client.login()
    for raw in messages:
        await client.send(f"ap APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
        _, status = await client.until(b"ap")
        assert status.startswith(b"OK"), status
    if plan == "index, indexed":
        while await store.write(lambda session: index_pending(session, 100)):
            pass
    assert await store.read(has_pending) is (plan != "index, indexed")
    await client.command("SELECT INBOX")
    return client


@pytest.fixture(params=PLANS)
async def client(
    request: pytest.FixtureRequest, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RawClient]:
    messages = [message.encode() for message in MESSAGES]
    client = await mailbox_with(live_server, str(request.param), messages, monkeypatch)
    try:
        yield client
    finally:
        await client.close()


async def _uids(client: RawClient, criteria: str) -> set[int]:
    untagged, status = await client.command(f"UID SEARCH CHARSET UTF-8 {criteria}")
    assert status.startswith(b"OK"), (criteria, status)
    (line,) = untagged
    return {int(uid) for uid in line.split()[2:]}


async def test_body_and_text_cover_every_part(client: RawClient) -> None:
    for key, (body_uids, text_uids) in CASES.items():
        assert await _uids(client, f"BODY {key}") == body_uids, key
        assert await _uids(client, f"TEXT {key}") == text_uids, key
