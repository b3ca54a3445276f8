"""A serving store copies the SQLite WAL into the database file itself, outside any commit."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlmodel import Session

from storage.blobs import BlobStore
from storage.db import open_database
from storage.schema import upgrade_to_head
from storage.store import MailStore
from tests.storage.test_mailbox_semantics import make_mailbox


def _mailboxes_in_main_file(path: Path, scratch: Path) -> int:
    """Mailbox rows in the database file alone, its -wal ignored: a copy of the file is opened
    without the WAL. Observing this way checkpoints nothing (``PRAGMA wal_checkpoint`` on the
    live database would itself copy the frames and hide a checkpoint that never ran)."""
    copy = scratch / "main-file-only.sqlite3"
    shutil.copyfile(path, copy)
    with closing(sqlite3.connect(copy)) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'mailbox'"
        ).fetchone()[0]
        if tables == 0:
            return 0
        return int(connection.execute("SELECT count(*) FROM mailbox").fetchone()[0])


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
        for n in range(30):
            await make_mailbox(store, f"user{n}@sotest.gov.vn")
        # The writer asked for a checkpoint after a batch; wait for the one in flight.
        if store._checkpointing is not None:
            await store._checkpointing
        store._last_checkpoint = 0.0
        await store.write(lambda session: None)
        assert store._checkpointing is not None
        await store._checkpointing
        in_file = _mailboxes_in_main_file(path, tmp_path)
        assert in_file == 30, "the store's checkpoint left commits in the WAL only"

        def count(session: Session) -> int:
            from sqlmodel import func, select

            from storage.models import Mailbox

            return int(session.exec(select(func.count()).select_from(Mailbox)).one())

        assert await store.read(count) == 30
    finally:
        await store.close()
