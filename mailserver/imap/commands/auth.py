"""Commands of the not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE PLAIN (RFC 9051 6.2).

Passwords are checked by ``mailserver.auth.check_login`` (argon2 off the event loop, failures
counted towards the lockout shared with SMTP). A failed attempt is answered only after a delay,
and a connection that fails too often is closed, so guessing costs the guesser time.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import partial
from typing import TYPE_CHECKING

from mailserver.auth import check_login, password_change_url
from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.commands.basic import capabilities
from mailserver.imap.errors import BadCommand, CloseConnection, CommandFailed
from mailserver.imap.limits import MAX_AUTH_FAILURES_PER_CONNECTION

if TYPE_CHECKING:
    from mailserver.imap.session import Session

log = logging.getLogger(__name__)


# Dovecot's wording, which users and helpdesks may already know.
PLAINTEXT_REFUSED = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."


def _require_privacy(session: Session) -> None:
    """RFC 9051 6.2.3 / RFC 5530: no password over cleartext where the config forbids it."""
    if not session.plaintext_auth_allowed:
        raise CommandFailed(PLAINTEXT_REFUSED, "PRIVACYREQUIRED")


async def _authenticate(session: Session, username: str, password: str) -> Done:
    throttle = session.instance.login_throttle
    ip = session.peer_ip()
    if await throttle.blocked(ip):
        # Shared with SMTP submission: one address cannot spray passwords over either.
        raise CommandFailed("Too many failed logins from your address, try later", "UNAVAILABLE")
    result = await check_login(session.instance, username, password, "imap")
    if result.password_expired:
        # RFC 5530 EXPIRED: the password is right but may not be used until it is changed.
        url = password_change_url(session.instance)
        raise CommandFailed(f"Password must be changed first: {url}", "EXPIRED")
    if not result.ok or result.mailbox_id is None or result.address is None:
        # check_login already paused; this counts failures on this connection and address.
        await throttle.note_failure(ip)
        session.auth_failures += 1
        if session.auth_failures >= MAX_AUTH_FAILURES_PER_CONNECTION:
            raise CloseConnection("Too many failed logins")
        raise CommandFailed("Invalid credentials", "AUTHENTICATIONFAILED")
    session.log_in(result.mailbox_id, result.address)
    code = r.ResponseCode("CAPABILITY", tuple(capabilities(session)))
    return Done("Logged in", code)


async def login(session: Session, command: p.Login) -> Done:
    _require_privacy(session)
    return await _authenticate(session, command.username, command.password)


def decode_plain(message: bytes) -> tuple[str, str]:
    """RFC 4616: [authzid] NUL authcid NUL passwd, UTF-8. Returns (authcid, password).

    An authorization identity other than the authentication identity is refused: nobody may
    act as another user.
    """
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise BadCommand("Malformed PLAIN response")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError as exc:
        raise BadCommand("PLAIN response is not UTF-8") from exc
    if not authcid:
        raise BadCommand("Malformed PLAIN response")
    if authzid and authzid.lower() != authcid.lower():
        raise CommandFailed("Authorization identity not allowed", "AUTHORIZATIONFAILED")
    return authcid, password


async def authenticate(session: Session, command: p.Authenticate) -> Done:
    _require_privacy(session)
    if command.mechanism != "PLAIN":
        raise CommandFailed(f"Mechanism {command.mechanism} not supported", "CANNOT")
    response = command.initial_response
    if response is None:
        # RFC 9051 6.2.2: an empty challenge, then the client's base64 line ("*" cancels).
        session.send(r.continuation_data(b""))
        await session.drain()
        line = await session.read_raw_line()
        if line is None:
            raise CloseConnection("Connection closed during AUTHENTICATE")
        if line.strip() == b"*":
            raise BadCommand("AUTHENTICATE cancelled")
        try:
            response = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadCommand("Invalid base64 in AUTHENTICATE response") from exc
    username, password = decode_plain(response)
    return await _authenticate(session, username, password)


async def starttls(session: Session, command: p.StartTls) -> Done:
    """RFC 9051 6.2.1: TLS starts right after the OK; plaintext pipelined behind it is dropped."""
    context = session.service.tls
    if session.tls_active or context is None:
        raise BadCommand("TLS is already active" if session.tls_active else "TLS unavailable")
    dropped = session.stop_reading_for_tls()
    if dropped:
        log.warning(
            "event=imap_starttls_pipelined session=%s peer=%s dropped_bytes=%d",
            session.session_id,
            session.peer_ip(),
            dropped,
        )
    return Done("Begin TLS negotiation now", after=partial(session.start_tls, context))
