"""A serving store copies the SQLite WAL into the database file itself, outside any commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlmodel import Session

from storage.blobs import BlobStore
from storage.db import open_database
from storage.schema import upgrade_to_head
from storage.store import MailStore
from tests.storage.test_mailbox_semantics import make_mailbox


def _frames(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames already copied) as a PASSIVE checkpoint reports them."""
    with sqlite3.connect(path) as connection:
        _busy, log, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return log, done


async def test_commits_leave_checkpoints_to_the_store(tmp_path: Path) -> None:
    path = tmp_path / "govmail.sqlite3"
    db = open_database(f"sqlite:///{path}", background_checkpoint=True)
    upgrade_to_head(db)
    with db.writer.connect() as connection:
        setting = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert setting == 0  # no commit pays for a checkpoint
    plain = open_database(f"sqlite:///{path}")
    with plain.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    plain.dispose()

    store = MailStore(db, BlobStore(tmp_path / "blobs"))
    await store.start()
    try:
        size_before = path.stat().st_size
        for n in range(30):
            await make_mailbox(store, f"user{n}@sotest.gov.vn")
        # The writer asked for a checkpoint after a batch; wait for the one in flight.
        if store._checkpointing is not None:
            await store._checkpointing
        store._last_checkpoint = 0.0
        await store.write(lambda session: None)
        assert store._checkpointing is not None
        await store._checkpointing
        log, done = _frames(path)
        assert log == done, "frames left in the WAL after the store's checkpoint"
        assert path.stat().st_size > size_before

        def count(session: Session) -> int:
            from sqlmodel import func, select

            from storage.models import Mailbox

            return int(session.exec(select(func.count()).select_from(Mailbox)).one())

        assert await store.read(count) == 30
    finally:
        await store.close()
