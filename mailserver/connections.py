"""Counting live connections per listener, so shutdown can wait for them to finish."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ConnectionTracker:
    """Live transports of one kind of listener; ``drain`` waits for them, then cuts the rest."""

    name: str
    transports: set[asyncio.BaseTransport] = field(default_factory=set)
    per_ip: dict[str, int] = field(default_factory=dict)
    # The peer as seen at open: a closed TLS transport can no longer tell it.
    _peers: dict[asyncio.BaseTransport, str] = field(default_factory=dict)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Worker processes tell their supervisor, which counts connections per IP instance-wide.
    on_closed: Callable[[str], None] | None = None

    def opened(self, transport: asyncio.BaseTransport) -> int:
        """Register a transport; returns how many connections its peer IP now has."""
        self.transports.add(transport)
        self._idle.clear()
        ip = self._peers[transport] = _peer_ip(transport)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return self.per_ip[ip]

    def closed(self, transport: asyncio.BaseTransport) -> None:
        if transport not in self.transports:
            return
        self.transports.discard(transport)
        ip = self._peers.pop(transport, "unknown")
        remaining = self.per_ip.get(ip, 1) - 1
        if remaining > 0:
            self.per_ip[ip] = remaining
        else:
            self.per_ip.pop(ip, None)
        if not self.transports:
            self._idle.set()
        if self.on_closed is not None:
            self.on_closed(ip)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for connections to end; abort the rest. Returns how many."""
        if not self.transports:
            return 0
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return 0
        except TimeoutError:
            left = list(self.transports)
            for transport in left:
                if isinstance(transport, asyncio.WriteTransport):
                    transport.abort()
                else:
                    transport.close()
            return len(left)


def _peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"
