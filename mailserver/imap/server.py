"""The IMAP service: listeners (plain with STARTTLS, implicit TLS), sessions, shutdown.

``IMAPService`` accepts connections, refuses an address that already has too many, runs one
``Session`` per connection and, on shutdown, says ``* BYE`` to every session that is waiting
for a command or idling and ends it at once, lets the others finish their command (they say
BYE after it), and aborts what is left when ``server.shutdown_grace_seconds`` run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from functools import partial

from mailserver.imap import response as r
from mailserver.imap.session import Session
from mailserver.instance import Instance

log = logging.getLogger(__name__)


class IMAPService:
    """Every IMAP listener and session of one instance."""

    def __init__(self, instance: Instance, tls: ssl.SSLContext | None) -> None:
        self.instance = instance
        self.tls = tls
        self.sessions: set[Session] = set()
        self.per_ip: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._empty: asyncio.Event | None = None
        # In a worker process: the supervisor counts connections per IP and is told of closes.
        self.on_closed: Callable[[str], None] | None = None
        self.id_prefix = "i"

    async def listen(self, host: str, port: int, implicit_tls: bool) -> asyncio.Server:
        """Bind one listener; ``implicit_tls`` for port-993 style (RFC 8314) listeners."""
        return await asyncio.start_server(
            partial(self._serve_connection, implicit_tls),
            host,
            port,
            ssl=self.tls if implicit_tls else None,
            limit=64 * 1024,
        )

    async def serve_accepted(self, sock: socket.socket, implicit_tls: bool, refuse: bool) -> None:
        """Serve a connection accepted elsewhere (by the supervisor of the worker processes)."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=64 * 1024)
            callback = partial(self._serve_connection, implicit_tls, refuse=refuse)
            return asyncio.StreamReaderProtocol(reader, callback)

        await loop.connect_accepted_socket(protocol, sock, ssl=self.tls if implicit_tls else None)

    def _empty_event(self) -> asyncio.Event:
        if self._empty is None:
            self._empty = asyncio.Event()
            if not self.sessions:
                self._empty.set()
        return self._empty

    async def _serve_connection(
        self,
        implicit_tls: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        refuse: bool = False,
    ) -> None:
        ip = _peer_ip(writer)
        count = self.per_ip.get(ip, 0) + 1
        if refuse or count > self.instance.config.imap.max_connections_per_ip:
            log.info("event=imap_refused reason=too_many_connections peer=%s", ip)
            with contextlib.suppress(Exception):
                writer.write(
                    r.bye("Too many connections from your address", r.ResponseCode("UNAVAILABLE"))
                )
                await writer.drain()
            writer.close()
            if self.on_closed is not None:
                self.on_closed(ip)
            return
        self.per_ip[ip] = count
        session = Session(
            self,
            reader,
            writer,
            tls_active=implicit_tls,
            session_id=f"{self.id_prefix}{next(self._ids)}",
        )
        self.sessions.add(session)
        self._empty_event().clear()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            left = self.per_ip.get(ip, 1) - 1
            if left > 0:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)
            if not self.sessions:
                self._empty_event().set()
            if self.on_closed is not None:
                self.on_closed(ip)

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - serve.py's API
        """Shut sessions down: BYE to waiting/idling ones, wait, abort the rest. Returns aborted."""
        for session in list(self.sessions):
            session.shutdown_requested = True
            if session.waiting_for_command or session.idling:
                session.end_now("Server shutting down")
        if not self.sessions:
            return 0
        try:
            await asyncio.wait_for(self._empty_event().wait(), timeout)
            return 0
        except TimeoutError:
            left = list(self.sessions)
            for session in left:
                session.writer.transport.abort()
            return len(left)


def _peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
