"""Queue workers: claim due entries, deliver them, record each recipient's fate, send DSNs.

One attempt of one entry:
1. the pending recipients are grouped by domain; each domain's destinations (routing table or
   MX) are tried in order until one answers;
2. 2xx -> delivered, 5xx -> failed, 4xx or no answer -> still pending;
3. in ONE transaction: the recipients' results, the entry's next attempt (exponential backoff)
   or its end, and the DSN for the recipients that failed now (bounce) or, once, for those
   still pending after ``delay_warning`` (delay). A DSN is therefore written exactly once,
   whatever crashes; a crash between the remote 250 and that commit may repeat a delivery
   (RFC 5321 6.1 prefers a duplicate to a loss).
Past the entry's lifetime, pending recipients fail with the last reply they got.

A recipient that asked for NOTIFY=SUCCESS and was accepted by a server that does not speak DSN
gets a ``relayed`` report in that same transaction (RFC 3461 5.2.2); a DSN server got NOTIFY and
ORCPT and reports itself (5.2.1), so nothing is written here.

A server without 8BITMIME gets 8-bit mail converted to 7-bit MIME (``downconvert.py``). The
conversion changes the bytes our DKIM signature covers, so a message we signed (d= its local
From domain) is signed again after conversion, as RFC 6376 5.3 asks of signers; other parties'
signatures over converted parts no longer verify (ARC and the receiving server's policy decide).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from filters.dkim_sign import DkimSignCheck, sign_message
from filters.message_headers import from_domains, header_fields
from filters.pipeline import render_headers
from mailserver.config import GovmailConfig
from mailserver.delivery.client import (
    ConnectionPool,
    DestinationUnavailable,
    Envelope,
    OutgoingRecipient,
    pick_reply,
)
from mailserver.delivery.dispatch import QueueOptions, apply_delivery, resolve_generated
from mailserver.delivery.downconvert import to_seven_bit
from mailserver.delivery.dsn import RecipientReport, build_dsn, wants_dsn
from mailserver.delivery.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    EntryView,
    RecipientOutcome,
    RecipientRow,
    claim_due_entries,
    finish,
    record_outcomes,
    reschedule,
    retry_delay,
    sweep_done,
)
from mailserver.delivery.routing import Router, RoutingError
from storage.store import MailStore

log = logging.getLogger(__name__)

CLAIM_BATCH = 4


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Attempt:
    """What one attempt found: per recipient, its new status, reply and the MTA that gave it."""

    outcomes: dict[int, RecipientOutcome]
    remote_mta: dict[int, str]
    dsn_passed: frozenset[int] = frozenset()  # recipients whose server took NOTIFY/ORCPT


class QueueRunner:
    """Several workers over the shared queue table; ``wake`` makes them look at once."""

    def __init__(
        self,
        store: MailStore,
        config: GovmailConfig,
        router: Router,
        pool: ConnectionPool | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.config = config
        self.router = router
        self.pool = pool or ConnectionPool(
            config.server.hostname,
            connect_timeout=config.queue.connect_timeout_seconds,
            command_timeout=config.queue.command_timeout_seconds,
            idle_seconds=config.queue.idle_connection_seconds,
        )
        self.clock = clock
        self.signer: DkimSignCheck | None = None
        if "dkim_sign" in config.filters.outbound:  # to sign again after 7-bit conversion
            self.signer = DkimSignCheck(
                store, config.dkim_key_dir, timedelta(hours=config.dkim.publish_hours), clock
            )
        self.node = f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        count = max(1, self.config.queue.workers)
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"govmail-queue-{i}") for i in range(count)
        ]

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.pool.close_all()

    async def _worker(self, index: int) -> None:
        worker = f"{self.node}/{index}"
        while not self._stopping:
            try:
                done = await self.run_once(worker)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=queue_worker_error worker=%s", worker)
                done = 0
            if done:
                continue
            if index == 0:
                await self._housekeeping()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.config.queue.poll_seconds)

    async def _housekeeping(self) -> None:
        await self.pool.close_expired()
        before = self.clock() - timedelta(seconds=self.config.queue.keep_done_seconds)
        await self.store.write(lambda session: sweep_done(session, before))

    # ------------------------------------------------------------ one pass

    async def run_once(self, worker: str = "cli") -> int:
        """Claim and process due entries; returns how many were processed."""
        lease = timedelta(seconds=self.config.queue.claim_seconds)
        now = self.clock()
        entries = await self.store.write(
            lambda session: claim_due_entries(session, worker, now, lease, CLAIM_BATCH)
        )
        for entry in entries:
            try:
                await self.process(entry)
            except Exception:
                log.exception("event=queue_entry_error id=%d", entry.id)
        return len(entries)

    async def process(self, entry: EntryView) -> None:
        message = await self.store.offload(self.store.blobs.read, entry.blob_sha256)
        attempt = await self.attempt(entry, entry.pending(), message)
        await self.conclude(entry, attempt, message)

    async def attempt(
        self, entry: EntryView, pending: list[RecipientRow], message: bytes
    ) -> Attempt:
        by_domain: dict[str, list[RecipientRow]] = {}
        for recipient in pending:
            by_domain.setdefault(recipient.domain, []).append(recipient)
        outcomes: dict[int, RecipientOutcome] = {}
        remote_mta: dict[int, str] = {}
        dsn_passed: set[int] = set()
        for domain, recipients in by_domain.items():
            replies, host, dsn = await self._deliver_domain(entry, domain, recipients, message)
            if dsn:
                dsn_passed.update(r.id for r in recipients)
            for recipient in recipients:
                reply = replies[recipient.id]
                status = DELIVERED if reply[:1] == "2" else FAILED if reply[:1] == "5" else PENDING
                outcomes[recipient.id] = RecipientOutcome(recipient.id, status, reply)
                if host:
                    remote_mta[recipient.id] = host
                log.info(
                    "event=queue_attempt id=%d rcpt=%s status=%s reply=%r",
                    entry.id,
                    recipient.address,
                    status,
                    reply[:200],
                )
        return Attempt(outcomes, remote_mta, frozenset(dsn_passed))

    async def _deliver_domain(
        self, entry: EntryView, domain: str, recipients: list[RecipientRow], message: bytes
    ) -> tuple[dict[int, str], str | None, bool]:
        """Each recipient's reply, the host that gave them, and whether it speaks DSN."""
        keys = [r.id for r in recipients]
        try:
            destinations = await self.router.destinations(domain)
        except RoutingError as exc:
            return dict.fromkeys(keys, exc.reply), None, False
        envelope = Envelope(
            sender=entry.sender,
            recipients=tuple(
                OutgoingRecipient(r.id, r.address, r.notify, r.orcpt) for r in recipients
            ),
            envid=entry.dsn_envid,
            ret=entry.dsn_ret,
            smtputf8=entry.smtputf8,
        )
        failures: list[str] = []
        for destination in destinations:
            try:
                sent = await self.pool.send(destination, envelope, message, self.seven_bit)
            except DestinationUnavailable as exc:
                failures.append(exc.reply)
                continue
            if sent.converted:
                log.info("event=queue_7bit id=%d host=%s", entry.id, destination.host)
            return sent.replies, destination.host, sent.dsn
        reply = pick_reply(failures) if failures else "451 4.4.4 No destination for domain"
        if reply[:1] == "5":  # we never invent permanent failures from connection trouble
            reply = "451" + reply[3:]
        return dict.fromkeys(keys, reply), None, False

    async def seven_bit(self, message: bytes) -> bytes:
        """The message as 7-bit MIME for a server without 8BITMIME, signed again when the
        signature on it was ours (see the module docstring)."""
        try:
            converted = await self.store.offload(to_seven_bit, message)
        except Exception:  # a bug here must not wedge the entry: send it as it is
            log.exception("event=downconvert_failed")
            return message
        if converted == message or self.signer is None:
            return converted
        try:
            return await resign(self.signer, converted)
        except Exception:  # an unsigned message still beats no delivery
            log.exception("event=dkim_resign_failed")
            return converted

    async def conclude(self, entry: EntryView, attempt: Attempt, message: bytes) -> None:
        now = self.clock()
        outcomes = dict(attempt.outcomes)
        expired = now >= entry.expires_at
        if expired:
            for recipient_id, outcome in outcomes.items():
                if outcome.status == PENDING:
                    reply = f"{outcome.reply} (gave up after {entry.expires_at - entry.created_at})"
                    if reply[:1] != "5":
                        reply = "550 5.4.7 Delivery time expired: " + reply
                    outcomes[recipient_id] = RecipientOutcome(recipient_id, FAILED, reply)
        rows = {r.id: r for r in entry.recipients}
        still_pending = [o for o in outcomes.values() if o.status == PENDING]
        bounce = [
            self._report(rows[o.recipient_id], "failed", o.reply, attempt)
            for o in outcomes.values()
            if o.status == FAILED and wants_dsn(rows[o.recipient_id].notify, "FAILURE")
        ]
        delay_due = (
            still_pending
            and entry.delay_warned_at is None
            and now - entry.created_at >= timedelta(seconds=self.config.queue.delay_warning_seconds)
        )
        delayed = [
            self._report(rows[o.recipient_id], "delayed", o.reply, attempt)
            for o in still_pending
            if delay_due and wants_dsn(rows[o.recipient_id].notify, "DELAY")
        ]
        relayed = [  # RFC 3461 5.2.2: the next server cannot report success, so we say so
            self._report(rows[o.recipient_id], "relayed", o.reply, attempt)
            for o in outcomes.values()
            if o.status == DELIVERED
            and o.recipient_id not in attempt.dsn_passed
            and wants_dsn(rows[o.recipient_id].notify, "SUCCESS")
        ]
        notices: list[bytes] = []
        if entry.sender:  # never a DSN about a DSN (RFC 3461 6.2)
            for reports in (bounce, delayed, relayed):
                if reports:
                    notices.append(self._dsn(entry, reports, message, now))
        prepared = [await self.store.store_blob(raw) for raw in notices]
        next_attempt = now + timedelta(
            seconds=retry_delay(
                entry.attempts + 1,
                self.config.queue.retry_base_seconds,
                self.config.queue.retry_max_seconds,
            )
        )

        def job(session: Session) -> None:
            record_outcomes(session, entry.id, list(outcomes.values()), now)
            if still_pending:
                reschedule(session, entry.id, next_attempt, now if delay_due else None)
            else:
                finish(session, entry.id)
            if prepared:
                delivery = resolve_generated(session, [entry.sender])
                options = QueueOptions(
                    sender="",
                    now=now,
                    lifetime=timedelta(seconds=self.config.queue.lifetime_seconds),
                    source="dsn",
                )
                for blob, indexed in prepared:
                    apply_delivery(session, blob, indexed, delivery, options)

        await self.store.write(job)
        if prepared:
            self.wake()

    def _report(
        self, row: RecipientRow, action: str, reply: str, attempt: Attempt
    ) -> RecipientReport:
        return RecipientReport(
            address=row.address,
            action=action,
            reply=reply,
            remote_mta=attempt.remote_mta.get(row.id),
            orcpt=row.orcpt,
        )

    def _dsn(
        self, entry: EntryView, reports: list[RecipientReport], message: bytes, now: datetime
    ) -> bytes:
        host = self.config.server.hostname
        return build_dsn(
            reporting_mta=host,
            original_sender=entry.sender,
            reports=reports,
            original=message,
            arrival=entry.created_at,
            now=now,
            boundary=f"dsn-{secrets.token_hex(12)}",
            message_id=f"dsn.{entry.id}.{secrets.token_hex(8)}@{host}",
            envid=entry.dsn_envid,
            ret=entry.dsn_ret,
            will_retry_until=entry.expires_at,
        )


