"""A remote SMTP server for queue tests: records what arrives, answers what the test says."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool


@dataclass
class RemoteHandler:
    """``rcpt_replies`` maps an address to its RCPT reply (default 250); ``data_reply`` DATA's."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued"
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 2.1.5 Ok")
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("2"):
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    envelope.original_content or b"",
                    session.ssl is not None,
                )
            )
        return self.data_reply


async def start_remote(
    handler: RemoteHandler, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.Server, int]:
    def factory() -> SMTP:
        handler.connections += 1
        return SMTP(handler, hostname="remote.example", tls_context=tls, enable_SMTPUTF8=True)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
