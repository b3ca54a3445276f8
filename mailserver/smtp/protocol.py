"""govmail's SMTP session: aiosmtpd's command loop with our own envelope grammar and extensions.

aiosmtpd parses addresses with the RFC 5322 header parser, which accepts relaying tricks and
refuses DSN parameters. Here MAIL and RCPT use ``smtp.address.parse_path`` (strict RFC 5321 and
6531) and ``smtp.esmtp`` (SIZE, BODY, SMTPUTF8, AUTH, RET/ENVID, NOTIFY/ORCPT), EHLO advertises
PIPELINING (RFC 2920: the command loop already reads commands one by one from a buffered stream),
ENHANCEDSTATUSCODES (every reply then carries an RFC 3463 code, added in ``push`` when aiosmtpd's
own replies lack one) and DSN. Decisions stay with the policy object (MX or submission).
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import logging
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException, _Missing

from mailserver.connections import ConnectionTracker
from mailserver.smtp.address import (
    AddressError,
    ParsedPath,
    RelayDenied,
    parse_path,
    relay_trick,
)
from mailserver.smtp.data_reader import DataProblem, read_message_data
from mailserver.smtp.esmtp import (
    MailParams,
    ParamError,
    RcptParams,
    parse_mail_params,
    parse_rcpt_params,
    split_path,
    with_enhanced_code,
)
from mailserver.smtp.trace import new_queue_id

log = logging.getLogger(__name__)
# aiosmtpd logs every command line at INFO (addresses included): ours are the structured events.
logging.getLogger("mail.log").setLevel(logging.WARNING)

# RFC 3461 5: MAIL grows by 100 octets (ENVID, RET), RCPT by 500 (ORCPT, NOTIFY).
MAIL_LINE_LIMIT = 512 + 26 + 10 + 100 + 32
RCPT_LINE_LIMIT = 512 + 500 + 32


LINE_TOO_LONG = "500 5.5.2 Line too long"
NOT_UTF8 = "501 5.5.2 Syntax error: not UTF-8"
CANNOT_VRFY = "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

# C0 controls and DEL, as "?" in replies.
_CONTROL_CHARACTERS = {code: "?" for code in [*range(0x20), 0x7F]}

# Replies held for one write at most (a client pipelining for ever is not buffered for ever).
MAX_HELD_REPLY_BYTES = 4096


@dataclass(frozen=True)
class AcceptedRecipient:
    """A recipient that got 250 at RCPT, with what it resolved to."""

    path: ParsedPath
    address: str  # normalised local@a-label
    params: RcptParams
    local_mailboxes: tuple[int, ...] = ()
    remote: tuple[str, ...] = ()  # outside addresses (itself, or forwards)


class GovmailEnvelope(Envelope):
    """One transaction (MAIL to the end of DATA or RSET)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue_id = new_queue_id()
        self.sender_path: ParsedPath | None = None
        self.sender_params = MailParams()
        self.accepted: list[AcceptedRecipient] = []


class GovmailSession(Session):
    """aiosmtpd's session without the deprecated ``login_data``, whose setter logs a warning at
    every successful AUTH (our policies keep what AUTH established in ``auth_data``)."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class SMTPPolicy(Protocol):
    """What the session asks of its listener's policy (MX or submission)."""

    offers_auth: bool

    async def check_sender(
        self, server: GovmailSMTP, session: Session, envelope: GovmailEnvelope
    ) -> str | None:
        """None to accept MAIL FROM, else the reply refusing it."""
        ...

    async def check_recipient(
        self,
        server: GovmailSMTP,
        session: Session,
        envelope: GovmailEnvelope,
        path: ParsedPath,
        params: RcptParams,
    ) -> tuple[str, AcceptedRecipient | None]:
        """The RCPT reply, and the accepted recipient when it is 2xx."""
        ...

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str: ...


@dataclass
class Listener:
    """Per-listener settings shared by its sessions."""

    tracker: ConnectionTracker
    max_per_ip: int
    extra: dict[str, Any] = field(default_factory=dict)


