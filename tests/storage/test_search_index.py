"""Vietnamese text search on the text kept at delivery (FTS5 trigram, pg_trgm), on every plan."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from storage import search_index
from storage.search_index import MessageText, TextField, matching_uids
from storage.store import MailStore
from storage.text_fold import exact_query, fold_for_search, fold_query
from storage.text_indexer import index_pending
from tests.storage.test_mailbox_semantics import folder_of, make_mailbox

DOC = (
    "From: =?utf-8?b?VsSDbiB0aMawIFPhu58gS0ggJiBDTg==?= <vanthu@skhcn.gov.vn>\r\n"
    "To: thanhnn.skhcn@sotest.gov.vn\r\n"
    "Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n_s=E1=BB=91_12?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    "Kính gửi Đồng chí Giám đốc: văn bản về hoà giải đường bộ, 100% ngân_sách.\r\n"
).encode()
OTHER = b"Subject: lunch\r\n\r\nnothing to see\r\n"


# Whether ``search`` first lets the background indexer (storage.text_indexer) catch up.
INDEX_BEFORE_SEARCH = False


@pytest.fixture(autouse=True, params=["folder scan", "index, not yet indexed", "index, indexed"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both plans: small folders are scanned, large ones use the index, both
    before the background indexer ran (the scan of the unindexed rows answers) and after (the
    FTS5 or pg_trgm index does)."""
    if request.param != "folder scan":
        monkeypatch.setattr(search_index, "SCAN_FOLDER_MAX", -1)
    monkeypatch.setattr(
        sys.modules[__name__], "INDEX_BEFORE_SEARCH", request.param == "index, indexed"
    )
    return str(request.param)


async def search(store: MailStore, folder_id: int, key: str, field: TextField) -> set[int]:
    if INDEX_BEFORE_SEARCH:
        while await store.write(lambda s: index_pending(s, 100)):
            pass
    needle, exact = fold_query(key), exact_query(key)
    return await store.read(lambda s: matching_uids(s, folder_id, needle, field, None, exact))


@pytest.fixture
async def folder_id(mail_store: MailStore) -> int:
    mailbox_id = await make_mailbox(mail_store, "thanhnn.skhcn@sotest.gov.vn")
    await mail_store.append(mailbox_id, "INBOX", DOC)
    await mail_store.append(mailbox_id, "INBOX", OTHER)
    inbox = await folder_of(mail_store, mailbox_id)
    assert inbox.id is not None
    return inbox.id


@pytest.mark.parametrize(
    "key",
    [
        "van ban",
        "VĂN BẢN",
        "văn bản",
        unicodedata.normalize("NFD", "văn bản"),
        "hòa giải",  # the other tone placement of "hoà"
        "hoà giải",
        "duong bo",  # đ matches d
        "ĐƯỜNG BỘ",
        "Giam doc",
    ],
)
async def test_body_matches_without_case_or_diacritics(
    mail_store: MailStore, folder_id: int, key: str
) -> None:
    assert await search(mail_store, folder_id, key, TextField.BODY) == {1}


async def test_text_covers_headers_and_body_covers_only_the_body(
    mail_store: MailStore, folder_id: int
) -> None:
    assert await search(mail_store, folder_id, "cong van so 12", TextField.TEXT) == {1}
    assert await search(mail_store, folder_id, "cong van so 12", TextField.BODY) == set()
    assert await search(mail_store, folder_id, "van thu so kh", TextField.TEXT) == {1}
    assert await search(mail_store, folder_id, "lunch", TextField.TEXT) == {2}
    assert await search(mail_store, folder_id, "no such words", TextField.TEXT) == set()


async def test_short_needles_and_special_characters(mail_store: MailStore, folder_id: int) -> None:
    assert await search(mail_store, folder_id, "Đồ", TextField.BODY) == {1}  # under a trigram
    assert await search(mail_store, folder_id, "100%", TextField.BODY) == {1}
    assert await search(mail_store, folder_id, "n_s", TextField.BODY) == {1}
    assert await search(mail_store, folder_id, "0%n", TextField.BODY) == set()  # % is literal
    assert await search(mail_store, folder_id, 'a"b', TextField.BODY) == set()
    assert await search(mail_store, folder_id, "", TextField.BODY) == {1, 2}


async def test_search_never_reads_message_bytes(mail_store: MailStore, folder_id: int) -> None:
    for sha in list(mail_store.blobs.all_digests()):
        mail_store.blobs.delete(sha)
    assert await search(mail_store, folder_id, "van ban", TextField.BODY) == {1}


async def test_one_content_is_indexed_once(mail_store: MailStore) -> None:
    an = await make_mailbox(mail_store, "an@sotest.gov.vn")
    binh = await make_mailbox(mail_store, "binh@sotest.gov.vn")
    await mail_store.deliver(DOC, [(an, "INBOX"), (binh, "INBOX")])
    await mail_store.append(an, "Archive", DOC)

    def rows(session: Session) -> list[MessageText]:
        return list(session.exec(select(MessageText)))

    indexed = await mail_store.read(rows)
    assert len(indexed) == 1
    assert "van ban ve hoa giai duong bo" in indexed[0].body
    assert indexed[0].body == fold_for_search(indexed[0].body)


async def test_a_body_with_nul_bytes_is_delivered_and_indexed(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    raw = b"Subject: nul\r\n\r\nbinary\x00junk van\x01ban\r\n"
    appended = await mail_store.deliver(raw, [(mailbox_id, "INBOX")])
    folder_id = appended[0].folder_id
    assert await search(mail_store, folder_id, "binaryjunk", TextField.BODY) == {1}


async def test_only_the_folders_own_messages_match(mail_store: MailStore) -> None:
    an = await make_mailbox(mail_store, "an@sotest.gov.vn")
    binh = await make_mailbox(mail_store, "binh@sotest.gov.vn")
    for n in range(5):
        await mail_store.append(an, "INBOX", f"Subject: {n}\r\n\r\nvăn bản số {n}\r\n".encode())
    await mail_store.append(binh, "INBOX", b"Subject: x\r\n\r\nvan ban of someone else\r\n")
    inbox = await folder_of(mail_store, an)
    assert inbox.id is not None
    assert await search(mail_store, inbox.id, "van ban so", TextField.BODY) == {1, 2, 3, 4, 5}
    assert await search(mail_store, inbox.id, "van ban", TextField.BODY) == {1, 2, 3, 4, 5}


async def test_diacritics_in_the_key_must_be_in_the_text(
    mail_store: MailStore, folder_id: int
) -> None:
    assert await search(mail_store, folder_id, "Đồng chí", TextField.BODY) == {1}
    assert await search(mail_store, folder_id, "hòa giải", TextField.BODY) == {1}  # "hoà"
    assert await search(mail_store, folder_id, "hoá giải", TextField.BODY) == set()
    assert await search(mail_store, folder_id, "dương bộ", TextField.BODY) == set()
    assert await search(mail_store, folder_id, "Công văn", TextField.TEXT) == {1}  # subject
    assert await search(mail_store, folder_id, "Công văn", TextField.BODY) == set()


async def test_rows_from_before_the_exact_columns_match_without_diacritics(
    mail_store: MailStore, folder_id: int
) -> None:
    def forget_exact_text(session: Session) -> None:
        session.execute(text("DELETE FROM message_text_exact"))

    await mail_store.write(forget_exact_text)
    assert await search(mail_store, folder_id, "hoá giải", TextField.BODY) == {1}
    assert await search(mail_store, folder_id, "Công văn", TextField.TEXT) == {1}
