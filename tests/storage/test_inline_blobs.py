"""Small messages committed inside their delivery (storage.inline_blobs): no file before the
commit, readable from the database copy, written to their files by the spiller, and never
unreadable in between, on both databases."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailserver.delivery.dispatch import Delivery, store_and_queue
from storage.blobs import BlobStore
from storage.inline_blobs import BlobSpiller, inline_source
from storage.models import Blob, BlobInline
from storage.store import MailStore
from tests.storage.test_batched_delivery import OPTIONS
from tests.storage.test_mailbox_semantics import make_mailbox, message

INLINE_MAX = 4096


@pytest.fixture
async def inline_store(mail_store: MailStore, tmp_path: Path) -> AsyncIterator[MailStore]:
    """The migrated store of ``mail_store``'s database, with small blobs inline."""
    blobs = BlobStore(
        tmp_path / "inline-blobs",
        inline_max_bytes=INLINE_MAX,
        inline_source=inline_source(mail_store.db),
    )
    store = MailStore(mail_store.db, blobs)
    await store.start()
    try:
        yield store
    finally:
        await store.close()  # disposes the shared engines; mail_store's close does it again


def _to(mailbox_id: int) -> Delivery:
    delivery = Delivery()
    delivery.add_local(mailbox_id)
    return delivery


async def _copies(store: MailStore) -> dict[str, bytes]:
    def read(session: Session) -> dict[str, bytes]:
        return {row.sha256: bytes(row.data) for row in session.exec(select(BlobInline))}

    return await store.read(read)


async def _deliver(store: MailStore, raw: bytes, to: str = "an@sotest.gov.vn") -> str:
    """Deliver ``raw`` to a new mailbox ``to``; returns its digest."""
    mailbox = await make_mailbox(store, to)
    before = set(await store.read(lambda session: session.exec(select(Blob.sha256)).all()))
    await store_and_queue(store, raw, _to(mailbox), OPTIONS)
    after = set(await store.read(lambda session: session.exec(select(Blob.sha256)).all()))
    (digest,) = after - before
    return digest


async def test_a_small_message_is_committed_in_the_database_and_read_from_there(
    inline_store: MailStore,
) -> None:
    raw = message(1)
    sha = await _deliver(inline_store, raw)
    assert not inline_store.blobs.path_for(sha).exists()  # no file, no fsync before the commit
    assert await _copies(inline_store) == {sha: raw}
    blobs = inline_store.blobs
    assert blobs.exists(sha)
    assert blobs.read(sha) == raw
    assert blobs.read_range(sha, 3, 10) == raw[3:13]
    on_disk = blobs.put(b"Subject: file\r\n\r\n" + b"x" * INLINE_MAX)  # too large: a file
    assert on_disk.inline is None and blobs.path_for(on_disk.sha256).exists()
    assert blobs.read_many([(sha, 5), (on_disk.sha256, None), (sha, None)]) == [
        raw[:5],
        b"Subject: file\r\n\r\n" + b"x" * INLINE_MAX,
        raw,
    ]


async def test_the_spiller_writes_the_files_then_forgets_the_copies(
    inline_store: MailStore,
) -> None:
    raw = message(2)
    sha = await _deliver(inline_store, raw)
    spiller = BlobSpiller(inline_store, pause_seconds=0, batch=8)
    assert await spiller.pending()
    assert await spiller.work_while_pending() == 1
    assert inline_store.blobs.path_for(sha).read_bytes() == raw
    assert await _copies(inline_store) == {}
    assert not await spiller.pending()
    assert inline_store.blobs.read(sha) == raw
    # The same content again finds its file: nothing inline this time.
    assert inline_store.blobs.put(raw, may_inline=True).inline is None


async def test_a_spill_cut_short_is_finished_and_a_wrong_copy_is_never_written(
    inline_store: MailStore, caplog: pytest.LogCaptureFixture
) -> None:
    raw = message(3)
    sha = await _deliver(inline_store, raw)
    # A crash after the file was written and before the copy was deleted: both are there.
    inline_store.blobs.write_file(sha, raw)
    spiller = BlobSpiller(inline_store, pause_seconds=0)
    assert await spiller.work_while_pending() == 1
    assert await _copies(inline_store) == {} and inline_store.blobs.read(sha) == raw

    other, good = message(4), message(5)
    other_sha = await _deliver(inline_store, other, "binh@sotest.gov.vn")
    good_sha = await _deliver(inline_store, good, "chi@sotest.gov.vn")

    def corrupt(session: Session) -> None:
        row = session.get(BlobInline, other_sha)
        assert row is not None
        row.data = b"not the message"
        session.add(row)

    await inline_store.write(corrupt)
    with caplog.at_level(logging.ERROR):
        await spiller.work_while_pending()
    assert f"event=blob_inline_corrupt sha256={other_sha}" in caplog.text
    assert not inline_store.blobs.path_for(other_sha).exists()
    assert list(await _copies(inline_store)) == [other_sha]  # kept for an administrator
    # The rest of the chunk went on: the good copy is in its file.
    assert inline_store.blobs.path_for(good_sha).read_bytes() == good


async def test_a_reader_racing_the_spiller_finds_the_file(tmp_path: Path) -> None:
    """Not in the file, and the copy gone by the time it is asked for: the file is there."""
    raw = b"Subject: race\r\n\r\nbody\r\n"
    blobs: BlobStore

    def source(digests: list[str]) -> dict[str, bytes]:
        blobs.write_file(digests[0], raw)  # the spiller, between the two looks
        return {}

    blobs = BlobStore(tmp_path / "b", inline_max_bytes=1024, inline_source=source)
    blob = blobs.put(raw, may_inline=True)
    assert blob.inline == raw
    assert blobs.read(blob.sha256) == raw


def test_many_blobs_are_written_together_durably(tmp_path: Path) -> None:
    """The spiller's chunk: every file in place with its content, and the same digests twice
    is harmless, with fsync on and off."""
    for fsync in (True, False):
        blobs = BlobStore(tmp_path / f"many-{fsync}", fsync=fsync)
        contents = [f"Subject: {n}\r\n\r\nnoi dung {n}\r\n".encode() for n in range(20)]
        items = [(hashlib.sha256(raw).hexdigest(), raw) for raw in contents]
        blobs.write_files(items)
        blobs.write_files(items[:3])
        assert [blobs.path_for(sha).read_bytes() for sha, _ in items] == contents
        assert not list((blobs.root / "tmp").iterdir())
