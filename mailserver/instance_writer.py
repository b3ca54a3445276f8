"""One delivery writer for the whole instance, in the supervisor, shared by the worker processes.

With a writer thread in each worker, the workers took turns on the one SQLite file, and a turn
lasted about four times its own CPU work: the writer thread, holding the write lock, waited for
its process's GIL behind the event loop and the blob threads. Deliveries, the hot write, now
travel pickled over each worker's link (``mailserver.worker_link``) to the supervisor, whose
store runs them in one group commit for the whole instance, in a process that otherwise only
accepts connections. So batches are larger, turns no longer alternate, and the lock is held
about as long as the work takes.

- Worker side: ``RemoteWriter`` is the worker store's ``delegate`` (``MailStore.write_shared``).
  A write too large for one link message (``worker_link.MAX_MESSAGE``) is refused with
  ``NotShared`` and the store runs it itself.
- Supervisor side: ``InstanceWriter`` runs each request with ``MailStore.write_batched``; only
  the functions in ``SHARED_WRITES`` are accepted.
- The supervisor's store also runs the upkeep that deliveries leave for later (the SQLite text
  indexer, the blob spiller: ``storage.upkeep``), which yields to mail coming in.
- The committed changes are sent to every worker before the replies (the store publishes them
  first), so a worker's IMAP sessions hear of a message before its SMTP client gets the 250.

Every other write (IMAP flags and APPEND, admin changes, submissions with their rate check)
stays in the worker's own store: SQLite's lock, or PostgreSQL's row locks, order both. The
reply is sent only after the commit, so a dead supervisor or worker loses nothing that was
acknowledged: the client gets no 250 and sends again, as when a single process dies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from mailserver.config import GovmailConfig
from mailserver.delivery.dispatch import apply_deliveries
from mailserver.instance import blob_store
from mailserver.worker_link import Message
from storage.changes import Change, in_pieces
from storage.db import open_database
from storage.inline_blobs import BlobSpiller, start_blob_spiller
from storage.store import MailStore, NotShared
from storage.text_indexer import TextIndexer, start_text_indexer

log = logging.getLogger("govmail.writer")

RunMany = Callable[[Session, list[Any]], list[Any]]
Send = Callable[[Message], None]

# What a worker may ask the supervisor to run: deliveries (their items are plain data).
SHARED_WRITES: frozenset[RunMany] = frozenset({apply_deliveries})


class WriterGone(ConnectionError):
    """The link to the instance writer broke before the reply: the write may or may not have
    been committed, so the caller must not promise anything (SMTP answers 451)."""


class RemoteWriter:
    """A worker's way to the instance writer: one future per request, resolved by its reply."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.closed = False

    async def __call__(self, run_many: RunMany, item: Any) -> Any:
        if self.closed:
            raise WriterGone("the link to the supervisor is closed")
        if run_many not in SHARED_WRITES:
            raise NotShared(f"{run_many.__qualname__} is not a shared write")
        request = next(self._ids)
        try:
            self._send(("write", request, run_many, item))
        except ValueError as exc:  # larger than one link message
            raise NotShared(str(exc)) from exc
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request] = future
        try:
            return await future
        finally:
            self._waiting.pop(request, None)

    def on_reply(self, request: int, ok: bool, value: Any) -> None:
        future = self._waiting.get(request)
        if future is None or future.done():  # its caller gave up (the session ended)
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def close(self) -> None:
        """The link broke: every request still waiting fails."""
        self.closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(WriterGone("the link to the supervisor broke"))
        self._waiting.clear()


class InstanceWriter:
    """The supervisor's store, running the workers' shared writes in one group commit."""

    def __init__(self, store: MailStore, broadcast: Callable[[list[Change]], None]) -> None:
        self.store = store
        store.bus.relay = lambda changes: _send_in_pieces(broadcast, changes)
        self._tasks: set[asyncio.Task[None]] = set()
        self.text_indexer: TextIndexer | None = None
        self.blob_spiller: BlobSpiller | None = None
        self.committed = 0  # shared writes committed (logged at shutdown)

    @classmethod
    def open(
        cls, config: GovmailConfig, broadcast: Callable[[list[Change]], None]
    ) -> InstanceWriter:
        """Blocking (opens the database): call from a thread."""
        db = open_database(
            config.database_url,
            fsync=config.storage.fsync,
            shared_by_processes=True,
            background_checkpoint=True,
        )
        store = MailStore(
            db,
            blob_store(config, db),
            writer_threads=config.database.writer_threads,
            reader_threads=1,
            group_commit_max=config.database.group_commit_max,
        )
        return cls(store, broadcast)

    def start(self, config: GovmailConfig) -> None:
        """On the running loop: the upkeep (text indexer, blob spiller) runs beside the
        instance's deliveries, so it knows when mail is coming in and yields to it."""
        self.text_indexer = start_text_indexer(self.store, config.search)
        self.blob_spiller = start_blob_spiller(self.store, config.storage)

    def handle(self, reply: Send, request: int, run_many: RunMany, item: Any) -> None:
        """A worker's ``write`` message: run it, then ``reply`` with the outcome."""
        if run_many not in SHARED_WRITES:
            log.error("event=shared_write_refused function=%r", run_many)
            _reply(reply, request, False, PermissionError("not a shared write"))
            return
        task = asyncio.create_task(self._run(reply, request, run_many, item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reply: Send, request: int, run_many: RunMany, item: Any) -> None:
        try:
            result = await self.store.write_batched(run_many, item)
        except Exception as exc:
            _reply(reply, request, False, exc)
            return
        self.committed += 1
        _reply(reply, request, True, result)

    async def close(self) -> None:
        """After the workers stopped: finish what was asked, then close the store."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for upkeep in (self.text_indexer, self.blob_spiller):
            if upkeep is not None:
                await upkeep.stop()
        await self.store.close()


def _send_in_pieces(broadcast: Callable[[list[Change]], None], changes: list[Change]) -> None:
    for piece in in_pieces(changes):
        broadcast(piece)


def _reply(reply: Send, request: int, ok: bool, value: Any) -> None:
    try:
        reply(("written", request, ok, value))
    except Exception:  # an error that does not pickle travels as its text
        reply(("written", request, False, RuntimeError(repr(value))))
