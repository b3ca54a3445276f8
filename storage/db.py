"""Database engines: SQLite (WAL, fsync on every commit) by default, PostgreSQL by URL.

SQLite gets two engines over one file: writers open their transactions with BEGIN IMMEDIATE so a
write never fails half-way on a lock upgrade; readers use plain deferred transactions, which WAL
lets run beside the writer. PostgreSQL uses one engine for both.

When several worker processes share one SQLite file, each takes ``write_lock`` (an exclusive
``flock`` on a file beside the database) around its write transaction: SQLite's own busy
handler polls with sleeps of up to 100 ms, while a process waiting on the lock file wakes the
moment the other commits. SQLite's locking stays the arbiter; the lock file only orders turns.

A server's writers also leave WAL checkpoints to ``checkpoint()`` (called by the store from a
thread of its own, outside any write turn): SQLite's automatic checkpoint runs inside the commit
that crosses the threshold, copying megabytes and fsyncing the database file while holding the
write lock. A PASSIVE checkpoint needs no write lock; durability is the WAL's either way.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    write_lock: InterProcessLock | None = field(default=None, compare=False)
    # SQLite file path when its WAL is checkpointed by ``checkpoint()`` rather than by commits.
    checkpoint_path: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._write_turn(), Session(self.writer, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        if self.write_lock is None:
            yield
            return
        with self.write_lock:
            yield

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

    def checkpoint(self) -> None:
        """Copy committed WAL pages into the SQLite file without blocking writers (PASSIVE).
        Blocking: call from a thread. A no-op unless the writers were opened to leave it."""
        if self.checkpoint_path is None:
            return
        connection = sqlite3.connect(self.checkpoint_path, isolation_level=None, timeout=30)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


class InterProcessLock:
    """An exclusive ``flock`` on ``path``, also exclusive between the threads of a process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _sqlite_engine(url: str, begin: str, fsync: bool, autocheckpoint: bool = True) -> Engine:
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
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def open_database(
    url: str,
    fsync: bool = True,
    pool_size: int = 8,
    shared_by_processes: bool = False,
    background_checkpoint: bool = False,
) -> Database:
    """Open the database at ``url`` (sqlite:///path or postgresql+psycopg://...).

    ``shared_by_processes``: other worker processes write to the same SQLite file;
    ``background_checkpoint``: the caller runs ``checkpoint()`` itself (see the module's text).
    Both are ignored for PostgreSQL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        on_file = bool(parsed.database) and parsed.database != ":memory:"
        background = background_checkpoint and on_file
        writer = _sqlite_engine(url, "BEGIN IMMEDIATE", fsync, autocheckpoint=not background)
        reader = _sqlite_engine(url, "BEGIN", fsync)
        lock = None
        if shared_by_processes and on_file:
            lock = InterProcessLock(f"{parsed.database}.write-lock")
        return Database(
            url=url,
            writer=writer,
            reader=reader,
            write_lock=lock,
            checkpoint_path=parsed.database if background else None,
        )
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        return Database(url=url, writer=engine, reader=engine)
    raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
