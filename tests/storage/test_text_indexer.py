"""The background text indexer: a watermark in step with FTS5, exact search, migration 0009.

Deliveries write message_text rows only; storage.text_indexer moves them into message_text_fts
later. Search must be exact before and after, the FTS index must stay consistent with its
content table whatever is deleted, and the indexer must catch up and then wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import Session

from mailserver.config import SearchSection
from storage import search_index
from storage.blobs import BlobStore
from storage.db import Database, open_database
from storage.schema import alembic_config, upgrade_to_head
from storage.search_index import TextField, matching_uids
from storage.store import MailStore
from storage.text_fold import fold_query
from storage.text_indexer import (
    TextIndexer,
    has_pending,
    index_pending,
    indexed_upto,
    start_text_indexer,
)
from tests.conftest import migrated_store
from tests.storage.test_mailbox_semantics import folder_of, make_mailbox

T = TypeVar("T")
# The heads before migration 0009 (parallel branches off 0001).
HEADS_BEFORE_0009 = ("0002", "0005", "0007", "0008", "0012", "0013")  # the models need 0012, 0013


def note(n: int, words: str = "van ban") -> bytes:
    return f"Subject: note {n}\r\n\r\n{words} so {n} marker{n}x\r\n".encode()


@pytest.fixture(autouse=True)
def index_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folder here is "large": TEXT/BODY search takes the index plan."""
    monkeypatch.setattr(search_index, "SCAN_FOLDER_MAX", -1)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[MailStore]:
    url = f"sqlite:///{tmp_path / 'govmail.sqlite3'}"
    async with migrated_store(url, tmp_path / "blobs") as store:
        yield store


async def inbox_with(store: MailStore, count: int) -> tuple[int, int]:
    """(mailbox id, INBOX folder id) after ``count`` distinct notes were appended."""
    mailbox_id = await make_mailbox(store, "an@sotest.gov.vn")
    for n in range(1, count + 1):
        await store.append(mailbox_id, "INBOX", note(n))
    folder = await folder_of(store, mailbox_id)
    assert folder.id is not None
    return mailbox_id, folder.id


def index_plan_uids(session: Session, folder_id: int, key: str, field: TextField) -> list[int]:
    """What the index plan's statement returns: one row per matching message, no set."""
    return sorted(search_index._index_plan(session, folder_id, fold_query(key), field))


async def search(store: MailStore, folder_id: int, key: str, field: TextField) -> set[int]:
    return await store.read(lambda s: matching_uids(s, folder_id, fold_query(key), field))


def fts_rowids(session: Session, phrase: str) -> list[int]:
    """The rowids the FTS5 table itself holds for a phrase (duplicates kept)."""
    rows = session.execute(
        text("SELECT rowid FROM message_text_fts WHERE message_text_fts MATCH :m ORDER BY rowid"),
        {"m": f'"{phrase}"'},
    )
    return [int(row[0]) for row in rows]


def fts_consistent(session: Session) -> bool:
    """FTS5 'integrity-check' against the content table (sqlite.org/fts5.html, 6.8).

    The rank value 1 makes it compare the index with message_text: the plain form checks only
    the index's own structure on SQLite 3.40 and passes even with rows missing or a bogus
    'delete' applied. So this fails whenever a row is not indexed: index everything first.
    """
    try:
        session.execute(
            text(
                "INSERT INTO message_text_fts(message_text_fts, rank) VALUES('integrity-check', 1)"
            )
        )
    except Exception as exc:
        if "malformed" in str(exc):
            return False
        raise
    return True


def text_ids(session: Session) -> list[int]:
    return [int(row[0]) for row in session.execute(text("SELECT id FROM message_text ORDER BY id"))]


def delete_texts(session: Session, ids: list[int]) -> None:
    """No code deletes message_text rows yet (blobs are never swept); a sweep would do this."""
    for text_id in ids:
        session.execute(text("DELETE FROM message_text WHERE id = :id"), {"id": text_id})


async def index_all(store: MailStore) -> int:
    total = 0
    while count := await store.write(lambda s: index_pending(s, 1000)):
        total += count
    return total