_SIGNING_DOMAIN = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)")


async def resign(signer: DkimSignCheck, message: bytes) -> bytes:
    """``message`` with the DKIM signatures of its local From domain made again: the old ones
    are dropped (they cover the 8-bit form) and new ones added. Unchanged when the From domain
    is not ours or the message carried no signature of it (we do not sign others' mail)."""
    domains = from_domains(message)
    if len(domains) != 1:
        return message
    domain = domains[0]
    ours = [
        value
        for name, value in header_fields(message)
        if name == "dkim-signature" and _signing_domain(value) == domain
    ]
    if not ours:
        return message
    keys = await signer.signing_keys(domain)
    if not keys:
        return message
    unsigned = _drop_signatures(message, domain)
    fields = await signer.store.offload(sign_message, unsigned, keys)
    return render_headers(fields) + unsigned


def _signing_domain(value: str) -> str | None:
    found = _SIGNING_DOMAIN.search(" ".join(value.split()))
    return found.group(1).lower().rstrip(".") if found else None


def _drop_signatures(message: bytes, domain: str) -> bytes:
    """The message without the DKIM-Signature fields whose d= is ``domain``."""
    end = message.find(b"\r\n\r\n")
    header, body = (message, b"") if end < 0 else (message[: end + 2], message[end + 2 :])
    fields: list[list[bytes]] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept: list[bytes] = []
    for lines in fields:
        raw = b"".join(lines)
        name, _, value = raw.partition(b":")
        if name.strip().lower() == b"dkim-signature" and (
            _signing_domain(value.decode("ascii", "replace")) == domain
        ):
            continue
        kept.append(raw)
    return b"".join(kept) + body
