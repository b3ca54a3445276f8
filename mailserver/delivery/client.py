"""The SMTP client of the queue: one transaction to one destination, over pooled connections.

Connections are kept per :class:`Destination` for ``idle_seconds`` and reused (RSET between
transactions), so a burst to another agency costs one TCP and TLS handshake, not one per
message. STARTTLS follows the route's policy (RFC 3207): ``required`` never sends in clear text;
``opportunistic`` uses TLS when offered and falls back to clear text if the handshake fails.

Replies are kept per recipient (RFC 5321 3.3: each RCPT has its own answer; DATA's answer applies
to all accepted). A failure to reach the destination raises :class:`DestinationUnavailable` so
the caller can try the next MX.

What the server offers shapes the transaction:
- DSN: RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT are passed on, and :class:`Sent` says so, so
  the queue knows whether it still owes a ``relayed`` report (RFC 3461 5.2.1, 5.2.2);
- 8BITMIME: without it an 8-bit message is converted to 7 bits first (RFC 6152 3,
  ``downconvert.py``), through the caller's ``seven_bit`` (which may re-sign DKIM);
- SMTPUTF8: without it a message that needs it (non-ASCII envelope, or received with SMTPUTF8
  and carrying UTF-8 header fields) is refused with 5.6.7 (RFC 6531 3.2), as a permanent failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from mailserver.delivery.downconvert import has_8bit, header_has_8bit, to_seven_bit
from mailserver.delivery.routing import Destination, TLSPolicy
from mailserver.smtp.esmtp import encode_xtext

log = logging.getLogger(__name__)

SMTPUTF8_REFUSED = "553 5.6.7 Remote server does not support SMTPUTF8"
SevenBit = Callable[[bytes], Awaitable[bytes]]


class DestinationUnavailable(Exception):
    """Could not talk to the destination at all; ``reply`` says why (a 4xx text)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class OutgoingRecipient:
    key: int  # the caller's id for this recipient
    address: str
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[OutgoingRecipient, ...]
    envid: str | None = None
    ret: str | None = None
    smtputf8: bool = False  # received with MAIL ... SMTPUTF8


