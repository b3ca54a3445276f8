"""The outbound queue in the database: enqueue, claim, record attempts, finish, admin operations.

Functions over the caller's write ``Session`` (run through ``MailStore.write``, group-committed).
A queued message holds one reference on its blob (``Blob.refcount``) from enqueue until it is
finished or deleted. Workers claim due entries with a lease (``claimed_by``/``claimed_until``);
on PostgreSQL the claim query uses ``FOR UPDATE SKIP LOCKED`` so several nodes never take the
same entry, and a crashed node's lease simply runs out. Finished entries stay (state ``done``)
for ``queue list`` and the outbound-rate rule until a sweep removes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from storage.blobs import StoredBlob
from storage.mailbox_ops import _reference_blob
from storage.message_queries import as_utc
from storage.models import Blob, QueueEntry, QueueRecipient, QueueState

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


class QueueError(Exception):
    """An admin request on the queue that cannot be done."""


@dataclass(frozen=True)
class OutboundRecipient:
    address: str  # local@domain, domain an A-label
    notify: str | None = None  # "FAILURE,DELAY" as given in RCPT NOTIFY=
    orcpt: str | None = None


@dataclass(frozen=True)
class RecipientRow:
    id: int
    address: str
    domain: str
    status: str
    attempts: int
    last_reply: str | None
    notify: str | None
    orcpt: str | None


@dataclass(frozen=True)
class EntryView:
    """A snapshot of one entry and its recipients, safe to use outside the session."""

    id: int
    state: str
    sender: str
    blob_sha256: str
    size: int
    created_at: datetime
    expires_at: datetime
    next_attempt_at: datetime
    attempts: int
    delay_warned_at: datetime | None
    authenticated_user: str | None
    source: str
    dsn_envid: str | None
    dsn_ret: str | None
    smtputf8: bool
    claimed_by: str | None
    recipients: tuple[RecipientRow, ...]

    def pending(self) -> list[RecipientRow]:
        return [r for r in self.recipients if r.status == PENDING]


@dataclass(frozen=True)
class RecipientOutcome:
    recipient_id: int
    status: str  # PENDING (deferred), DELIVERED or FAILED
    reply: str


def enqueue(
    session: Session,
    *,
    blob: StoredBlob,
    sender: str,
    recipients: Sequence[OutboundRecipient],
    now: datetime,
    lifetime: timedelta,
    authenticated_user: str | None = None,
    source: str = "submission",
    envid: str | None = None,
    ret: str | None = None,
    smtputf8: bool = False,
) -> int:
    """Add a message for ``recipients``; it holds a reference on ``blob`` until finished."""
    _reference_blob(session, blob)
    entry = QueueEntry(
        created_at=now,
        sender=sender,
        blob_sha256=blob.sha256,
        size=blob.size,
        authenticated_user=authenticated_user,
        source=source,
        dsn_envid=envid,
        dsn_ret=ret,
        smtputf8=smtputf8,
        next_attempt_at=now,
        expires_at=now + lifetime,
    )
    session.add(entry)
    session.flush()
    assert entry.id is not None
    for recipient in recipients:
        session.add(
            QueueRecipient(
                entry_id=entry.id,
                address=recipient.address,
                domain=recipient.address.rpartition("@")[2],
                dsn_notify=recipient.notify,
                dsn_orcpt=recipient.orcpt,
                updated_at=now,
            )
        )
    return entry.id


def _view(session: Session, entry: QueueEntry) -> EntryView:
    assert entry.id is not None
    rows = session.exec(
        select(QueueRecipient)
        .where(QueueRecipient.entry_id == entry.id)
        .order_by(col(QueueRecipient.id))
    )
    recipients = tuple(
        RecipientRow(
            id=r.id or 0,
            address=r.address,
            domain=r.domain,
            status=r.status,
            attempts=r.attempts,
            last_reply=r.last_reply,
            notify=r.dsn_notify,
            orcpt=r.dsn_orcpt,
        )
        for r in rows
    )
    return EntryView(
        id=entry.id,
        state=entry.state,
        sender=entry.sender,
        blob_sha256=entry.blob_sha256,
        size=entry.size,
        created_at=as_utc(entry.created_at),
        expires_at=as_utc(entry.expires_at),
        next_attempt_at=as_utc(entry.next_attempt_at),
        attempts=entry.attempts,
        delay_warned_at=as_utc(entry.delay_warned_at) if entry.delay_warned_at else None,
        authenticated_user=entry.authenticated_user,
        source=entry.source,
        dsn_envid=entry.dsn_envid,
        dsn_ret=entry.dsn_ret,
        smtputf8=entry.smtputf8,
        claimed_by=entry.claimed_by,
        recipients=recipients,
    )


def claim_due_entries(
    session: Session, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[EntryView]:
    """Take up to ``limit`` due entries for ``worker`` until ``now + lease``."""
    query = (
        select(QueueEntry)
        .where(QueueEntry.state == QueueState.QUEUED)
        .where(col(QueueEntry.next_attempt_at) <= now)
        .where(or_(col(QueueEntry.claimed_until).is_(None), col(QueueEntry.claimed_until) < now))
        .order_by(col(QueueEntry.next_attempt_at))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    entries = list(session.exec(query))
    for entry in entries:
        entry.claimed_by = worker
        entry.claimed_until = now + lease
        session.add(entry)
    session.flush()
    return [_view(session, entry) for entry in entries]


def get_entry(session: Session, entry_id: int) -> EntryView | None:
    entry = session.get(QueueEntry, entry_id)
    return _view(session, entry) if entry is not None else None


def list_entries(session: Session, include_done: bool = False) -> list[EntryView]:
    query = select(QueueEntry).order_by(col(QueueEntry.id))
    if not include_done:
        query = query.where(QueueEntry.state != QueueState.DONE)
    return [_view(session, entry) for entry in session.exec(query)]


def record_outcomes(
    session: Session, entry_id: int, outcomes: Sequence[RecipientOutcome], now: datetime
) -> None:
    """Store each recipient's result of one attempt."""
    for outcome in outcomes:
        session.execute(
            update(QueueRecipient)
            .where(col(QueueRecipient.id) == outcome.recipient_id)
            .where(col(QueueRecipient.entry_id) == entry_id)
            .where(col(QueueRecipient.status) == PENDING)
            .values(
                status=outcome.status,
                last_reply=outcome.reply[:2000],
                attempts=col(QueueRecipient.attempts) + 1,
                updated_at=now,
            )
        )