async def eventually(condition: Callable[[], bool], what: str, tries: int = 500) -> None:
    """Wait for ``condition``: a bounded loop letting the indexer run, not a timed sleep."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# ---------------------------------------------------------------- search before and after


async def test_text_not_yet_indexed_is_found_and_then_found_once(mail_store: MailStore) -> None:
    _, folder_id = await inbox_with(mail_store, 3)
    sqlite = mail_store.db.is_sqlite
    assert await mail_store.read(has_pending)
    if sqlite:
        assert await mail_store.read(lambda s: fts_rowids(s, "van ban")) == []
    for field in (TextField.BODY, TextField.TEXT):
        assert await search(mail_store, folder_id, "văn bản số 2", field) == {2}
        assert await search(mail_store, folder_id, "marker3x", field) == {3}
        assert await search(mail_store, folder_id, "van ban", field) == {1, 2, 3}
        assert await search(mail_store, folder_id, "no such words", field) == set()
    assert await search(mail_store, folder_id, "note 1", TextField.TEXT) == {1}
    assert await search(mail_store, folder_id, "note 1", TextField.BODY) == set()

    assert await index_all(mail_store) == 3
    if sqlite:
        assert await mail_store.read(lambda s: fts_rowids(s, "van ban")) == [1, 2, 3]
    for field in (TextField.BODY, TextField.TEXT):
        plan = await mail_store.read(
            partial(index_plan_uids, folder_id=folder_id, key="van ban", field=field)
        )
        assert plan == [1, 2, 3]  # each message once: from the index, not also from the tail
        assert await search(mail_store, folder_id, "văn bản số 2", field) == {2}

    # Half indexed: the index answers for some, the tail scan for the others, once each.
    mailbox_id = await make_mailbox(mail_store, "binh@sotest.gov.vn")
    for n in range(4, 7):
        await mail_store.append(mailbox_id, "INBOX", note(n))
    await mail_store.append(mailbox_id, "INBOX", note(1))  # a content indexed long ago
    other = await folder_of(mail_store, mailbox_id)
    assert other.id is not None
    assert await mail_store.write(lambda s: index_pending(s, 1)) == 1
    plan = await mail_store.read(
        lambda s: index_plan_uids(s, other.id or 0, "van ban", TextField.BODY)
    )
    assert plan == [1, 2, 3, 4]
    assert await search(mail_store, other.id, "marker1x", TextField.BODY) == {4}
    assert await search(mail_store, folder_id, "marker4x", TextField.BODY) == set()


async def test_the_same_content_twice_in_a_folder_not_yet_indexed(sqlite_store: MailStore) -> None:
    mailbox_id, folder_id = await inbox_with(sqlite_store, 1)
    await sqlite_store.append(mailbox_id, "INBOX", note(1))  # same bytes: one text row
    await sqlite_store.append(mailbox_id, "INBOX", note(2))
    plan = await sqlite_store.read(
        lambda s: index_plan_uids(s, folder_id, "marker1x", TextField.TEXT)
    )
    assert plan == [1, 2]
    await index_all(sqlite_store)
    plan = await sqlite_store.read(
        lambda s: index_plan_uids(s, folder_id, "marker1x", TextField.TEXT)
    )
    assert plan == [1, 2]


# ---------------------------------------------------------------- index_pending


async def test_index_pending_advances_the_watermark_within_its_limit(
    sqlite_store: MailStore,
) -> None:
    _, folder_id = await inbox_with(sqlite_store, 5)
    ids = await sqlite_store.read(text_ids)
    assert len(ids) == 5
    assert await sqlite_store.read(indexed_upto) == 0

    assert await sqlite_store.write(lambda s: index_pending(s, 2)) == 2
    assert await sqlite_store.read(indexed_upto) == ids[1]
    assert await sqlite_store.read(lambda s: fts_rowids(s, "van ban")) == ids[:2]
    assert await sqlite_store.write(lambda s: index_pending(s, 0)) == 0
    assert await sqlite_store.read(indexed_upto) == ids[1]

    assert await sqlite_store.write(lambda s: index_pending(s, 2)) == 2
    assert await sqlite_store.write(lambda s: index_pending(s, 2)) == 1  # short: none left
    assert await sqlite_store.read(indexed_upto) == ids[4]
    assert not await sqlite_store.read(has_pending)
    for _ in range(2):  # idempotent: nothing is indexed twice
        assert await sqlite_store.write(lambda s: index_pending(s, 64)) == 0
    assert await sqlite_store.read(indexed_upto) == ids[4]
    assert await sqlite_store.read(lambda s: fts_rowids(s, "van ban")) == ids
    assert await sqlite_store.read(fts_consistent)
    assert await search(sqlite_store, folder_id, "van ban", TextField.BODY) == {1, 2, 3, 4, 5}


async def test_a_rolled_back_chunk_leaves_the_watermark(sqlite_store: MailStore) -> None:
    await inbox_with(sqlite_store, 3)

    def index_then_fail(session: Session) -> None:
        assert index_pending(session, 2) == 2
        raise RuntimeError("the rest of the write job failed")

    with pytest.raises(RuntimeError):
        await sqlite_store.write(index_then_fail)
    assert await sqlite_store.read(indexed_upto) == 0
    assert await sqlite_store.read(lambda s: fts_rowids(s, "van ban")) == []
    assert await index_all(sqlite_store) == 3
    assert await sqlite_store.read(fts_consistent)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_on_postgresql_rows_are_marked_oldest_first_and_the_index_plan_sees_both(
    mail_store: MailStore,
) -> None:
    """PostgreSQL (migration 0011): a delivery's row is unmarked, index_pending marks the
    oldest ones within its limit, and the GIN-index plan finds marked and unmarked alike."""
    _, folder_id = await inbox_with(mail_store, 3)

    def marks(session: Session) -> list[bool]:
        rows = session.execute(text("SELECT indexed FROM message_text ORDER BY id"))
        return [bool(row[0]) for row in rows]

    def found(session: Session) -> list[int]:  # the index plan (the autouse fixture)
        return index_plan_uids(session, folder_id, "van ban", TextField.BODY)

    assert await mail_store.read(marks) == [False, False, False]
    assert await mail_store.read(has_pending)
    everything = await mail_store.read(found)
    assert everything == [1, 2, 3]
    assert await mail_store.write(lambda s: index_pending(s, 2)) == 2
    assert await mail_store.read(marks) == [True, True, False]
    assert await mail_store.read(found) == everything
    assert await mail_store.write(lambda s: index_pending(s, 2)) == 1  # short: none left
    assert not await mail_store.read(has_pending)
    assert await mail_store.read(found) == everything
    assert await mail_store.read(indexed_upto) is None  # no watermark there


# ---------------------------------------------------------------- deletes keep FTS consistent


async def test_the_integrity_check_does_see_a_bogus_delete(sqlite_store: MailStore) -> None:
    """Control for the tests below: an FTS5 'delete' of a row never indexed is detected."""
    await inbox_with(sqlite_store, 2)
    await sqlite_store.write(lambda s: index_pending(s, 1))

    def bogus_delete(session: Session) -> None:
        session.execute(
            text(
                "INSERT INTO message_text_fts(message_text_fts, rowid, headers, body) "
                "SELECT 'delete', id, headers, body FROM message_text WHERE id = 2"
            )
        )

    await sqlite_store.write(bogus_delete)
    await index_all(sqlite_store)
    assert not await sqlite_store.read(fts_consistent)


async def test_deleting_text_never_indexed_keeps_fts_consistent(sqlite_store: MailStore) -> None:
    _, folder_id = await inbox_with(sqlite_store, 4)
    await sqlite_store.write(lambda s: index_pending(s, 2))
    ids = await sqlite_store.read(text_ids)
    await sqlite_store.write(lambda s: delete_texts(s, [ids[2]]))  # above the watermark
    await sqlite_store.write(lambda s: delete_texts(s, [ids[0]]))  # below it
    assert await index_all(sqlite_store) == 1
    assert await sqlite_store.read(fts_consistent)
    assert await sqlite_store.read(lambda s: fts_rowids(s, "van ban")) == [ids[1], ids[3]]
    assert await search(sqlite_store, folder_id, "van ban", TextField.BODY) == {2, 4}
    assert await search(sqlite_store, folder_id, "marker3x", TextField.BODY) == set()


async def test_an_id_given_again_after_deletes_is_still_indexed(sqlite_store: MailStore) -> None:
    """SQLite gives a new row the highest id plus one, so deleting the highest rows makes their
    ids come back; the watermark must then be below them or they would never be indexed."""
    mailbox_id, folder_id = await inbox_with(sqlite_store, 4)
    ids = await sqlite_store.read(text_ids)
    await sqlite_store.write(lambda s: index_pending(s, 2))
    # The watermark's own row goes while rows above it wait, then those go too: the highest id
    # left is below the watermark, and the next row would reuse the watermark's id.
    await sqlite_store.write(lambda s: delete_texts(s, [ids[1]]))
    await sqlite_store.write(lambda s: delete_texts(s, [ids[3], ids[2]]))
    assert await sqlite_store.read(indexed_upto) == ids[0]
    await sqlite_store.append(mailbox_id, "INBOX", note(9, "giay moi"))
    assert (await sqlite_store.read(text_ids))[-1] == ids[1]  # reused
    assert await search(sqlite_store, folder_id, "giay moi", TextField.BODY) == {5}
    assert await index_all(sqlite_store) == 1
    assert await sqlite_store.read(fts_consistent)
    assert await search(sqlite_store, folder_id, "giay moi", TextField.BODY) == {5}

    # All indexed, the highest deleted in one statement: its id comes back and is indexed too.
    await sqlite_store.append(mailbox_id, "INBOX", note(10, "giay moi"))
    await index_all(sqlite_store)
    ids = await sqlite_store.read(text_ids)

    def delete_top_two(session: Session) -> None:
        session.execute(text("DELETE FROM message_text WHERE id >= :id"), {"id": ids[-2]})

    await sqlite_store.write(delete_top_two)
    assert await sqlite_store.read(indexed_upto) == ids[-3]
    await sqlite_store.append(mailbox_id, "INBOX", note(11, "cong van"))
    assert (await sqlite_store.read(text_ids))[-1] == ids[-2]
    assert await search(sqlite_store, folder_id, "cong van", TextField.BODY) == {7}
    assert await index_all(sqlite_store) == 1
    assert await sqlite_store.read(fts_consistent)
    assert await search(sqlite_store, folder_id, "cong van", TextField.BODY) == {7}


# ---------------------------------------------------------------- the asyncio driver


async def test_the_indexer_catches_up_then_waits_for_wake(sqlite_store: MailStore) -> None:
    mailbox_id, folder_id = await inbox_with(sqlite_store, 10)
    busy_calls: list[bool] = []

    def busy() -> bool:
        busy_calls.append(True)
        return len(busy_calls) % 2 == 0  # every other chunk waits as if deliveries queued

    indexer = TextIndexer(
        sqlite_store,
        batch=3,
        pause_seconds=0,
        busy_pause_seconds=0.001,
        poll_seconds=3600,  # only wake() can start another pass within the test
        busy=busy,
    )
    task = indexer.start()
    try:
        await eventually(lambda: indexer.indexed == 10, "the first ten indexed")
        assert not await sqlite_store.read(has_pending)
        assert len(busy_calls) == 4  # chunks of 3, 3, 3 and a short one of 1
        assert await sqlite_store.read(lambda s: len(fts_rowids(s, "van ban"))) == 10

        await sqlite_store.append(mailbox_id, "INBOX", note(11))
        for _ in range(20):
            await asyncio.sleep(0)
        assert indexer.indexed == 10 and not task.done()  # waiting: no wake, no poll yet
        indexer.wake()
        await eventually(lambda: indexer.indexed == 11, "the wake-up's message indexed")
        assert await sqlite_store.read(fts_consistent)
        plan = await sqlite_store.read(
            lambda s: index_plan_uids(s, folder_id, "marker11x", TextField.BODY)
        )
        assert plan == [11]
    finally:
        await indexer.stop()
    assert task.cancelled()  # stopped cleanly: cancelled while waiting, nothing raised


async def test_the_indexer_polls_for_other_processes_mail(sqlite_store: MailStore) -> None:
    await inbox_with(sqlite_store, 1)
    indexer = TextIndexer(sqlite_store, pause_seconds=0, poll_seconds=0.01)
    indexer.start()
    try:
        await eventually(lambda: indexer.indexed == 1, "the first message indexed")
        mailbox_id = await make_mailbox(sqlite_store, "binh@sotest.gov.vn")
        await sqlite_store.append(mailbox_id, "INBOX", note(2))  # no wake(): as another process
        await eventually(lambda: indexer.indexed == 2, "the poll finding the second")
    finally:
        await indexer.stop()


async def test_the_indexer_survives_a_failure(
    sqlite_store: MailStore, caplog: pytest.LogCaptureFixture
) -> None:
    await inbox_with(sqlite_store, 2)
    failures = [RuntimeError("disk I/O error")]

    def busy() -> bool:
        if failures:
            raise failures.pop()
        return False

    indexer = TextIndexer(sqlite_store, pause_seconds=0, poll_seconds=0.01, busy=busy)
    with caplog.at_level(logging.WARNING, logger="storage.text_indexer"):
        indexer.start()
        try:
            await eventually(lambda: indexer.indexed == 2, "indexing after the failure")
        finally:
            await indexer.stop()
    assert "event=text_index_failed error=RuntimeError('disk I/O error')" in caplog.text


async def test_start_text_indexer_takes_its_settings(sqlite_store: MailStore) -> None:
    await inbox_with(sqlite_store, 3)
    settings = SearchSection(index_batch=2, index_pause_seconds=0, index_poll_seconds=1)
    indexer = start_text_indexer(sqlite_store, settings)
    assert indexer is not None
    try:
        assert indexer.batch == 2 and indexer.poll_seconds == 1
        await eventually(lambda: indexer.indexed == 3, "three indexed")
    finally:
        await indexer.stop()


# ---------------------------------------------------------------- migration 0009


def migrate(db: Database, action: Callable[..., None], *targets: str) -> None:
    config = alembic_config(db.url)
    with db.writer.begin() as connection:
        config.attributes["connection"] = connection
        for target in targets:
            action(config, target)


def run(db: Database, fn: Callable[[Session], T]) -> T:
    with db.write_session() as session:
        return fn(session)


def triggers(session: Session) -> set[str]:
    rows = session.execute(
        text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'message_text'")
    )
    return {str(row[0]) for row in rows}


class _NoExactTexts:
    """What a server of a revision before 0014 stored in message_text_exact: nothing."""

    def execute(self, session: Session, rows: object) -> None:
        pass


CURRENT_ADD_EXACT_TEXTS = search_index._ADD_EXACT_TEXTS


def writes_before_0014(monkeypatch: pytest.MonkeyPatch, before: bool) -> None:
    """Deliveries store their text as a server before migration 0014 did (or as now)."""
    adder = _NoExactTexts() if before else CURRENT_ADD_EXACT_TEXTS
    monkeypatch.setattr(search_index, "_ADD_EXACT_TEXTS", adder)


async def test_migration_0009_keeps_what_the_old_trigger_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'govmail.sqlite3'}")
    migrate(db, command.upgrade, *HEADS_BEFORE_0009)
    writes_before_0014(monkeypatch, True)
    store = MailStore(db, BlobStore(tmp_path / "blobs"))
    await store.start()
    try:
        mailbox_id, folder_id = await inbox_with(store, 3)  # indexed by the insert trigger
        assert run(db, triggers) == {"message_text_ai", "message_text_ad"}
        ids = run(db, text_ids)

        upgrade_to_head(db)
        writes_before_0014(monkeypatch, False)
        assert run(db, triggers) == {"message_text_ad"}
        assert run(db, indexed_upto) == ids[-1]
        assert not run(db, has_pending)
        assert run(db, fts_consistent)
        assert await search(store, folder_id, "van ban", TextField.BODY) == {1, 2, 3}

        await store.append(mailbox_id, "INBOX", note(4, "giay moi"))  # no trigger: waits
        assert run(db, has_pending)
        assert run(db, lambda s: fts_rowids(s, "giay moi")) == []
        assert await search(store, folder_id, "giay moi", TextField.BODY) == {4}

        # Down again: the waiting row is indexed first and the old triggers come back.
        migrate(db, command.downgrade, "0008")
        writes_before_0014(monkeypatch, True)
        assert run(db, triggers) == {"message_text_ai", "message_text_ad"}
        assert run(db, lambda s: fts_rowids(s, "giay moi")) == [ids[-1] + 1]
        assert run(db, fts_consistent)
        await store.append(mailbox_id, "INBOX", note(5, "giay moi"))
        assert run(db, lambda s: len(fts_rowids(s, "giay moi"))) == 2
        assert run(db, fts_consistent)

        upgrade_to_head(db)
        writes_before_0014(monkeypatch, False)
        assert run(db, indexed_upto) == ids[-1] + 2
        assert await search(store, folder_id, "giay moi", TextField.BODY) == {4, 5}
    finally:
        await store.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_migration_0011_on_postgresql_keeps_rows_indexed_and_marks_new_ones_later(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(db_url)
    migrate(db, command.upgrade, "0005", "0007", "0010", "0012", "0013")  # all but 0011, 0014
    writes_before_0014(monkeypatch, True)
    store = MailStore(db, BlobStore(tmp_path / "blobs"))
    await store.start()

    def marks(session: Session) -> list[bool]:
        return [bool(r[0]) for r in session.execute(text("SELECT indexed FROM message_text"))]

    def partial(session: Session) -> list[str]:
        rows = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'ix_message_text_%'")
        )
        return sorted(str(row[0]).partition(" USING ")[2] for row in rows)

    try:
        _, folder_id = await inbox_with(store, 2)  # indexed by the full GIN indexes
        upgrade_to_head(db)
        writes_before_0014(monkeypatch, False)
        assert run(db, marks) == [True, True]  # what was there is in the index already
        assert run(db, partial) == [
            "btree (id) WHERE (NOT indexed)",
            "gin (body gin_trgm_ops) WHERE indexed",
            "gin (headers gin_trgm_ops) WHERE indexed",
        ]
        assert not run(db, has_pending)
        mailbox_id = await make_mailbox(store, "binh@sotest.gov.vn")
        await store.append(mailbox_id, "INBOX", note(3, "giay moi"))
        assert sorted(run(db, marks)) == [False, True, True]
        assert await search(store, folder_id, "van ban", TextField.BODY) == {1, 2}
    finally:
        await store.close()
