"""SEARCH answered in SQL (index and stored columns) gives what the row-by-row evaluator gives.

Criteria made only of TEXT/BODY and FROM/TO/CC/SUBJECT keys skip loading the folder's rows;
adding ALL to the same criteria sends them through the evaluator (search_eval.Matcher).
"""

from __future__ import annotations

import pytest

from tests.imap.helpers import USER, RawClient
from tests.support.harness import LiveServer

MESSAGES = [
    ("a@sotest.gov.vn", "Văn bản số 1_2", "Kính gửi đồng chí"),
    ("Văn thư <vanthu@skhcn.gov.vn>", "100% ngân sách", "Đề nghị dự họp"),
    ("b@sotest.gov.vn", "Giấy mời", "ngân sách năm 2026"),
]
CRITERIA = [
    'SUBJECT "VAN BAN"',
    'SUBJECT "1_2"',
    'SUBJECT "0%"',
    'SUBJECT "%"',
    "FROM vanthu",
    'FROM "van thu"',
    "TO sotest",
    'CC "x"',
    'SUBJECT "ngan sach" TEXT "du hop"',
    'TEXT "ngan sach" FROM b@sotest',
    "BODY sach",
]


def _message(sender: str, subject: str, body: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
async def client(live_server: LiveServer) -> RawClient:
    await live_server.add_mailbox(USER)
    client = await RawClient.connect(live_server)
    await client.login()
    for sender, subject, body in MESSAGES:
        raw = _message(sender, subject, body)
        await client.send(f"ap APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
        await client.until(b"ap")
    await client.command("SELECT INBOX")
    return client


async def test_sql_answers_match_the_evaluator(client: RawClient) -> None:
    for criteria in CRITERIA:
        fast, status = await client.command(f"UID SEARCH CHARSET UTF-8 {criteria}")
        assert status == b"OK UID SEARCH completed", criteria
        slow, _ = await client.command(f"UID SEARCH CHARSET UTF-8 ALL {criteria}")
        assert fast == slow, criteria
    untagged, _ = await client.command('UID SEARCH SUBJECT "VAN BAN"')
    assert untagged == [b"* SEARCH 1"]
    untagged, _ = await client.command('UID SEARCH TEXT "ngan sach" FROM b@sotest')
    assert untagged == [b"* SEARCH 3"]
    await client.close()
