"""The MX listener's policy: which recipients are ours, and durable local delivery of DATA.

aiosmtpd owns the SMTP grammar; this handler owns the decisions (aiosmtpd's hook model): RCPT
accepts only addresses of local domains that exist, and DATA answers 250 only once the message
is committed to every recipient's INBOX.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlmodel import Session as DBSession

from mailserver.smtp.trace import new_queue_id, protocol_name, received_header
from storage.accounts import find_domain, find_mailbox, normalise_address
from storage.mailbox_ops import INBOX
from storage.models import MailboxState
from storage.store import MailStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalRecipient:
    address: str
    mailbox_id: int


@dataclass(frozen=True)
class RecipientVerdict:
    reply: str
    recipient: LocalRecipient | None = None


def resolve_recipient(session: DBSession, address: str) -> RecipientVerdict:
    """Decide RCPT for ``address``: accepted local mailbox, or the reply refusing it."""
    try:
        normalised = normalise_address(address)
    except ValueError:
        return RecipientVerdict("501 5.1.3 Bad recipient address syntax")
    domain = normalised.partition("@")[2]
    if find_domain(session, domain) is None:
        return RecipientVerdict("550 5.7.1 Relaying denied: not a local domain")
    mailbox = find_mailbox(session, normalised)
    if mailbox is None or mailbox.id is None:
        return RecipientVerdict("550 5.1.1 Recipient address rejected: user unknown")
    if mailbox.state == MailboxState.DISABLED:
        return RecipientVerdict("550 5.2.1 Mailbox disabled, not accepting messages")
    if mailbox.used_bytes >= mailbox.quota_bytes:
        return RecipientVerdict("452 4.2.2 Mailbox full, try again later")
    # A locked mailbox still receives mail (only its logins are refused).
    return RecipientVerdict("250 2.1.5 OK", LocalRecipient(normalised, mailbox.id))


@dataclass
class TransactionState:
    queue_id: str = field(default_factory=new_queue_id)
    recipients: list[LocalRecipient] = field(default_factory=list)


class LocalDeliveryHandler:
    """aiosmtpd handler for mail to local mailboxes."""

    def __init__(self, store: MailStore, hostname: str, max_recipients: int) -> None:
        self.store = store
        self.hostname = hostname
        self.max_recipients = max_recipients

    @staticmethod
    def _state(envelope: Envelope) -> TransactionState:
        state: TransactionState | None = getattr(envelope, "govmail", None)
        if state is None:
            state = TransactionState()
            envelope.govmail = state  # type: ignore[attr-defined]
        return state

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        state = self._state(envelope)
        if len(state.recipients) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        verdict = await self.store.read(lambda db: resolve_recipient(db, address))
        if verdict.recipient is not None:
            if verdict.recipient not in state.recipients:
                state.recipients.append(verdict.recipient)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        log.info(
            "event=rcpt session=%s queue_id=%s rcpt=%s reply=%r",
            id(session),
            state.queue_id,
            address,
            verdict.reply[:3],
        )
        return verdict.reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        state = self._state(envelope)
        if not state.recipients:
            return "554 5.5.1 No valid recipients"
        content = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        trace = received_header(
            helo=session.host_name,
            peer_ip=peer,
            by_host=self.hostname,
            protocol=protocol_name(
                esmtp=bool(session.extended_smtp),
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
                utf8=bool(envelope.smtp_utf8),
            ),
            queue_id=state.queue_id,
            recipient=state.recipients[0].address if len(state.recipients) == 1 else None,
            when=datetime.now(UTC),
        )
        targets = [(r.mailbox_id, INBOX) for r in state.recipients]
        try:
            await self.store.deliver(trace + content, targets)
        except Exception:
            log.exception("event=delivery_failed queue_id=%s", state.queue_id)
            return "451 4.3.0 Temporary failure storing the message, try again later"
        log.info(
            "event=delivered queue_id=%s recipients=%d size=%d",
            state.queue_id,
            len(targets),
            len(content),
        )
        return f"250 2.0.0 OK queued as {state.queue_id}"

    async def handle_exception(self, error: Exception) -> str:
        # Never leak internals to the peer (aiosmtpd's default names the exception).
        log.error("event=smtp_exception error=%r", error)
        return "421 4.3.0 Internal error, closing connection"


def mx_protocol_factory(
    handler: LocalDeliveryHandler, hostname: str, data_size_limit: int, timeout: float
) -> Any:
    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=hostname,
            ident="govmail ESMTP",
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=timeout,
        )

    return factory