def reschedule(
    session: Session, entry_id: int, next_attempt: datetime, delay_warned: datetime | None
) -> None:
    """After an attempt that left recipients pending: next try, lease released."""
    entry = _require(session, entry_id)
    entry.attempts += 1
    entry.next_attempt_at = next_attempt
    entry.claimed_by = None
    entry.claimed_until = None
    if delay_warned is not None:
        entry.delay_warned_at = delay_warned
    session.add(entry)


def finish(session: Session, entry_id: int, counts_attempt: bool = True) -> None:
    """No recipient pending any more: the entry is done and lets go of its blob."""
    entry = _require(session, entry_id)
    if entry.state == QueueState.DONE:
        return
    if counts_attempt:
        entry.attempts += 1
    entry.state = QueueState.DONE
    entry.claimed_by = None
    entry.claimed_until = None
    session.add(entry)
    _release_blob(session, entry.blob_sha256)


def fail_pending(session: Session, entry_id: int, reply: str, now: datetime) -> int:
    """Mark every pending recipient failed with ``reply`` (expiry, admin bounce)."""
    result = session.execute(
        update(QueueRecipient)
        .where(col(QueueRecipient.entry_id) == entry_id)
        .where(col(QueueRecipient.status) == PENDING)
        .values(status=FAILED, last_reply=reply, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _require(session: Session, entry_id: int) -> QueueEntry:
    entry = session.get(QueueEntry, entry_id)
    if entry is None:
        raise QueueError(f"no queue entry {entry_id}")
    return entry


def _release_blob(session: Session, sha256: str) -> None:
    session.execute(
        update(Blob).where(col(Blob.sha256) == sha256).values(refcount=col(Blob.refcount) - 1)
    )


# ---------------------------------------------------------------- admin operations


def retry_now(session: Session, entry_id: int, now: datetime) -> None:
    """Make a queued (or held) entry due at once."""
    entry = _require(session, entry_id)
    if entry.state == QueueState.DONE:
        raise QueueError(f"queue entry {entry_id} is already finished")
    entry.state = QueueState.QUEUED
    entry.next_attempt_at = now
    session.add(entry)


def delete_entry(session: Session, entry_id: int) -> EntryView:
    """Remove an entry and its recipients without any DSN."""
    entry = _require(session, entry_id)
    view = _view(session, entry)
    if entry.state != QueueState.DONE:
        _release_blob(session, entry.blob_sha256)
    session.execute(delete(QueueRecipient).where(col(QueueRecipient.entry_id) == entry_id))
    session.delete(entry)
    return view


def sweep_done(session: Session, before: datetime) -> int:
    """Delete finished entries created before ``before``."""
    ids = list(
        session.exec(
            select(QueueEntry.id)
            .where(QueueEntry.state == QueueState.DONE)
            .where(col(QueueEntry.created_at) < before)
        )
    )
    if not ids:
        return 0
    session.execute(delete(QueueRecipient).where(col(QueueRecipient.entry_id).in_(ids)))
    session.execute(delete(QueueEntry).where(col(QueueEntry.id).in_(ids)))
    return len(ids)


def count_recent_outbound(session: Session, user: str, since: datetime) -> int:
    """Recipients in outside domains of the messages ``user`` submitted since ``since`` (a
    message to 100 outside addresses counts 100)."""
    total = session.exec(
        select(func.count())
        .select_from(QueueRecipient)
        .join(QueueEntry, col(QueueEntry.id) == col(QueueRecipient.entry_id))
        .where(QueueEntry.authenticated_user == user)
        .where(QueueEntry.source == "submission")
        .where(col(QueueEntry.created_at) >= since)
    ).one()
    return int(total)


def retry_delay(attempts: int, base: float, maximum: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2*base, 4*base..."""
    return float(min(maximum, base * (2 ** max(0, min(attempts, 30) - 1))))


def claim_entry(
    session: Session, entry_id: int, worker: str, now: datetime, lease: timedelta
) -> EntryView:
    """Take one entry for an admin action; refused while a worker holds it."""
    entry = _require(session, entry_id)
    if entry.state == QueueState.DONE:
        raise QueueError(f"queue entry {entry_id} is already finished")
    if entry.claimed_until is not None and as_utc(entry.claimed_until) > now:
        raise QueueError(f"queue entry {entry_id} is being delivered right now; try again")
    entry.claimed_by = worker
    entry.claimed_until = now + lease
    session.add(entry)
    session.flush()
    return _view(session, entry)
