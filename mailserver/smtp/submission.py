"""Submission (587 STARTTLS, 465 TLS): AUTH, sender rights, header completion, outbound limit.

- AUTH PLAIN and LOGIN (RFC 4616, and the LOGIN draft) against mailbox passwords, as async
  handler methods so the argon2 check runs off the event loop; failures count against the
  account (lockout) and against the client IP (``auth_throttle``).
- The envelope sender and every From address must be the user's: own address, aliases they
  own, send-as grants (``storage.recipients.sender_addresses``). So must every Sender,
  Resent-From and Resent-Sender address, and no display name or comment in those fields may
  show a local address the user does not own (``filters.impersonation``).
- Recipients of local domains resolve as on MX (with the user as the authenticated sender, for
  group policies); others are queued for delivery.
- Date and Message-ID are added when missing; a Received header always.
- More than ``smtp.outbound_limit_recipients`` recipients in outside domains within the window
  (a message to 100 of them counts 100) locks the account (provincial rule for compromised
  accounts) and alerts the admins.
"""

from __future__ import annotations

import binascii
import logging
import secrets
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Session
from sqlmodel import Session as DBSession

from filters.impersonation import find_resemblances
from filters.message_headers import field_addresses
from filters.pipeline import Action, Direction, Pipeline
from mailserver.auth import check_login, password_change_url
from mailserver.delivery.dispatch import (
    Delivery,
    QueueOptions,
    apply_delivery,
    resolve_generated,
    store_and_queue,
)
from mailserver.delivery.queue import count_recent_outbound
from mailserver.instance import Instance
from mailserver.smtp.address import ParsedPath
from mailserver.smtp.esmtp import RcptParams
from mailserver.smtp.mx import STORE_FAILED, MXPolicy, peer_ip
from mailserver.smtp.postmaster import ensure_postmaster
from mailserver.smtp.protocol import AcceptedRecipient, GovmailEnvelope, GovmailSMTP
from mailserver.smtp.submission_headers import complete_headers, from_addresses
from storage.accounts import find_domain, set_state
from storage.mailbox_ops import INBOX
from storage.models import Mailbox, MailboxState
from storage.recipients import Sender, sender_addresses

log = logging.getLogger(__name__)

MAX_AUTH_FIELD = 1024
SENDER_NOT_OWNED = "553 5.7.1 Sender address not owned by the authenticated user"
FROM_NOT_OWNED = "550 5.7.1 From address not owned by the authenticated user"
ACCOUNT_NOT_ACTIVE = "550 5.7.1 Account locked or disabled"
OUTBOUND_LIMIT = (
    "550 5.7.1 Too many recipients in outside domains: account locked, contact the admins"
)
AUTH_THROTTLED = "454 4.7.0 Too many failed logins from your address, try again later"
# Fields besides From that name who sent the message (RFC 5322 3.6.2, 3.6.6).
IDENTITY_FIELDS = ("sender", "resent-from", "resent-sender")
FIELD_TITLES = {
    "from": "From",
    "sender": "Sender",
    "resent-from": "Resent-From",
    "resent-sender": "Resent-Sender",
}


@dataclass(frozen=True)
class SubmitUser:
    """What AUTH established about the session's user."""

    mailbox_id: int
    address: str


class OutboundLimitReached(Exception):
    pass


def _b64(text: str | bytes) -> bytes | None:
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def user_of(session: Session) -> SubmitUser | None:
    data = session.auth_data
    return data if isinstance(data, SubmitUser) else None


