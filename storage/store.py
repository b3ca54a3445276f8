"""The asyncio face of storage: runs mailbox operations off the event loop, with group commit.

Writes are jobs (a function of a ``Session``). Jobs that arrive while a transaction is being
written wait and then go together into the next one, which commits with one fsync. If one job
fails (over quota, say), the batch is replayed with a SAVEPOINT per job, so it fails alone.
Only when that commit returns does any job's caller get its result, and only then are the
changes published to IMAP sessions. This is how a 250 after a durable commit stays cheap under
load: durability is never weakened, its cost is shared.

One writer thread per process by default, on both databases: with batching, one transaction at
a time carries all waiting writes, while several writers on PostgreSQL would mostly queue on the
same folder rows. With worker processes, deliveries (``write_shared``) go to one store for the
whole instance, the supervisor's (``delegate``; mailserver.instance_writer); each worker's own
store keeps its other writes. Background upkeep (storage.upkeep) writes with
``background=True``: it is not counted as activity (``quiet_for``) and wakes nobody.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session

from storage.blobs import BlobStore, StoredBlob
from storage.changes import Change, ChangeBus, atomic, take_recorded
from storage.db import Database
from storage.mailbox_ops import (
    Appended,
    NewCopy,
    append_many,
    append_to_folder,
    folder_id_by_name,
    normalise_flags,
)
from storage.message_index import IndexedMessage, index_message, normalise_line_endings

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
WriteFn = Callable[[Session], Any]
# Runs a batched write somewhere else (``write_shared``): the instance's one writer.
Delegate = Callable[[Callable[[Session, list[Any]], list[Any]], Any], Awaitable[Any]]


class NotShared(Exception):
    """A delegate cannot take this write (too large to travel): it is run here instead."""


# How often committed WAL pages are copied into the SQLite file (when the store does it).
CHECKPOINT_INTERVAL_SECONDS = 0.5

# Fault injection for the crash tests: the process dies at the named point, as a power cut would.
FAULT_ENV = "GOVMAIL_TEST_CRASH_AT"


def _maybe_crash(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os._exit(137)


@dataclass
class _Job:
    fn: WriteFn
    future: asyncio.Future[Any]
    # Jobs that run faster together (``write_batched``): the function and this job's item.
    run_many: Callable[[Session, list[Any]], list[Any]] | None = None
    item: Any = None
    background: bool = False  # upkeep (indexer, spiller): neither "activity" nor a wake-up


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    changes: list[Change] = field(default_factory=list)


class MailStore:
    """Database + blob store + change bus, shared by every protocol server in the process."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        bus: ChangeBus | None = None,
        writer_threads: int = 0,
        reader_threads: int = 4,
        group_commit_max: int = 128,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.bus = bus or ChangeBus()
        if writer_threads <= 0:
            writer_threads = 1
        self._writer_count = writer_threads
        self._group_commit_max = group_commit_max
        self._write_pool = ThreadPoolExecutor(writer_threads, thread_name_prefix="govmail-write")
        self._read_pool = ThreadPoolExecutor(reader_threads, thread_name_prefix="govmail-read")
        self._cpu_pool = ThreadPoolExecutor(4, thread_name_prefix="govmail-io")
        self._queue: asyncio.Queue[_Job] | None = None
        self._writers: list[asyncio.Task[None]] = []
        # WAL checkpoints off the write path (storage.db), one at a time in their own thread.
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="govmail-checkpoint")
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        # Where ``write_shared`` sends its writes (worker processes: the supervisor's store).
        self.delegate: Delegate | None = None
        # Called after each commit that carried other than background jobs (the wake-ups of
        # storage.upkeep); and when the last such job was submitted (upkeep's idea of "busy").
        self.commit_listeners: list[Callable[[], None]] = []
        self._last_foreground = float("-inf")  # never: quiet for ever

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._queue is not None:
            return
        self._queue = asyncio.Queue()
        self._writers = [
            asyncio.create_task(self._writer_loop(), name=f"govmail-writer-{i}")
            for i in range(self._writer_count)
        ]

    async def close(self) -> None:
        """Finish queued writes, then stop the threads and the engines."""
        if self._queue is not None:
            await self._queue.join()
            for task in self._writers:
                task.cancel()
            await asyncio.gather(*self._writers, return_exceptions=True)
            self._queue = None
        self._write_pool.shutdown(wait=True)
        self._checkpoint_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        self._cpu_pool.shutdown(wait=True)
        self.db.dispose()

    # ------------------------------------------------------------ primitives

    async def write(self, fn: Callable[[Session], T], background: bool = False) -> T:
        """Run ``fn`` in a write transaction; returns after its commit is durable.
        ``background``: upkeep that should yield to the rest (see ``quiet_for``)."""
        return await self._submit(fn, background=background)

    def quiet_for(self) -> float:
        """Seconds since the last write other than background upkeep was asked for."""
        return time.monotonic() - self._last_foreground

    async def write_batched(
        self, run_many: Callable[[Session, list[ItemT]], list[T]], item: ItemT
    ) -> T:
        """Like ``write`` for a job that is cheaper in company: the jobs of one group commit
        that share ``run_many`` and follow each other run as one call of it, with their items
        in order (deliveries: one UID range per folder, one multi-row insert per table). On a
        replay each runs alone, as ``run_many(session, [item])``."""
        return await self._submit(lambda session: run_many(session, [item])[0], run_many, item)

    async def write_shared(
        self, run_many: Callable[[Session, list[ItemT]], list[T]], item: ItemT
    ) -> T:
        """``write_batched`` in the instance's one writer when there is one (``delegate``: worker
        processes send deliveries to the supervisor, so every process's deliveries share one
        group commit). ``run_many`` must be a module-level function and ``item`` must pickle."""
        if self.delegate is not None:
            try:
                result: T = await self.delegate(run_many, item)
                return result
            except NotShared:
                pass
        return await self.write_batched(run_many, item)

    async def _submit(
        self,
        fn: Callable[[Session], T],
        run_many: Callable[[Session, list[Any]], list[Any]] | None = None,
        item: Any = None,
        background: bool = False,
    ) -> T:
        if not background:
            self._last_foreground = time.monotonic()
        if self._queue is None:
            await self.start()
        assert self._queue is not None
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(fn, future, run_many, item, background))
        return await future

    async def read(self, fn: Callable[[Session], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._run_read, fn)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (hashing, parsing, file I/O) away from the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cpu_pool, fn, *args)

    def _run_read(self, fn: Callable[[Session], T]) -> T:
        with self.db.read_session() as session:
            return fn(session)

    async def _writer_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            while len(batch) < self._group_commit_max and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                outcomes = await loop.run_in_executor(self._write_pool, self._run_batch, batch)
            except BaseException as exc:  # the commit itself failed: no job took effect
                log.error("event=commit_failed jobs=%d error=%r", len(batch), exc)
                outcomes = [_Outcome(error=exc) for _ in batch]
            self._maybe_checkpoint(loop)
            if self.commit_listeners and not all(job.background for job in batch):
                self._tell_listeners()
            for job, outcome in zip(batch, outcomes, strict=True):
                if outcome.changes:
                    self.bus.publish(outcome.changes)
                if job.future.cancelled():
                    pass
                elif outcome.error is not None:
                    job.future.set_exception(outcome.error)
                else:
                    job.future.set_result(outcome.result)
                queue.task_done()

    def _tell_listeners(self) -> None:
        for listener in self.commit_listeners:
            try:
                listener()
            except Exception:  # never let a listener stop the writer (every caller would wait)
                log.exception("event=commit_listener_failed")

    def _maybe_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.db.checkpoint_path is None:
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        now = loop.time()
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL_SECONDS:
            return
        self._last_checkpoint = now
        self._checkpointing = loop.run_in_executor(self._checkpoint_pool, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self.db.checkpoint()
        except Exception as exc:  # the next one will try again; the WAL keeps everything
            log.warning("event=checkpoint_failed error=%r", exc)

    def _run_batch(self, batch: list[_Job]) -> list[_Outcome]:
        """Commit a batch of jobs in one transaction.

        Jobs almost never fail, so they first run side by side with no SAVEPOINT each (two
        statements a job saved; a job alone needs none at all). If any job raises, that
        transaction rolls back whole and the batch is replayed with a SAVEPOINT per job, so
        the failing one fails alone. Jobs are functions of the session only, which is what
        makes the replay safe.
        """
        try:
            return self._run_together(batch)
        except Exception as exc:
            if len(batch) == 1:  # alone, its failure is the transaction's: nothing to replay
                return [_Outcome(error=exc)]
            log.debug("event=batch_replay jobs=%d error=%r", len(batch), exc)
        return self._run_isolated(batch)

    def _run_together(self, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        with self.db.write_session() as session:
            start = 0
            while start < len(batch):
                run_many = batch[start].run_many
                end = start + 1
                if run_many is None:
                    results = [batch[start].fn(session)]
                else:
                    while end < len(batch) and batch[end].run_many is run_many:
                        end += 1
                    results = run_many(session, [job.item for job in batch[start:end]])
                session.flush()
                # The group's changes go out with its first job: all are published after commit.
                outcomes.append(_Outcome(result=results[0], changes=take_recorded(session)))
                outcomes.extend(_Outcome(result=result) for result in results[1:])
                start = end
            _maybe_crash("before_commit")
        return outcomes

    def _run_isolated(self, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        with self.db.write_session() as session:
            for job in batch:
                try:
                    with atomic(session):
                        result = job.fn(session)
                    outcomes.append(_Outcome(result=result, changes=take_recorded(session)))
                except Exception as exc:
                    outcomes.append(_Outcome(error=exc))
            _maybe_crash("before_commit")
        return outcomes

    # ------------------------------------------------------------ message operations

    async def store_blob(self, raw: bytes) -> tuple[StoredBlob, IndexedMessage]:
        """Write the bytes durably and parse them once; both off the event loop.

        Line endings are made CRLF first, so sizes and offsets match what IMAP serves.
        """
        # One trip to a worker thread for all three steps: each trip costs the event loop.
        return await self.offload(self._write_and_index, raw)

    def _write_and_index(self, raw: bytes) -> tuple[StoredBlob, IndexedMessage]:
        raw = normalise_line_endings(raw)
        # Every user of store_blob commits the blob with a reference (mailbox_ops), so a small
        # one may travel inline and be made durable by that commit (storage.inline_blobs).
        blob = self.blobs.put(raw, may_inline=True)
        _maybe_crash("after_blob_write")
        return blob, index_message(raw)

    async def append(
        self,
        mailbox_id: int,
        folder_name: str,
        raw: bytes,
        flags: tuple[str, ...] = (),
        internal_date: datetime | None = None,
    ) -> Appended:
        """APPEND: store ``raw`` in one folder of one account."""
        blob, indexed = await self.store_blob(raw)

        def job(session: Session) -> Appended:
            folder_id = folder_id_by_name(session, mailbox_id, folder_name)
            return append_to_folder(
                session, mailbox_id, folder_id, blob, indexed, flags, internal_date
            )

        return await self.write(job)

    async def deliver(
        self, raw: bytes, targets: list[tuple[int, str]], flags: tuple[str, ...] = ()
    ) -> list[Appended]:
        """Deliver one message to several (account, folder) targets: one blob, one commit.

        All or nothing, as SMTP's single reply to DATA requires. Quota was checked when each
        recipient was accepted (RCPT), so it is not enforced again here: a message already
        promised to a recipient is never refused for a race with another delivery.
        """
        blob, indexed = await self.store_blob(raw)

        def job(session: Session) -> list[Appended]:
            flag_set = normalise_flags(flags)
            copies = []
            for mailbox_id, name in targets:
                folder_id = folder_id_by_name(session, mailbox_id, name)
                copies.append(NewCopy(mailbox_id, folder_id, blob, indexed, flag_set))
            return append_many(session, copies)

        return await self.write(job)
