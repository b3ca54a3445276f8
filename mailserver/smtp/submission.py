"""Submission (587 STARTTLS, 465 TLS): AUTH PLAIN and LOGIN against mailbox passwords.

The mechanisms are async handler methods (aiosmtpd's ``auth_<MECH>`` hook), so the password
check runs off the event loop instead of inside aiosmtpd's synchronous authenticator.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailserver.auth import check_login
from mailserver.instance import Instance
from mailserver.smtp.mx import LocalDeliveryHandler

MAX_AUTH_FIELD = 1024


def _b64(text: str | bytes) -> bytes | None:
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class SubmissionHandler(LocalDeliveryHandler):
    """Local delivery for authenticated users (outbound relay arrives with the queue)."""

    def __init__(self, instance: Instance) -> None:
        config = instance.config
        super().__init__(instance.store, config.server.hostname, config.smtp.max_recipients)
        self.instance = instance

    async def _verify(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        if len(login) > MAX_AUTH_FIELD or len(password) > MAX_AUTH_FIELD:
            return AuthResult(success=False, handled=False)
        result = await check_login(
            self.instance,
            login.decode("utf-8", "replace"),
            password.decode("utf-8", "replace"),
            "smtp",
        )
        if not result.ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(login, b""))

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            decoded = _b64(args[1])
        else:
            answer: Any = await server.challenge_auth("")
            decoded = answer if isinstance(answer, bytes) else None
        if decoded is None:
            await server.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        parts = decoded.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Malformed PLAIN credentials")
            return AuthResult(success=False, handled=True)
        return await self._verify(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            login: Any = _b64(args[1])
        else:
            login = await server.challenge_auth("Username:")
        if not isinstance(login, bytes):
            await server.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        password: Any = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            await server.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        return await self._verify(server, login, password)