@dataclass(frozen=True)
class Sent:
    """One transaction's outcome: the reply per recipient key, and whether the server
    advertised DSN (it then got NOTIFY/ORCPT and reports success itself)."""

    replies: dict[int, str]
    dsn: bool = False
    converted: bool = False  # sent as 7-bit MIME after conversion (RFC 6152 3)


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    tls: bool
    idle_since: float


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def tls_context_for(destination: Destination) -> ssl.SSLContext:
    if destination.verify_certificate:
        cafile = str(destination.ca_file) if destination.ca_file else None
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ConnectionPool:
    """Idle SMTP connections per destination."""

    def __init__(
        self,
        local_hostname: str,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        idle_seconds: float = 30.0,
    ) -> None:
        self.local_hostname = local_hostname
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[Destination, list[_Connection]] = {}
        self.opened = 0  # connections made, for tests and metrics

    async def _open(self, destination: Destination, use_tls: bool) -> _Connection:
        smtp = aiosmtplib.SMTP(
            hostname=destination.host,
            port=destination.port,
            local_hostname=self.local_hostname,
            timeout=self.connect_timeout,
            start_tls=False,
            use_tls=False,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
            tls = False
            if use_tls and smtp.supports_extension("starttls"):
                await smtp.starttls(
                    tls_context=tls_context_for(destination), server_hostname=destination.host
                )
                await smtp.ehlo()
                tls = True
            elif destination.tls is TLSPolicy.REQUIRED:
                raise DestinationUnavailable(
                    f"451 4.7.5 {destination.host} does not offer STARTTLS, which is required"
                )
        except DestinationUnavailable:
            smtp.close()
            raise
        except (OSError, aiosmtplib.SMTPException, ssl.SSLError, TimeoutError) as exc:
            smtp.close()
            raise DestinationUnavailable(
                f"451 4.4.1 Cannot talk to {destination.host}:{destination.port}: {exc}"
            ) from exc
        smtp.timeout = self.command_timeout
        self.opened += 1
        return _Connection(smtp, tls, time.monotonic())

    async def acquire(self, destination: Destination) -> _Connection:
        idle = self._idle.get(destination, [])
        while idle:
            connection = idle.pop()
            if time.monotonic() - connection.idle_since < self.idle_seconds and (
                connection.smtp.is_connected
            ):
                return connection
            await self._close(connection)
        want_tls = destination.tls is not TLSPolicy.NONE
        try:
            return await self._open(destination, want_tls)
        except DestinationUnavailable:
            if destination.tls is not TLSPolicy.OPPORTUNISTIC:
                raise
            # Opportunistic TLS: a failed handshake does not stop delivery in clear text.
            return await self._open(destination, use_tls=False)

    def release(self, destination: Destination, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.setdefault(destination, []).append(connection)

    async def _close(self, connection: _Connection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.smtp.quit(), 5)
        connection.smtp.close()

    async def close_all(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await self._close(connection)

    async def close_expired(self) -> None:
        now = time.monotonic()
        for destination, connections in list(self._idle.items()):
            keep = [c for c in connections if now - c.idle_since < self.idle_seconds]
            for connection in connections:
                if connection not in keep:
                    await self._close(connection)
            self._idle[destination] = keep

    async def send(
        self,
        destination: Destination,
        envelope: Envelope,
        message: bytes,
        seven_bit: SevenBit | None = None,
    ) -> Sent:
        """One transaction; the reply for each recipient key. Raises DestinationUnavailable.
        ``seven_bit`` converts an 8-bit message for a server without 8BITMIME (default: MIME
        conversion alone)."""
        connection = await self.acquire(destination)
        try:
            sent = await _transaction(connection.smtp, envelope, message, seven_bit)
        except (OSError, aiosmtplib.SMTPException, TimeoutError) as exc:
            connection.smtp.close()
            raise DestinationUnavailable(
                f"451 4.4.2 Connection to {destination.host} lost: {exc}"
            ) from exc
        self.release(destination, connection)
        return sent


def _mail_options(smtp: aiosmtplib.SMTP, envelope: Envelope, message: bytes) -> list[str]:
    options: list[str] = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(message)}")
    if smtp.supports_extension("8bitmime") and has_8bit(message):
        options.append("BODY=8BITMIME")
    if smtp.supports_extension("dsn"):
        if envelope.ret:
            options.append(f"RET={envelope.ret}")
        if envelope.envid:
            options.append(f"ENVID={envelope.envid}")
    return options


def _needs_smtputf8(envelope: Envelope, message: bytes) -> bool:
    """RFC 6531 3.2 / RFC 6532: non-ASCII addresses, or an SMTPUTF8 message whose header
    fields are UTF-8. Raw 8-bit headers of mail received without SMTPUTF8 are legacy mail in
    some charset, sent as they are (as Postfix does), not refused."""
    if not envelope.sender.isascii() or any(not r.address.isascii() for r in envelope.recipients):
        return True
    return envelope.smtputf8 and header_has_8bit(message)


async def _command(smtp: aiosmtplib.SMTP, *words: str) -> str:
    response = await smtp.execute_command(*(w.encode("utf-8") for w in words))
    return _reply(response.code, response.message)


async def _transaction(
    smtp: aiosmtplib.SMTP, envelope: Envelope, message: bytes, seven_bit: SevenBit | None
) -> Sent:
    keys = [r.key for r in envelope.recipients]
    dsn = smtp.supports_extension("dsn")
    utf8 = _needs_smtputf8(envelope, message)
    if utf8 and not smtp.supports_extension("smtputf8"):
        # RFC 6531 3.2: without SMTPUTF8 at the server, such mail cannot be sent.
        return Sent(dict.fromkeys(keys, SMTPUTF8_REFUSED), dsn)
    converted = False
    if not smtp.supports_extension("8bitmime") and has_8bit(message):
        # RFC 6152 3: convert to 7-bit MIME (or return it; converting is kinder).
        message = await seven_bit(message) if seven_bit else to_seven_bit(message)
        converted = True
    options = _mail_options(smtp, envelope, message)
    if utf8:
        options.append("SMTPUTF8")
    reply = await _command(smtp, "MAIL", f"FROM:<{envelope.sender}>", *options)
    if not reply.startswith("2"):
        await _command(smtp, "RSET")
        return Sent(dict.fromkeys(keys, reply), dsn, converted)
    replies: dict[int, str] = {}
    accepted: list[int] = []
    for recipient in envelope.recipients:
        rcpt_options: list[str] = []
        if dsn and recipient.notify:
            rcpt_options.append(f"NOTIFY={recipient.notify}")
        if dsn:
            orcpt = recipient.orcpt or f"rfc822;{encode_xtext(recipient.address)}"
            rcpt_options.append(f"ORCPT={orcpt}")
        reply = await _command(smtp, "RCPT", f"TO:<{recipient.address}>", *rcpt_options)
        replies[recipient.key] = reply
        if reply.startswith("2"):
            accepted.append(recipient.key)
    if not accepted:
        await _command(smtp, "RSET")
        return Sent(replies, dsn, converted)
    try:
        response = await smtp.data(message)
        final = _reply(response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        final = _reply(exc.code, exc.message)
    for key in accepted:
        replies[key] = final
    return Sent(replies, dsn, converted)


def pick_reply(replies: Sequence[str]) -> str:
    """The most telling of several failure replies: a permanent one if any."""
    permanent = [r for r in replies if r.startswith("5")]
    return (permanent or list(replies) or ["451 4.4.0 No destination answered"])[0]
