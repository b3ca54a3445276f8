"""The MX listener's policy: which recipients are ours, and durable delivery of DATA.

aiosmtpd (through ``smtp.protocol.GovmailSMTP``) owns the grammar; this policy owns the
decisions. RCPT accepts only addresses of local domains that resolve (mailbox, alias, group with
its send policy, ``+tag``); anything else is ``550 5.7.1`` (not ours: no relaying) or
``550 5.1.1`` (unknown). DATA runs the inbound filter pipeline, then answers 250 only once the
message is committed to every local recipient's folder and queued for any forwarding targets,
in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlmodel import Session as DBSession
from sqlmodel import col, select

from filters.pipeline import Action, Direction, MessageContext, Pipeline, PipelineResult
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from mailserver.delivery.success_dsn import forwarded_recipient, success_request
from mailserver.instance import Instance
from mailserver.smtp.address import ParsedPath, normalise_domain
from mailserver.smtp.esmtp import RcptParams
from mailserver.smtp.postmaster import ensure_postmaster, is_postmaster
from mailserver.smtp.protocol import AcceptedRecipient, GovmailEnvelope, GovmailSMTP
from mailserver.smtp.trace import protocol_name, received_header
from storage.mailbox_ops import INBOX
from storage.models import Domain
from storage.recipients import Expansion, Refusal, Sender, is_local_domain, resolve_local

log = logging.getLogger(__name__)

JUNK = "Junk"
REFUSAL_REPLIES = {
    Refusal.UNKNOWN: "550 5.1.1 Recipient address rejected: user unknown",
    Refusal.DISABLED: "550 5.2.1 Mailbox disabled, not accepting messages",
    Refusal.OVER_QUOTA: "452 4.2.2 Mailbox full, try again later",
    Refusal.GROUP_POLICY: "550 5.7.1 Sender not allowed to write to this group",
    Refusal.LOOP: "550 5.4.6 Alias or group expansion loop",
}
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
STORE_FAILED = "451 4.3.0 Temporary failure storing the message, try again later"


def peer_ip(session: Session) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)


def recipient_address(path: ParsedPath) -> str:
    """``local@a-label-domain``, lower-case (our addresses are stored so)."""
    return f"{path.local_part.lower()}@{normalise_domain(path.domain)}"


def _postmaster_domain(session: DBSession) -> str | None:
    """Where a bare ``<Postmaster>`` (RFC 5321 4.1.1.3) goes: the first local domain."""
    return session.exec(select(Domain.name).order_by(col(Domain.id))).first()


class MXPolicy:
    """Mail from other servers to local recipients."""

    offers_auth = False
    direction = Direction.INBOUND

    def __init__(self, instance: Instance, wake_queue: Callable[[], None] = lambda: None) -> None:
        self.instance = instance
        self.store = instance.store
        self.config = instance.config
        self.wake_queue = wake_queue

    @property
    def pipeline(self) -> Pipeline:
        return self.instance.inbound_pipeline

    # ------------------------------------------------------------ MAIL, RCPT

    async def check_sender(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope
    ) -> str | None:
        return None

    def sender_of(self, session: Session, envelope: GovmailEnvelope) -> Sender:
        path = envelope.sender_path
        return Sender(path.mailbox().lower() if path is not None else "")

    async def check_recipient(
        self,
        server: GovmailSMTP,
        session: Session,
        envelope: GovmailEnvelope,
        path: ParsedPath,
        params: RcptParams,
    ) -> tuple[str, AcceptedRecipient | None]:
        if len(envelope.accepted) >= self.config.smtp.max_recipients:
            return TOO_MANY_RECIPIENTS, None
        sender = self.sender_of(session, envelope)
        suffixes = tuple(self.config.smtp.government_domain_suffixes) + tuple(
            r.domain for r in self.config.routing.routes
        )

        def decide(db: DBSession) -> tuple[str, AcceptedRecipient | None]:
            if not path.domain:
                domain = _postmaster_domain(db)
                if domain is None:
                    return REFUSAL_REPLIES[Refusal.UNKNOWN], None
                address = f"postmaster@{domain}"
            else:
                try:
                    address = recipient_address(path)
                except ValueError:
                    return "501 5.1.3 Bad recipient address syntax", None
            if not is_local_domain(db, address.rpartition("@")[2]):
                return self.remote_recipient(path, address, params)
            result = resolve_local(db, address, sender, suffixes)
            if isinstance(result, Refusal):
                return REFUSAL_REPLIES[result], None
            if result.dropped:
                log.info("event=forward_dropped rcpt=%s targets=%s", address, result.dropped)
            return "250 2.1.5 OK", _accepted(path, address, params, result)

        reply, accepted = await self.store.read(decide)
        if reply == REFUSAL_REPLIES[Refusal.UNKNOWN] and is_postmaster(path.local_part):
            # RFC 5321 4.5.1: postmaster of every local domain exists (made on first use).
            if path.domain:
                domain: str | None = normalise_domain(path.domain)  # local: it was resolved
            else:
                domain = await self.store.read(_postmaster_domain)
            if domain is not None:
                await ensure_postmaster(self.instance, domain)
                reply, accepted = await self.store.read(decide)
        # Accepted recipients are logged once, with the message (event=accepted/submitted).
        if accepted is None:
            log.info("event=rcpt queue_id=%s rcpt=%s reply=%r", envelope.queue_id, path, reply[:9])
        return reply, accepted

    def remote_recipient(
        self, path: ParsedPath, address: str, params: RcptParams
    ) -> tuple[str, AcceptedRecipient | None]:
        """MX relays for nobody (RFC 5321 3.6.2 open relays are exactly what we must not be)."""
        return "550 5.7.1 Relaying denied: not a local domain", None

    # ------------------------------------------------------------ DATA

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, GovmailEnvelope) and isinstance(server, GovmailSMTP)
        if not envelope.accepted:
            return "554 5.5.1 No valid recipients"
        content = await self.prepare(server, session, envelope, envelope.original_content or b"")
        if isinstance(content, str):
            return content
        context = self.context(server, session, envelope)
        result = await self.pipeline.run(
            self.received(server, session, envelope) + content, context
        )
        if result.action in (Action.REJECT, Action.TEMPFAIL):
            default = "550 5.7.1 Message refused" if result.action is Action.REJECT else None
            return result.reply or default or "451 4.7.1 Try again later"
        delivery = self.delivery(envelope, result)
        return await self.commit(session, envelope, result.message, delivery)

    async def prepare(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope, content: bytes
    ) -> bytes | str:
        """The message as it enters the pipeline, or the reply refusing it."""
        return content

    def folder_for(self, action: Action) -> str:
        """Where an accepted copy is filed: Junk for a junk verdict, else INBOX."""
        return JUNK if action is Action.JUNK else INBOX

    def context(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope
    ) -> MessageContext:
        user = getattr(session.auth_data, "address", None)
        return MessageContext(
            direction=self.direction,
            peer_ip=peer_ip(session),
            helo=session.host_name or "",
            mail_from=envelope.sender_path.mailbox() if envelope.sender_path else "",
            recipients=tuple(a.address for a in envelope.accepted),
            authenticated_user=user if isinstance(user, str) else None,
            tls=server.uses_tls(),
            queue_id=envelope.queue_id,
        )

    def received(self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope) -> bytes:
        recipients = envelope.accepted
        return received_header(
            helo=session.host_name,
            peer_ip=peer_ip(session),
            by_host=self.config.server.hostname,
            protocol=protocol_name(
                esmtp=bool(session.extended_smtp),
                tls=server.uses_tls(),
                authenticated=bool(session.authenticated),
                utf8=bool(envelope.smtp_utf8),
            ),
            queue_id=envelope.queue_id,
            recipient=recipients[0].address if len(recipients) == 1 else None,
            when=datetime.now(UTC),
        )

    def delivery(self, envelope: GovmailEnvelope, result: PipelineResult) -> Delivery:
        """Each recipient's copies, filed by that recipient's verdict (its own sender allow or
        block entry wins over the message-wide one)."""
        delivery = Delivery()
        for accepted in envelope.accepted:
            folder = self.folder_for(result.action_for(accepted.address))
            for mailbox_id in accepted.local_mailboxes:
                delivery.add_local(mailbox_id, folder)
            for address in accepted.remote:
                delivery.add_remote(forwarded_recipient(accepted, address))
        delivery.success = success_request(self.config.server.hostname, envelope.accepted)
        return delivery

    def queue_options(self, session: Session, envelope: GovmailEnvelope) -> QueueOptions:
        sender = envelope.sender_path.mailbox() if envelope.sender_path else ""
        return QueueOptions(
            sender=sender,
            now=datetime.now(UTC),
            lifetime=timedelta(seconds=self.config.queue.lifetime_seconds),
            source="forward",
            envid=envelope.sender_params.envid,
            ret=envelope.sender_params.ret,
            smtputf8=envelope.sender_params.smtputf8,
        )

    async def commit(
        self, session: Session, envelope: GovmailEnvelope, message: bytes, delivery: Delivery
    ) -> str:
        try:
            entry_id = await store_and_queue(
                self.store, message, delivery, self.queue_options(session, envelope)
            )
        except Exception:
            log.exception("event=delivery_failed queue_id=%s", envelope.queue_id)
            return STORE_FAILED
        if entry_id is not None or delivery.success is not None:  # a success DSN may be queued
            self.wake_queue()
        log.info(
            "event=accepted queue_id=%s from=%s rcpts=%s local=%d remote=%d size=%d queue_entry=%s",
            envelope.queue_id,
            envelope.mail_from,
            ",".join(accepted.address for accepted in envelope.accepted),
            len(delivery.local),
            len(delivery.remote),
            len(message),
            entry_id,
        )
        return f"250 2.0.0 OK queued as {envelope.queue_id}"

    async def handle_exception(self, error: Exception) -> str:
        # Never leak internals to the peer (aiosmtpd's default names the exception).
        log.error("event=smtp_exception error=%r", error)
        return "421 4.3.0 Internal error, closing connection"


def _accepted(
    path: ParsedPath, address: str, params: RcptParams, expansion: Expansion
) -> AcceptedRecipient:
    return AcceptedRecipient(
        path=path,
        address=address,
        params=params,
        local_mailboxes=tuple(expansion.mailbox_ids),
        remote=tuple(expansion.remote),
    )
