"""Small messages committed inside their delivery's transaction, and written to files later.

The blob store's durable write costs two fsyncs per message (the file, then its directory) and
about 0.3 ms of kernel time, all before the commit that allows the SMTP 250. A message of at
most ``storage.inline_blob_max_bytes`` is instead returned by ``BlobStore.put`` with its bytes
(``StoredBlob.inline``), and ``insert_inline`` writes them into ``blob_inline`` in the same
transaction as the rows that refer to it (``mailbox_ops._reference_blobs``, the one place every
reference is counted): the group commit's single fsync makes a whole batch durable.

``BlobSpiller`` then moves the bytes to their files off the delivery path, as background upkeep
(``storage.upkeep``) in the process that commits deliveries: it writes each file durably (file
and directory, four files at a time) and only then deletes the database copy, so
a crash in between leaves both (the next pass finds the file and just deletes the copy). A
reader that finds neither the file nor the copy looks at the file again (``BlobStore``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import bindparam, delete, select
from sqlmodel import Session

from storage.blobs import StoredBlob
from storage.db import Database
from storage.fast_sql import Prepared, PreparedRows
from storage.models import BlobInline
from storage.upkeep import StoreUpkeep

if TYPE_CHECKING:
    from storage.store import MailStore

log = logging.getLogger(__name__)

_INLINE = BlobInline.__table__  # type: ignore[attr-defined]
SPILL_THREADS = 4  # parts of a chunk written at once (the store's I/O pool has four threads)

_INSERT = PreparedRows(
    _INLINE,
    ("sha256", "data"),
    lambda _dialect, statement: statement.on_conflict_do_nothing(index_elements=["sha256"]),
)
_ONE = Prepared(
    lambda _dialect: select(_INLINE.c.data).where(_INLINE.c.sha256 == bindparam("sha256"))
)
_NEXT_CHUNK = Prepared(
    lambda _dialect: (
        select(_INLINE.c.sha256, _INLINE.c.data)
        .order_by(_INLINE.c.sha256)
        .limit(bindparam("limit"))
    )
)
_ANY = Prepared(lambda _dialect: select(_INLINE.c.sha256).limit(1))
_DELETE = Prepared(lambda _dialect: delete(_INLINE).where(_INLINE.c.sha256 == bindparam("sha256")))


def insert_inline(session: Session, blobs: list[StoredBlob]) -> None:
    """In the transaction that first refers to them: the bytes of the inline ``blobs``."""
    rows = [{"sha256": blob.sha256, "data": blob.inline} for blob in blobs if blob.inline]
    if rows:
        _INSERT.execute(session, sorted(rows, key=lambda row: str(row["sha256"])))


def inline_source(db: Database) -> Callable[[list[str]], dict[str, bytes]]:
    """``BlobStore.inline_source`` for ``db``: the copies it holds of the given digests.
    Blocking (called where blob files are read: worker threads)."""

    def lookup(digests: list[str]) -> dict[str, bytes]:
        def read(session: Session) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for sha in dict.fromkeys(digests):
                row = _ONE.first(session, {"sha256": sha})
                if row is not None:
                    found[sha] = bytes(row[0])
            return found

        return db.run_read(read)

    return lookup


class SpillSettings(Protocol):
    """The ``[storage]`` keys of the spiller (mailserver.config.StorageSection)."""

    @property
    def spill_batch(self) -> int: ...
    @property
    def spill_busy_pause_seconds(self) -> float: ...
    @property
    def spill_poll_seconds(self) -> float: ...
    @property
    def spill_quiet_seconds(self) -> float: ...


class BlobSpiller(StoreUpkeep):
    """Writes inline blobs to their files, in digest order, then deletes the copies."""

    name = "blob_spill"

    async def pending(self) -> bool:
        return await self.store.read(lambda session: _ANY.first(session) is not None)

    async def step(self, batch: int) -> int:
        rows = await self.store.read(lambda session: _NEXT_CHUNK.all(session, {"limit": batch}))
        if not rows:
            return 0
        copies = [(str(sha), bytes(data)) for sha, data in rows]
        # Each file waits for its fsyncs: a few chunks side by side on the store's I/O threads.
        parts = [copies[start::SPILL_THREADS] for start in range(min(SPILL_THREADS, len(copies)))]
        written = await asyncio.gather(
            *(self.store.offload(self._write_files, part) for part in parts)
        )
        done = [sha for part in written for sha in part]

        def forget(session: Session) -> None:
            for sha in done:
                _DELETE.execute(session, {"sha256": sha}).close()

        await self.store.write(forget, background=True)
        return len(copies)

    def _write_files(self, copies: list[tuple[str, bytes]]) -> list[str]:
        """Write the copies that hold their content; returns their digests. A copy that does
        not is never written and never deleted: it is logged for an administrator."""
        good = []
        for sha, data in copies:
            if hashlib.sha256(data).hexdigest() == sha:
                good.append((sha, data))
            else:
                log.error("event=blob_inline_corrupt sha256=%s size=%d", sha, len(data))
        self.store.blobs.write_files(good)
        return [sha for sha, _ in good]


def start_blob_spiller(store: MailStore, settings: SpillSettings) -> BlobSpiller | None:
    """Start the spiller on the store that commits deliveries (one process of an instance);
    None when blobs are never inline."""
    if store.blobs.inline_max_bytes <= 0:
        return None
    spiller = BlobSpiller(
        store,
        batch=settings.spill_batch,
        busy_pause_seconds=settings.spill_busy_pause_seconds,
        poll_seconds=settings.spill_poll_seconds,
    )
    spiller.attach(settings.spill_quiet_seconds)
    return spiller
