"""Database engines: SQLite (WAL, fsync on every commit) by default, PostgreSQL by URL.

SQLite gets two engines over one file: writers open their transactions with BEGIN IMMEDIATE so a
write never fails half-way on a lock upgrade; readers use plain deferred transactions, which WAL
lets run beside the writer. PostgreSQL uses one engine for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


@dataclass(frozen=True)
class Database:
    """The engines of one database: ``writer`` for changes, ``reader`` for queries."""

    url: str
    writer: Engine
    reader: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with Session(self.writer, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with Session(self.reader, expire_on_commit=False) as session:
            yield session

    def run_read(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in a read session (for synchronous callers: the CLI, scripts)."""
        with self.read_session() as session:
            return fn(session)

    def run_write(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in a write transaction, committed when it returns."""
        with self.write_session() as session:
            return fn(session)

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _sqlite_engine(url: str, begin: str, fsync: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    synchronous = "FULL" if fsync else "OFF"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours (SQLAlchemy's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def open_database(url: str, fsync: bool = True, pool_size: int = 8) -> Database:
    """Open the database at ``url`` (sqlite:///path or postgresql+psycopg://...)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        writer = _sqlite_engine(url, "BEGIN IMMEDIATE", fsync)
        reader = _sqlite_engine(url, "BEGIN", fsync)
        return Database(url=url, writer=writer, reader=reader)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        return Database(url=url, writer=engine, reader=engine)
    raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