class SubmissionPolicy(MXPolicy):
    """Mail from authenticated users, to anyone."""

    offers_auth = True
    direction = Direction.OUTBOUND

    def __init__(self, instance: Instance, wake_queue: Callable[[], None] = lambda: None) -> None:
        super().__init__(instance, wake_queue)
        self.throttle = instance.login_throttle  # shared with IMAP

    @property
    def pipeline(self) -> Pipeline:
        return self.instance.outbound_pipeline

    # ------------------------------------------------------------ AUTH

    async def _verify(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        ip = peer_ip(server.session)
        if await self.throttle.blocked(ip):
            log.warning("event=auth_throttled ip=%s", ip)
            return AuthResult(success=False, handled=False, message=AUTH_THROTTLED)
        if len(login) > MAX_AUTH_FIELD or len(password) > MAX_AUTH_FIELD:
            await self.throttle.note_failure(ip)
            return AuthResult(success=False, handled=False)
        result = await check_login(
            self.instance,
            login.decode("utf-8", "replace"),
            password.decode("utf-8", "replace"),
            "smtp",
        )
        if result.password_expired:
            url = password_change_url(self.instance)
            await server.push(f"535 5.7.8 Password must be changed first: {url}")
            return AuthResult(success=False, handled=True)
        if not result.ok or result.mailbox_id is None or result.address is None:
            await self.throttle.note_failure(ip)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=SubmitUser(result.mailbox_id, result.address))

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            decoded = _b64(args[1])
        else:
            answer: Any = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)  # aborted; already answered
            decoded = answer
        if decoded is None:
            await server.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        parts = decoded.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Malformed PLAIN credentials")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid != login:
            # RFC 4616 2: acting as someone else is not offered.
            return AuthResult(success=False, handled=False)
        return await self._verify(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            login: Any = _b64(args[1])
            if login is None:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        else:
            login = await server.challenge_auth("Username:")
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password: Any = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._verify(server, login, password)

    # ------------------------------------------------------------ MAIL, RCPT

    async def check_sender(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope
    ) -> str | None:
        user = user_of(session)
        path = envelope.sender_path
        if user is None or path is None:
            return "530 5.7.0 Authentication required"
        sender = path.mailbox().lower()

        def allowed(db: DBSession) -> tuple[str, list[str]]:
            mailbox = db.get(Mailbox, user.mailbox_id)
            state = mailbox.state if mailbox else MailboxState.DISABLED
            return state, sender_addresses(db, user.mailbox_id)

        state, addresses = await self.store.read(allowed)
        if state != MailboxState.ACTIVE:
            return ACCOUNT_NOT_ACTIVE
        if sender not in addresses:
            log.info("event=sender_refused user=%s sender=%r", user.address, sender)
            return SENDER_NOT_OWNED
        return None

    def sender_of(self, session: Session, envelope: GovmailEnvelope) -> Sender:
        user = user_of(session)
        base = super().sender_of(session, envelope)
        return Sender(base.address, user.mailbox_id if user else None)

    def remote_recipient(
        self, path: ParsedPath, address: str, params: RcptParams
    ) -> tuple[str, AcceptedRecipient | None]:
        return "250 2.1.5 OK", AcceptedRecipient(path, address, params, remote=(address,))

    # ------------------------------------------------------------ DATA

    async def prepare(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope, content: bytes
    ) -> bytes | str:
        user = user_of(session)
        if user is None:
            return "530 5.7.0 Authentication required"
        addresses = await self.store.read(lambda db: sender_addresses(db, user.mailbox_id))
        found = from_addresses(content)
        if not found:
            return "550 5.6.0 Message has no From address"
        if any(address not in addresses for address in found):
            log.info("event=from_refused user=%s from=%r", user.address, found)
            return FROM_NOT_OWNED
        refusal = await self.identity_refusal(content, addresses)
        if refusal is not None:
            log.info("event=identity_refused user=%s reply=%r", user.address, refusal)
            return refusal
        host = self.config.server.hostname
        return complete_headers(content, datetime.now(UTC), f"{secrets.token_hex(12)}@{host}")

    async def identity_refusal(self, content: bytes, owned: list[str]) -> str | None:
        """Why the Sender/Resent-* fields or a display name claim someone else, if they do."""
        for name in IDENTITY_FIELDS:
            if any(address not in owned for address in field_addresses(content, name)):
                return f"550 5.7.1 {FIELD_TITLES[name]} address not owned by the authenticated user"

        async def is_local_domain(domain: str) -> bool:
            return await self.store.read(lambda db: find_domain(db, domain) is not None)

        fields = ("from", *IDENTITY_FIELDS)
        for found in await find_resemblances(content, is_local_domain, fields):
            if found.shown not in owned:
                return (
                    f"550 5.7.1 The display name in {FIELD_TITLES[found.field]} shows "
                    f"{found.shown}, another local address"
                )
        return None

    def folder_for(self, action: Action) -> str:
        return INBOX  # an outbound spam verdict is the pipeline's to turn into a refusal

    def queue_options(self, session: Session, envelope: GovmailEnvelope) -> QueueOptions:
        user = user_of(session)
        base = super().queue_options(session, envelope)
        return QueueOptions(
            sender=base.sender,
            now=base.now,
            lifetime=base.lifetime,
            authenticated_user=user.address if user else None,
            source="submission",
            envid=base.envid,
            ret=base.ret,
            smtputf8=base.smtputf8,
        )

    async def commit(
        self, session: Session, envelope: GovmailEnvelope, message: bytes, delivery: Delivery
    ) -> str:
        user = user_of(session)
        if user is None or not delivery.remote:
            return await super().commit(session, envelope, message, delivery)
        limit = self.config.smtp.outbound_limit_recipients
        since = datetime.now(UTC) - timedelta(
            seconds=self.config.smtp.outbound_limit_window_seconds
        )
        options = self.queue_options(session, envelope)

        def within_limit(db: DBSession) -> None:
            # Counted in the same transaction as the enqueue: on SQLite (one writer) exact.
            if count_recent_outbound(db, user.address, since) > limit:
                raise OutboundLimitReached(user.address)

        try:
            entry_id = await store_and_queue(self.store, message, delivery, options, within_limit)
        except OutboundLimitReached:
            await self.lock_for_outbound_abuse(user)
            return OUTBOUND_LIMIT
        except Exception:
            log.exception("event=delivery_failed queue_id=%s", envelope.queue_id)
            return STORE_FAILED
        self.wake_queue()
        log.info(
            "event=submitted queue_id=%s user=%s rcpts=%s local=%d remote=%d entry=%s",
            envelope.queue_id,
            user.address,
            ",".join(accepted.address for accepted in envelope.accepted),
            len(delivery.local),
            len(delivery.remote),
            entry_id,
        )
        return f"250 2.0.0 OK queued as {envelope.queue_id}"

    async def lock_for_outbound_abuse(self, user: SubmitUser) -> None:
        """Lock the account and tell the admins, in one transaction."""
        config = self.config.smtp
        domain = user.address.rpartition("@")[2]
        admins = config.admin_alert_addresses or [f"postmaster@{domain}"]
        if not config.admin_alert_addresses:
            await ensure_postmaster(self.instance, domain)
        now = datetime.now(UTC)
        alert = _alert_message(self.config.server.hostname, user.address, admins, now, config)
        blob, indexed = await self.store.store_blob(alert)
        options = QueueOptions(
            sender="",
            now=now,
            lifetime=timedelta(seconds=self.config.queue.lifetime_seconds),
            source="alert",
        )

        def job(db: DBSession) -> None:
            mailbox = db.get(Mailbox, user.mailbox_id)
            if mailbox is None or mailbox.state != MailboxState.ACTIVE:
                return  # locked already (by a parallel session): one alert is enough
            set_state(db, "system:outbound-limit", user.address, MailboxState.LOCKED)
            apply_delivery(db, blob, indexed, resolve_generated(db, admins), options)

        await self.store.write(job)
        self.wake_queue()
        log.warning("event=alert kind=outbound_limit user=%s admins=%s", user.address, admins)


def _alert_message(
    hostname: str, address: str, admins: list[str], now: datetime, config: Any
) -> bytes:
    window = int(config.outbound_limit_window_seconds // 60)
    lines = [
        f"From: govmail <postmaster@{hostname}>",
        f"To: {', '.join(admins)}",
        f"Subject: [govmail] Account locked: {address}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <alert.{secrets.token_hex(10)}@{hostname}>",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"Tài khoản {address} đã bị khóa: gửi thư tới hơn {config.outbound_limit_recipients}"
        f" người nhận bên ngoài trong {window} phút (có thể bị chiếm quyền).",
        f"The account {address} was locked: more than {config.outbound_limit_recipients}"
        f" recipients in outside domains within {window} minutes (possibly compromised).",
        "",
    ]
    return "\r\n".join(lines).encode()
