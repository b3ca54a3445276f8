"""The instance's one delivery writer (mailserver.instance_writer): a worker's store sends its
deliveries over a real link (a SOCK_SEQPACKET pair) to the supervisor's store, which commits
them; changes come back before the reply; what cannot travel runs in the worker's own store;
errors and a broken link reach the caller. Both stores share one database, as the processes do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlmodel import Session

from mailserver import worker_link
from mailserver.delivery.dispatch import Delivery, apply_deliveries, store_and_queue
from mailserver.instance_writer import InstanceWriter, RemoteWriter, WriterGone
from mailserver.worker_link import Link, Message, socket_pair
from storage.blobs import BlobStore
from storage.changes import MessageAdded
from storage.db import open_database
from storage.mailbox_ops import FolderNotFound
from storage.store import MailStore, NotShared
from tests.storage.test_batched_delivery import OPTIONS
from tests.storage.test_mailbox_semantics import folder_of, make_mailbox, message, uids


@dataclass
class Pair:
    """A supervisor's store behind an InstanceWriter, and a worker's store that delegates to it."""

    supervisor: MailStore
    worker: MailStore
    remote: RemoteWriter
    supervisor_link: Link
    worker_link: Link
    # What reached the worker over the link, in order.
    received: list[Message] = field(default_factory=list)
    # Batches each store ran itself.
    batches: dict[str, int] = field(default_factory=lambda: {"supervisor": 0, "worker": 0})
    handle_writes: bool = True
    request_seen: asyncio.Event = field(default_factory=asyncio.Event)


def _count_batches(store: MailStore, pair: Pair, name: str) -> None:
    run_batch = store._run_batch

    def counting(batch: list[Any]) -> list[Any]:
        pair.batches[name] += 1
        return run_batch(batch)

    store._run_batch = counting  # type: ignore[method-assign]


@pytest.fixture
async def pair(mail_store: MailStore) -> AsyncIterator[Pair]:
    ours, theirs = socket_pair()
    # The worker's own handle on the same database and blob files, as a worker process has.
    worker_store = MailStore(open_database(mail_store.db.url), BlobStore(mail_store.blobs.root))
    remote = RemoteWriter(lambda m: worker_end.send(m))
    supervisor_end: Link
    worker_end: Link
    state: dict[str, Pair] = {}

    def on_supervisor(message: Message, fds: list[int]) -> None:
        if message[0] != "write":
            return
        state["pair"].request_seen.set()
        if state["pair"].handle_writes:
            writer.handle(supervisor_end.send, message[1], message[2], message[3])

    def on_worker(message: Message, fds: list[int]) -> None:
        state["pair"].received.append(message)
        if message[0] == "written":
            remote.on_reply(message[1], message[2], message[3])

    supervisor_end = Link(ours, on_supervisor, lambda: None)
    worker_end = Link(theirs, on_worker, remote.close)
    writer = InstanceWriter(mail_store, lambda piece: supervisor_end.send(("changes", piece)))
    worker_store.delegate = remote
    await worker_store.start()
    result = state["pair"] = Pair(mail_store, worker_store, remote, supervisor_end, worker_end)
    _count_batches(mail_store, result, "supervisor")
    _count_batches(worker_store, result, "worker")
    supervisor_end.start()
    worker_end.start()
    try:
        yield result
    finally:
        supervisor_end.close()
        worker_end.close()
        await worker_store.close()


def _to(mailbox_id: int) -> Delivery:
    delivery = Delivery()
    delivery.add_local(mailbox_id)
    return delivery


async def _uids(store: MailStore, mailbox_id: int) -> list[int]:
    inbox = await folder_of(store, mailbox_id)
    assert inbox.id is not None
    return await uids(store, inbox.id)


async def test_deliveries_are_committed_by_the_instance_writer_and_changes_come_first(
    pair: Pair,
) -> None:
    an = await make_mailbox(pair.supervisor, "an@sotest.gov.vn")
    before = dict(pair.batches)
    results = await asyncio.gather(
        *(store_and_queue(pair.worker, message(n), _to(an), OPTIONS) for n in range(12))
    )
    assert results == [None] * 12  # no remote recipients: no queue entry
    assert pair.batches["worker"] == before["worker"], "the worker committed a delivery itself"
    assert pair.batches["supervisor"] > before["supervisor"]
    assert await _uids(pair.supervisor, an) == list(range(1, 13))
    kinds = [m[0] for m in pair.received]
    assert kinds.count("written") == 12
    added = [c for m in pair.received if m[0] == "changes" for c in m[1]]
    assert sorted(c.uid for c in added if isinstance(c, MessageAdded)) == list(range(1, 13))
    # Each reply comes after the changes of its commit: the first reply after the first change.
    assert kinds.index("changes") < kinds.index("written")


async def test_a_write_too_large_for_the_link_runs_in_the_workers_own_store(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    an = await make_mailbox(pair.supervisor, "an@sotest.gov.vn")
    monkeypatch.setattr(worker_link, "MAX_MESSAGE", 200)  # every delivery is now too large
    before = dict(pair.batches)
    assert await store_and_queue(pair.worker, message(1), _to(an), OPTIONS) is None
    assert pair.batches["supervisor"] == before["supervisor"]
    assert pair.batches["worker"] == before["worker"] + 1
    assert await _uids(pair.supervisor, an) == [1]
    assert not [m for m in pair.received if m[0] == "written"]


async def test_an_error_in_the_instance_writer_reaches_the_caller(pair: Pair) -> None:
    with pytest.raises(FolderNotFound):  # no such mailbox: no folder to file it in
        await store_and_queue(pair.worker, message(1), _to(987_654), OPTIONS)
    assert [m[2] for m in pair.received if m[0] == "written"] == [False]


async def test_a_broken_link_fails_the_waiting_writes(pair: Pair) -> None:
    an = await make_mailbox(pair.supervisor, "an@sotest.gov.vn")
    pair.handle_writes = False  # the request arrives and is never answered
    waiting = asyncio.create_task(store_and_queue(pair.worker, message(1), _to(an), OPTIONS))
    await asyncio.wait_for(pair.request_seen.wait(), 10)  # arrived, and will not be answered
    assert pair.remote._waiting
    pair.supervisor_link.close()
    with pytest.raises(WriterGone):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(WriterGone):  # and later ones fail at once
        await pair.remote(apply_deliveries, None)


async def test_only_shared_writes_travel(pair: Pair) -> None:
    def not_shared(session: Session, items: list[int]) -> list[int]:
        return items

    with pytest.raises(NotShared):
        await pair.remote(not_shared, 1)
    # A request naming another function is refused by the supervisor's side too.
    replies: list[Message] = []
    writer = InstanceWriter(pair.supervisor, lambda piece: None)
    writer.handle(replies.append, 7, not_shared, 1)
    assert replies and replies[0][:3] == ("written", 7, False)
    assert isinstance(replies[0][3], PermissionError)
    # write_shared without a delegate that takes it still commits, in the store itself.
    assert await pair.worker.write_shared(not_shared, 5) == 5
