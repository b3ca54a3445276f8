"""Deliveries committed together (store.write_batched + dispatch.apply_deliveries): the same rows,
UIDs, MODSEQs, counters and changes as one by one, and a failing delivery fails alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from mailserver.delivery import dispatch
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from storage.changes import Change, MessageAdded
from storage.mailbox_ops import Appended, NewCopy, append_many
from storage.models import Blob, Folder, Mailbox, Message, UsageDaily
from storage.store import MailStore
from tests.storage.test_mailbox_semantics import folder_of, make_mailbox, message

OPTIONS = QueueOptions(
    sender="ngoai@example.gov.vn",
    now=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    lifetime=timedelta(days=5),
    source="forward",
)


def _delivery(*targets: tuple[int, str]) -> Delivery:
    delivery = Delivery()
    for mailbox_id, folder in targets:
        delivery.add_local(mailbox_id, folder)
    return delivery


async def test_concurrent_deliveries_share_commits_and_keep_every_invariant(
    mail_store: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    an = await make_mailbox(mail_store, "an@sotest.gov.vn")
    binh = await make_mailbox(mail_store, "binh@sotest.gov.vn")
    inbox_an, junk_binh = await folder_of(mail_store, an), await folder_of(mail_store, binh, "Junk")
    seen: list[Change] = []
    mail_store.bus.subscribe(an, seen.append)
    mail_store.bus.subscribe(binh, seen.append)
    batches: list[int] = []
    run_batch = mail_store._run_batch

    def counting(batch: list[Any]) -> list[Any]:
        batches.append(len(batch))
        return run_batch(batch)

    mail_store._run_batch = counting  # type: ignore[method-assign]
    appended: list[int] = []

    def recording(session: Session, copies: list[NewCopy]) -> list[Appended]:
        appended.append(len(copies))
        return append_many(session, copies)

    monkeypatch.setattr(dispatch, "append_many", recording)
    # 40 messages, message 0 repeated: one blob for two deliveries.
    raws = [message(0)] + [message(n) for n in range(40)]
    await asyncio.gather(
        *(
            store_and_queue(mail_store, raw, _delivery((an, "INBOX"), (binh, "Junk")), OPTIONS)
            for raw in raws
        )
    )
    assert max(batches) > 1, "no two deliveries ever shared a commit"
    assert max(appended) > 2, "deliveries sharing a commit were not appended together"
    assert sum(appended) == 2 * len(raws)

    def state(
        session: Session,
    ) -> tuple[
        list[tuple[int, int]],
        list[int],
        tuple[int, int],
        dict[int, int],
        list[int],
        set[tuple[int, int]],
        int,
    ]:
        def rows(folder_id: int | None) -> list[tuple[int, int]]:
            found = session.exec(
                select(Message.uid, Message.modseq).where(Message.folder_id == folder_id)
            )
            return sorted((uid, modseq) for uid, modseq in found)

        folder = session.get(Folder, inbox_an.id)
        assert folder is not None
        return (
            rows(inbox_an.id),
            [uid for uid, _ in rows(junk_binh.id)],
            (folder.uidnext, folder.highestmodseq),
            {m.id or 0: m.used_bytes for m in session.exec(select(Mailbox))},
            sorted(b.refcount for b in session.exec(select(Blob))),
            {(u.mailbox_id, u.received) for u in session.exec(select(UsageDaily))},
            sum(session.exec(select(Message.size))),
        )

    an_rows, binh_uids, an_next, used, refcounts, usage, total = await mail_store.read(state)
    assert [uid for uid, _ in an_rows] == list(range(1, 42))
    assert binh_uids == list(range(1, 42))
    modseqs = [modseq for _, modseq in an_rows]
    assert len(set(modseqs)) == 41 and modseqs == sorted(modseqs)
    assert an_next == (42, modseqs[-1])
    assert used[an] == used[binh] == total // 2
    assert refcounts == [2] * 39 + [4]  # 40 contents; message 0 twice, in two mailboxes
    assert usage == {(an, 41), (binh, 41)}
    added = [c for c in seen if isinstance(c, MessageAdded)]
    assert sorted((c.mailbox_id, c.uid) for c in added) == sorted(
        [(an, uid) for uid in range(1, 42)] + [(binh, uid) for uid in range(1, 42)]
    )


async def test_a_delivery_that_fails_fails_alone(mail_store: MailStore) -> None:
    an = await make_mailbox(mail_store, "an@sotest.gov.vn")
    missing_mailbox = an + 1000  # no such account: its folder cannot be found

    results = await asyncio.gather(
        *(
            store_and_queue(
                mail_store,
                message(n),
                _delivery((missing_mailbox if n == 5 else an, "INBOX")),
                OPTIONS,
            )
            for n in range(12)
        ),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and results[5] is failures[0]
    stored = await mail_store.read(
        lambda s: sorted(s.exec(select(Message.message_id).where(Message.folder_id > 0)))
    )
    assert stored == sorted(f"<m{n}@example.gov.vn>" for n in range(12) if n != 5)