class GovmailSMTP(SMTP):
    """An SMTP session of one of our listeners; counted and limited per client IP."""

    def __init__(
        self,
        policy: SMTPPolicy,
        listener: Listener,
        refuse: bool = False,
        implicit_tls: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(policy, **kw)
        if implicit_tls:
            # The whole connection is TLS before this session sees it (465): AUTH needs no
            # STARTTLS. Set after aiosmtpd's constructor, which would otherwise warn at every
            # connection that AUTH is allowed without TLS.
            self._auth_require_tls = False
        self.policy = policy
        self._listener = listener
        # ``refuse``: the supervisor already counted too many connections from this address.
        self._refuse = refuse
        self._refused = False
        self._counted: asyncio.BaseTransport | None = None
        self._in_ehlo = False
        self._held: list[bytes] = []  # replies not yet written (see ``push``)
        self._held_bytes = 0
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, {"MAIL": MAIL_LINE_LIMIT, "RCPT": RCPT_LINE_LIMIT}
        )
        if not policy.offers_auth:
            self._auth_methods = {}

    # ------------------------------------------------------------ connection limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._counted is not None:
            # aiosmtpd calls this again after the STARTTLS handshake, with the TLS transport
            # over the same socket: the connection was counted when it was accepted.
            super().connection_made(transport)
            return
        count = self._listener.tracker.opened(transport)
        self._counted = transport
        if self._refuse or count > self._listener.max_per_ip:
            self._refused = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"421 4.7.0 Too many connections from your address\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted is not None:
            self._listener.tracker.closed(self._counted)
            self._counted = None
        if not self._refused:
            super().connection_lost(exc)

    def _create_envelope(self) -> GovmailEnvelope:
        return GovmailEnvelope()

    def _create_session(self) -> GovmailSession:
        return GovmailSession(self.loop)

    def peer_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A client that cannot (or will not) finish the handshake: one line, no traceback.
            # aiosmtpd closes the connection without a reply.
            log.info(
                "event=starttls_failed listener=%s peer=%s reason=%s",
                self._listener.tracker.name,
                self.peer_ip(),
                _handshake_failure(error.__cause__),
            )
            return "454 4.7.0 TLS handshake failed"
        return await super().handle_exception(error)

    # Methods, not properties: aiosmtpd's inspect.getmembers() would evaluate properties.
    def transaction(self) -> GovmailEnvelope:
        assert isinstance(self.envelope, GovmailEnvelope)
        return self.envelope

    def uses_tls(self) -> bool:
        return self._tls_protocol is not None or (
            self.transport is not None and self.transport.get_extra_info("sslcontext") is not None
        )

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2: say why before closing an idle connection.
        if self.transport is not None and not self.transport.is_closing():
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(b"421 4.4.2 Timeout waiting for a command, closing\r\n")
        super()._timeout_cb()

    # ------------------------------------------------------------ replies

    async def push(self, status: str | bytes) -> None:
        """Send one reply line; lines that can wait are written together with the next.

        A line of a multi-line reply waits for the reply's last line, and a 250 waits while the
        client's next command is already here (PIPELINING, RFC 2920 3.1: the replies of a group
        may be sent together). So EHLO goes out in one write, and a pipelined MAIL, RCPT, DATA
        in one with the 354. Any other reply (354, 220 before TLS, errors) is written at once,
        with whatever waited before it, and so is everything once ``MAX_HELD_REPLY_BYTES`` wait:
        a client that pipelines without reading meets the socket's backpressure, as before.
        """
        # RFC 2034 3: every reply but the greeting and the EHLO/HELO answer carries a code.
        session = self.session
        if isinstance(status, str) and not self._in_ehlo and session and session.extended_smtp:
            status = with_enhanced_code(status)
        if isinstance(status, str):
            # aiosmtpd echoes parts of the command: a bare CR or a NUL in it would break the
            # reply's framing, and bytes that were not UTF-8 (surrogates) are not sent back.
            status = status.translate(_CONTROL_CHARACTERS)
            line = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        else:  # AUTH's challenges come as bytes
            line = status
        self._held.append(line + b"\r\n")
        self._held_bytes += len(line) + 2
        if self._held_bytes <= MAX_HELD_REPLY_BYTES and (
            line[3:4] == b"-" or (line.startswith(b"250") and self._next_command_buffered())
        ):
            return
        data = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        self._writer.write(data)
        if line.startswith(b"421"):
            # RFC 5321 3.8: 421 says the service closes the channel; so it does, whatever the
            # reason (an internal error, a command sent too often).
            self._writer.close()
            return
        await self._writer.drain()

    def _next_command_buffered(self) -> bool:
        # ``StreamReader._buffer``: CPython's attribute for what was received and not yet read.
        buffered = getattr(self._reader, "_buffer", None)
        return buffered is not None and b"\n" in buffered

    # ------------------------------------------------------------ commands

    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self.hostname]
        if self.data_size_limit:
            lines.append(f"SIZE {self.data_size_limit}")
        lines += ["8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES", "DSN"]
        if self.tls_context and not self._tls_protocol:
            lines.append("STARTTLS")
        if self._auth_methods and (not self._auth_require_tls or self._tls_protocol):
            lines.append("AUTH " + " ".join(sorted(self._auth_methods)))
        self._in_ehlo = True
        try:
            for index, line in enumerate(lines):
                last = index == len(lines) - 1
                await self.push(f"250{' ' if last else '-'}{line}")
        finally:
            self._in_ehlo = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None or self.uses_tls():
            await self.push("503 5.5.1 TLS already active")  # RFC 3207 4.2
            return
        await super().smtp_STARTTLS(arg)
        if self._tls_protocol is not None and (self.session is None or self.session.ssl is None):
            # The connection was cut during the handshake without an error (our command
            # timeout): aiosmtpd returns as if it had succeeded, and the session would wait for
            # ever on a transport that is gone. A failed handshake, then.
            raise TLSSetupException() from ConnectionAbortedError("closed during the handshake")

    async def smtp_VRFY(self, arg: str | None) -> None:
        """RFC 5321 3.5.3: 252, we never confirm addresses (no harvesting of the directory)."""
        if await self.check_auth_needed("VRFY"):
            return
        if not arg:
            await self.push("501 5.5.4 Syntax: VRFY <address>")
        elif not _is_utf8(arg):
            await self.push(NOT_UTF8)
        else:
            await self.push(CANNOT_VRFY)

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> _Missing | bytes:
        """aiosmtpd's AUTH challenge (RFC 4954 4), with an answer longer than a line refused
        with 500 (aiosmtpd's ``readline`` raised, and the session answered 421)."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        line = await self._read_line()
        if line is None:
            await self.push(LINE_TOO_LONG)
            return MISSING
        answer = line.strip()
        if answer == b"*":  # RFC 4954 4: the client cancels
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(answer, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def _read_line(self) -> bytes | None:
        """One line from the client; None when it was longer than the line limit (then read
        to its end and dropped, as the command loop does)."""
        try:
            return await self._reader.readuntil()
        except asyncio.IncompleteReadError as error:
            return error.partial  # the client hung up: what came, as ``readline`` gives
        except asyncio.LimitOverrunError as error:
            consumed = error.consumed
        while True:
            try:
                await self._reader.readexactly(consumed)
                await self._reader.readuntil()
                return None
            except asyncio.LimitOverrunError as more:
                consumed = more.consumed
            except asyncio.IncompleteReadError:
                return None

    async def smtp_AUTH(self, arg: str) -> None:
        if not self._auth_methods:
            await self.push("503 5.5.1 AUTH not available on this port")
            return
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        envelope = self.transaction()
        if envelope.sender_path is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        text = self._strip_command_keyword("FROM:", arg or "")
        if not text:
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
            return
        try:
            path_text, words = split_path(text)
            assert self.session is not None
            if words and not self.session.extended_smtp:
                raise ParamError("501 5.5.4 Parameters need EHLO")
            params = parse_mail_params(words, self.data_size_limit or 0, self.enable_SMTPUTF8)
            path = parse_path(path_text, params.smtputf8, sender=True)
        except (ParamError, AddressError) as exc:
            await self.push(exc.reply)
            return
        envelope.sender_path = path
        envelope.sender_params = params
        refusal = await self.policy.check_sender(self, self.session, envelope)
        if refusal is not None:
            envelope.sender_path = None
            await self.push(refusal)
            return
        envelope.mail_from = path.mailbox() or "<>"
        envelope.smtp_utf8 = params.smtputf8
        envelope.mail_options.extend(words)
        await self.push("250 2.1.0 OK")

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        envelope = self.transaction()
        if envelope.sender_path is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        text = self._strip_command_keyword("TO:", arg or "")
        if not text:
            await self.push("501 5.5.4 Syntax: RCPT TO:<address> [parameters]")
            return
        path_text = text
        try:
            path_text, words = split_path(text)
            params = parse_rcpt_params(words)
            path = parse_path(path_text, envelope.sender_params.smtputf8)
            trick = relay_trick(path)
            if trick:
                raise RelayDenied(trick)
        except (ParamError, AddressError) as exc:
            log.info(
                "event=rcpt_refused queue_id=%s rcpt=%r reply=%r",
                envelope.queue_id,
                path_text,
                exc.reply,
            )
            await self.push(exc.reply)
            return
        assert self.session is not None
        reply, accepted = await self.policy.check_recipient(
            self, self.session, envelope, path, params
        )
        if accepted is not None and reply[:1] == "2":
            envelope.accepted.append(accepted)
            envelope.rcpt_tos.append(accepted.address)
            envelope.rcpt_options.extend(words)
        await self.push(reply)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the message read in large pieces (smtp.data_reader)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.transaction()
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            received = await read_message_data(
                self._reader, self.data_size_limit, self.line_length_limit
            )
        except asyncio.IncompleteReadError:
            log.info("event=connection_lost_in_data queue_id=%s", envelope.queue_id)
            self._writer.close()
            return
        except asyncio.CancelledError:
            log.info("event=connection_lost_in_data queue_id=%s", envelope.queue_id)
            self._writer.close()
            raise
        if received.problem is DataProblem.TOO_LONG:
            await self.push("500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()
            return
        if received.problem is DataProblem.TOO_MUCH:
            await self.push("552 5.3.4 Error: Too much mail data")
            self._set_post_data_state()
            return
        assert not self._decode_data  # the listeners hand bytes to the policies
        envelope.content = received.content
        envelope.original_content = received.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


def _is_utf8(text: str) -> bool:
    """Command arguments are decoded with ``surrogateescape``: surrogates are bytes that were
    not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _handshake_failure(cause: BaseException | None) -> str:
    """``SSLError/WRONG_VERSION_NUMBER``, ``ConnectionResetError``: why a handshake failed."""
    if cause is None:
        return "unknown"
    reason = getattr(cause, "reason", None)
    name = type(cause).__name__
    return f"{name}/{reason}" if reason else name
