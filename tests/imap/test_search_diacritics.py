"""IMAP SEARCH with Vietnamese diacritics: a key typed without them finds every spelling, a key
typed with them finds only those diacritics (ignoring case, NFC/NFD and old/new tone placement).

"họp" (meeting) must not find "hộp" (box), nor "đồng chí" find "dong chi", while "hop" still
finds all three. Runs on SQLite and PostgreSQL, on the folder-scan plan and on the index plan
before and after the background indexer ran. The UDHR in legacy charsets (VISCII, TCVN3,
Windows-1258) comes from ../shared/corpus and is skipped without it.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from tests.imap.helpers import USER, RawClient
from tests.imap.test_search_text import PLANS, mailbox_with
from tests.support.harness import LiveServer

CORPUS = Path(os.environ.get("GOVMAIL_CORPUS", Path(__file__).parents[3] / "shared" / "corpus"))
DERIVED = CORPUS / "vietnamese-text" / "derived"


def _message(subject: str, body: bytes, charset: str = "utf-8") -> bytes:
    return (
        (
            f"From: a@bo-ngoai.example\r\nTo: {USER}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode()
        + body
        + b"\r\n"
    )


def _utf8(text: str, form: Literal["NFC", "NFD"] = "NFC") -> bytes:
    return unicodedata.normalize(form, text).encode()


def _cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows writes it: base letters, then a combining tone mark."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        decomposed = unicodedata.normalize("NFD", char)
        tones = "".join(c for c in decomposed if c in "\u0300\u0301\u0303\u0309\u0323")
        base = "".join(c for c in decomposed if c not in tones)
        out.append(unicodedata.normalize("NFC", base) + tones)
    return "".join(out).encode("cp1258")


MESSAGES = [
    _message("giao ban", _utf8("Mời dự cuộc họp giao ban.")),
    _message("thong bao", _utf8("Hộp thư của đồng chí đã đầy.", "NFD")),
    _message("=?utf-8?q?H=E1=BB=8Dp_kh=E1=BA=A9n?=", b"hop dong, dong chi"),
    # New tone placement, Windows-1258 style (base letters with combining tone marks).
    _message("cp1258", _cp1258("Hoà bình, chị Thuý."), "windows-1258"),
    _message("old style", _utf8("Hòa giải, anh Thúy.")),
]
CASES = {
    'BODY "họp"': {1},
    'BODY "HỌP"': {1},
    f'BODY "{unicodedata.normalize("NFD", "họp")}"': {1},
    'BODY "hộp"': {2},
    "BODY hop": {1, 2, 3},
    'TEXT "họp"': {1, 3},
    'BODY "đồng chí"': {2},
    'BODY "Đồng Chí"': {2},
    'BODY "dong chi"': {2, 3},
    'BODY "hòa"': {4, 5},
    'BODY "hoà"': {4, 5},
    'BODY "HOÀ BÌNH"': {4},
    'BODY "thuý"': {4, 5},
    'BODY "THÚY"': {4, 5},
    "BODY thuy": {4, 5},
    'BODY "hõa"': set(),
    'BODY "đ"': {2},  # short keys are scanned, with the same filter
}


@pytest.fixture(params=PLANS)
async def client(
    request: pytest.FixtureRequest, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RawClient]:
    client = await mailbox_with(live_server, str(request.param), MESSAGES, monkeypatch)
    try:
        yield client
    finally:
        await client.close()


async def _uids(client: RawClient, criteria: str) -> set[int]:
    command = f"UID SEARCH CHARSET UTF-8 {criteria}".encode()
    untagged, status = await client.command(command)
    assert status.startswith(b"OK"), (criteria, status)
    (line,) = untagged
    return {int(uid) for uid in line.split()[2:]}


async def test_keys_with_diacritics_match_those_diacritics(client: RawClient) -> None:
    for criteria, expected in CASES.items():
        assert await _uids(client, criteria) == expected, criteria


@pytest.mark.skipif(not DERIVED.is_dir(), reason=f"Vietnamese corpus not found at {DERIVED}")
@pytest.mark.parametrize("plan", PLANS)
async def test_legacy_charset_udhr_is_found_by_its_decoded_words(
    live_server: LiveServer, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [
        _message(charset, (DERIVED / f"vie.{name}.txt").read_bytes(), charset)
        for charset, name in (
            ("VISCII", "VISCII"),
            ("TCVN5712-1", "TCVN5712-1"),
            ("windows-1258", "CP1258"),
        )
    ]
    client = await mailbox_with(live_server, plan, messages, monkeypatch)
    try:
        everything = {1, 2, 3}
        assert await _uids(client, 'BODY "nhân phẩm"') == everything
        assert await _uids(client, 'BODY "hòa bình"') == everything  # the text has "hoà bình"
        assert await _uids(client, 'BODY "Tuyên ngôn toàn thế giới"') == everything
        assert await _uids(client, 'BODY "nhan pham"') == everything
        assert await _uids(client, 'BODY "nhấn phẩm"') == set()
    finally:
        await client.close()
