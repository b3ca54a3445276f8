"""The background indexer: new message text enters the text index after delivery, not in it.

A delivery writes one ``message_text`` row per new content (storage.search_index) and nothing
else: trigram-indexing 10 KB of text costs about 0.4 ms of CPU, which inside the delivery
transaction would be spent under SQLite's one write lock. ``index_pending`` moves rows into
``message_text_fts`` in id order in short write jobs of their own and advances
``search_index_state.indexed_upto`` (migration 0009): every row with an id up to it is in the
index and none above it is, and search scans the rows above it directly, so results are exact
however far behind the indexer is. ``TextIndexer`` runs it in one process of an instance, in
chunks, yielding to deliveries between them (``storage.upkeep``).

On PostgreSQL the pg_trgm GIN indexes are partial, over the rows marked ``indexed`` (migration
0011); a delivery inserts its row unmarked and ``index_pending`` marks the oldest ones, which is
when PostgreSQL indexes them. A flag, not a watermark: PostgreSQL hands out ids before commit,
so they do not follow commit order. Search scans the unmarked rows the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import text
from sqlmodel import Session

from storage.fast_sql import Prepared
from storage.search_index import INDEXED_UPTO
from storage.upkeep import StoreUpkeep

if TYPE_CHECKING:
    from storage.store import MailStore

log = logging.getLogger(__name__)

# Why a watermark is enough: on SQLite a write transaction holds the one write lock from its
# BEGIN IMMEDIATE to its commit, and message_text.id is its rowid (INTEGER PRIMARY KEY), which
# SQLite allocates as the highest id in the table plus one. So ids are handed out in commit
# order: when index_pending runs (in a write transaction) every row it can see is committed,
# and any row committed later gets an id above all of them. Nothing can appear below the
# watermark after it has passed. Ids can only be given again after the highest rows are
# deleted; the delete trigger of migration 0009 then lowers the watermark to the highest id
# left, so a reused id is always above it. (The id after 2**63-1 would be random: unreachable.)

_WATERMARK = Prepared(lambda _dialect: text("SELECT indexed_upto FROM search_index_state"))
_NEXT_CHUNK = Prepared(
    lambda _dialect: text(
        "SELECT count(*), max(id) FROM (SELECT id FROM message_text "
        "WHERE id > :after ORDER BY id LIMIT :limit)"
    )
)
_INDEX_CHUNK = Prepared(
    lambda _dialect: text(
        "INSERT INTO message_text_fts(rowid, headers, body) SELECT id, headers, body "
        "FROM message_text WHERE id > :after AND id <= :upto ORDER BY id"
    )
)
_ADVANCE = Prepared(
    lambda _dialect: text("UPDATE search_index_state SET indexed_upto = :upto WHERE id = 1")
)
_ANY_PENDING = Prepared(
    lambda _dialect: text(f"SELECT EXISTS (SELECT 1 FROM message_text WHERE id > {INDEXED_UPTO})")
)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


_PG_ANY_PENDING = Prepared(
    lambda _dialect: text("SELECT EXISTS (SELECT 1 FROM message_text WHERE NOT indexed)")
)
_PG_MARK_CHUNK = Prepared(
    lambda _dialect: text(
        "UPDATE message_text SET indexed = true WHERE id IN (SELECT id FROM message_text "
        "WHERE NOT indexed ORDER BY id LIMIT :limit)"
    )
)


def indexed_upto(session: Session) -> int | None:
    """The watermark: the highest message_text id in the FTS index (None on PostgreSQL)."""
    if not _is_sqlite(session):
        return None
    row = _WATERMARK.first(session)
    assert row is not None, "search_index_state has its one row from migration 0009"
    return int(row[0])


def has_pending(session: Session) -> bool:
    """Whether any message_text row waits for the index."""
    statement = _ANY_PENDING if _is_sqlite(session) else _PG_ANY_PENDING
    row = statement.first(session)
    return row is not None and bool(row[0])


def index_pending(session: Session, limit: int) -> int:
    """Index up to ``limit`` waiting rows, lowest ids first, in the caller's write transaction.

    Returns how many were indexed; fewer than ``limit`` means none was left waiting. The rows
    and the new watermark (PostgreSQL: their marks) commit together, so running it again (or
    after a rollback) neither skips nor repeats a row.
    """
    if limit <= 0:
        return 0
    if not _is_sqlite(session):
        return int(_PG_MARK_CHUNK.rowcount(session, {"limit": limit}))
    after = indexed_upto(session)
    assert after is not None
    row = _NEXT_CHUNK.first(session, {"after": after, "limit": limit})
    if row is None or int(row[0]) == 0:
        return 0
    count, upto = int(row[0]), int(row[1])
    _INDEX_CHUNK.execute(session, {"after": after, "upto": upto}).close()
    _ADVANCE.execute(session, {"upto": upto}).close()
    return count


class IndexerSettings(Protocol):
    """The ``[search]`` section of the configuration (mailserver.config.SearchSection)."""

    @property
    def index_batch(self) -> int: ...
    @property
    def index_pause_seconds(self) -> float: ...
    @property
    def index_busy_pause_seconds(self) -> float: ...
    @property
    def index_poll_seconds(self) -> float: ...
    @property
    def index_quiet_seconds(self) -> float: ...


class TextIndexer(StoreUpkeep):
    """Indexes waiting message text through ``store.write``, in chunks (``storage.upkeep``):
    64 rows of 10 KB are about 25 ms under the write lock, and the pause before each chunk
    lets deliveries go first."""

    name = "text_index"

    @property
    def indexed(self) -> int:
        """Rows indexed by this indexer since it started."""
        return self.done

    async def pending(self) -> bool:
        return await self.store.read(has_pending)

    async def step(self, batch: int) -> int:
        return await self.store.write(
            lambda session: index_pending(session, batch), background=True
        )


def start_text_indexer(store: MailStore, settings: IndexerSettings) -> TextIndexer:
    """Start the indexer of an instance on the store that commits its deliveries (call it in
    one process only). Each commit of other writes wakes it, and it counts the store as busy
    until ``index_quiet_seconds`` after the last of them was asked for."""
    indexer = TextIndexer(
        store,
        batch=settings.index_batch,
        pause_seconds=settings.index_pause_seconds,
        busy_pause_seconds=settings.index_busy_pause_seconds,
        poll_seconds=settings.index_poll_seconds,
    )
    indexer.attach(settings.index_quiet_seconds)
    return indexer
