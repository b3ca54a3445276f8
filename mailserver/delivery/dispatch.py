"""One accepted message, stored for its local recipients and queued for the remote ones in ONE
transaction: the SMTP 250 (or a DSN's creation) happens after that single durable commit, so a
crash either loses nothing that was acknowledged or keeps nothing that was not.

Also resolves the recipients of messages the server writes itself (DSNs, admin alerts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlmodel import Session

from mailserver.delivery.queue import OutboundRecipient, enqueue
from mailserver.delivery.success_dsn import SuccessRequest, build_success_dsn
from storage.accounts import find_mailbox
from storage.blobs import StoredBlob
from storage.mailbox_ops import INBOX, FolderNotFound, NewCopy, append_many, folder_id_by_name
from storage.message_index import IndexedMessage
from storage.recipients import Expansion, Refusal, Sender, is_local_domain, resolve_local
from storage.store import MailStore
from storage.usage_counters import count_usage_many


@dataclass
class Delivery:
    """Where one message goes: (mailbox, folder) pairs here, and outside recipients."""

    local: list[tuple[int, str]] = field(default_factory=list)
    remote: list[OutboundRecipient] = field(default_factory=list)
    success: SuccessRequest | None = None  # RFC 3461 SUCCESS report owed once committed

    def add_local(self, mailbox_id: int, folder: str = INBOX) -> None:
        # Each mailbox once, whatever the number of addresses that led to it.
        if all(existing != mailbox_id for existing, _ in self.local):
            self.local.append((mailbox_id, folder))

    def add_remote(self, recipient: OutboundRecipient) -> None:
        if all(r.address != recipient.address for r in self.remote):
            self.remote.append(recipient)

    def add_expansion(self, expansion: Expansion, folder: str = INBOX) -> None:
        for mailbox_id in expansion.mailbox_ids:
            self.add_local(mailbox_id, folder)
        for address in expansion.remote:
            self.add_remote(OutboundRecipient(address))


@dataclass(frozen=True)
class QueueOptions:
    """How remote recipients are queued."""

    sender: str
    now: datetime
    lifetime: timedelta
    authenticated_user: str | None = None
    source: str = "submission"
    envid: str | None = None
    ret: str | None = None
    smtputf8: bool = False  # MAIL ... SMTPUTF8 (RFC 6531): kept for the outbound client


@dataclass(frozen=True)
class PendingDelivery:
    """One accepted message waiting for its commit: its bytes, where it goes, and what else
    must happen in the same transaction (``also``: a check; ``report``: a success DSN)."""

    blob: StoredBlob
    indexed: IndexedMessage
    delivery: Delivery
    options: QueueOptions
    also: Callable[[Session], None] | None = None
    report: Callable[[Session], None] | None = None


def apply_delivery(
    session: Session,
    blob: StoredBlob,
    indexed: IndexedMessage,
    delivery: Delivery,
    options: QueueOptions,
) -> int | None:
    """Inside a write job: append the local copies, queue the remote part. Returns the queue
    entry id, if any. Quota was judged at RCPT, so it is not enforced again here."""
    return apply_deliveries(session, [PendingDelivery(blob, indexed, delivery, options)])[0]


def apply_deliveries(session: Session, pending: list[PendingDelivery]) -> list[int | None]:
    """``apply_delivery`` for several messages in one transaction (the group commit's batch):
    every local copy appended by one ``append_many``, the usage counters in one statement;
    then, message by message, its queue entry, ``also`` and ``report``."""
    folder_ids: dict[tuple[int, str], int] = {}
    copies: list[NewCopy] = []
    counts: dict[tuple[int, date], list[int]] = {}
    for item in pending:
        day = item.options.now.date()
        for mailbox_id, folder_name in item.delivery.local:
            key = (mailbox_id, folder_name)
            if key not in folder_ids:
                try:
                    folder_ids[key] = folder_id_by_name(session, mailbox_id, folder_name)
                except FolderNotFound:  # a deleted Junk folder
                    folder_ids[key] = folder_id_by_name(session, mailbox_id, INBOX)
            copies.append(NewCopy(mailbox_id, folder_ids[key], item.blob, item.indexed))
        for mailbox_id in {mailbox_id for mailbox_id, _ in item.delivery.local}:
            counts.setdefault((mailbox_id, day), [0, 0])[0] += 1
        sender_id = _sender_mailbox(session, item.options)
        if sender_id is not None:
            counts.setdefault((sender_id, day), [0, 0])[1] += 1
    append_many(session, copies)
    # Counter rows are locked in one order (by id), whatever the order of the recipients.
    count_usage_many(session, [(m, d, r, s, 0) for (m, d), (r, s) in sorted(counts.items())])
    entries: list[int | None] = []
    for item in pending:
        entries.append(_enqueue_remote(session, item) if item.delivery.remote else None)
        if item.also is not None:
            item.also(session)
        if item.report is not None:
            item.report(session)
    return entries


def _enqueue_remote(session: Session, item: PendingDelivery) -> int:
    options = item.options
    return enqueue(
        session,
        blob=item.blob,
        sender=options.sender,
        recipients=item.delivery.remote,
        now=options.now,
        lifetime=options.lifetime,
        authenticated_user=options.authenticated_user,
        source=options.source,
        envid=options.envid,
        ret=options.ret,
        smtputf8=options.smtputf8,
    )


def _sender_mailbox(session: Session, options: QueueOptions) -> int | None:
    """The authenticated sender's mailbox, whose "sent" counter a submission adds to."""
    if options.source != "submission" or not options.authenticated_user:
        return None
    mailbox = find_mailbox(session, options.authenticated_user)
    return mailbox.id if mailbox is not None else None


async def store_and_queue(
    store: MailStore,
    raw: bytes,
    delivery: Delivery,
    options: QueueOptions,
    also: Callable[[Session], None] | None = None,
) -> int | None:
    """Write the bytes durably, then one commit for every copy and the queue entry (and
    ``also``, run in the same transaction). Returns only after that commit."""
    blob, indexed = await store.store_blob(raw)
    report = await _success_report(store, raw, delivery, options) if delivery.success else None

    pending = PendingDelivery(blob, indexed, delivery, options, also, report)
    if also is None and report is None:  # nothing but data: it may travel to the one writer
        return await store.write_shared(apply_deliveries, pending)
    return await store.write_batched(apply_deliveries, pending)


def resolve_generated(session: Session, addresses: Sequence[str]) -> Delivery:
    """Recipients of a message the server writes (DSN, alert): local ones resolved as any
    sender's would be, without quota refusal; others go to the queue."""
    delivery = Delivery()
    for address in addresses:
        address = address.lower()
        domain = address.rpartition("@")[2]
        if not is_local_domain(session, domain):
            delivery.add_remote(OutboundRecipient(address, notify="NEVER"))
            continue
        result = resolve_local(session, address, Sender(""))
        if isinstance(result, Expansion):
            delivery.add_expansion(result)
        elif result is Refusal.OVER_QUOTA:
            mailbox = find_mailbox(session, address)
            if mailbox is not None and mailbox.id is not None:
                delivery.add_local(mailbox.id)
    return delivery


async def _success_report(
    store: MailStore, raw: bytes, delivery: Delivery, options: QueueOptions
) -> Callable[[Session], None] | None:
    """The success DSN (success_dsn.py) as a part of the delivery's own write job: it exists
    if and only if the copies it reports on were committed. Never for a null sender (a DSN
    about a DSN, RFC 3461 6.2)."""
    if delivery.success is None or not options.sender:
        return None  # never a DSN about a DSN
    dsn = build_success_dsn(
        delivery.success,
        sender=options.sender,
        original=raw,
        arrival=options.now,
        envid=options.envid,
        ret=options.ret,
    )
    dsn_blob, dsn_indexed = await store.store_blob(dsn)
    dsn_options = QueueOptions(sender="", now=options.now, lifetime=options.lifetime, source="dsn")

    def deliver_report(session: Session) -> None:
        recipients = resolve_generated(session, [options.sender])
        apply_delivery(session, dsn_blob, dsn_indexed, recipients, dsn_options)

    return deliver_report
