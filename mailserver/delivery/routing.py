"""Where outbound mail for a domain goes: the static routing table, else DNS MX.

The static table serves the agencies' private network (``sotp.gov.vn`` or every domain under
``.hanoi.gov.vn`` -> host:port, with its TLS policy). Other domains are looked up in DNS
(RFC 5321 5.1): MX records by preference, the domain's own address when it has no MX (the
implicit MX), and a "null MX" (RFC 7505) means the domain accepts no mail. DNS comes in through
the :class:`MXResolver` parameter, so tests fix it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

from mailserver.config import Route


class TLSPolicy(StrEnum):
    REQUIRED = "required"
    OPPORTUNISTIC = "opportunistic"
    NONE = "none"


@dataclass(frozen=True)
class Destination:
    """One next hop; equal destinations share pooled connections."""

    host: str
    port: int
    tls: TLSPolicy = TLSPolicy.OPPORTUNISTIC
    verify_certificate: bool = False
    ca_file: Path | None = None


class RoutingError(Exception):
    """No destination; ``permanent`` says whether retrying can help."""

    def __init__(self, reply: str, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


class MXResolver(Protocol):
    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, host) pairs; [] when the domain exists without MX.

        Raises :class:`RoutingError` (permanent for NXDOMAIN, temporary for timeouts)."""
        ...


class DNSMXResolver:
    """MX lookups with dnspython's asyncio resolver."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        try:
            answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=self.timeout)
        except dns.resolver.NXDOMAIN as exc:
            raise RoutingError(f"550 5.1.2 Domain {domain} does not exist", True) from exc
        except dns.resolver.NoAnswer:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise RoutingError(f"451 4.4.3 DNS lookup of {domain} failed", False) from exc
        except dns.exception.DNSException as exc:
            raise RoutingError(f"451 4.4.3 DNS error for {domain}: {exc}", False) from exc
        return [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer]


def match_route(routes: Sequence[Route], domain: str) -> Route | None:
    """The most specific route for ``domain``: an exact entry, else the longest ``.suffix``."""
    domain = domain.lower().rstrip(".")
    best: Route | None = None
    best_length = -1
    for route in routes:
        pattern = route.domain.lower().rstrip(".")
        if pattern.startswith("."):
            if domain.endswith(pattern) and len(pattern) > best_length:
                best, best_length = route, len(pattern)
        elif pattern == domain:
            return route
    return best


def destination_of(route: Route) -> Destination:
    return Destination(
        host=route.host,
        port=route.port,
        tls=TLSPolicy(route.tls),
        verify_certificate=route.verify_certificate,
        ca_file=route.ca_file,
    )


def order_mx(records: list[tuple[int, str]], rng: random.Random) -> list[str]:
    """Hosts by preference; equal preferences shuffled (RFC 5321 5.1)."""
    shuffled = list(records)
    rng.shuffle(shuffled)
    return [host for _, host in sorted(shuffled, key=lambda record: record[0])]


class Router:
    """Destinations for a domain, in the order to try them."""

    def __init__(
        self,
        routes: Sequence[Route],
        resolver: MXResolver,
        mx_port: int = 25,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = list(routes)
        self.resolver = resolver
        self.mx_port = mx_port
        self.rng = rng or random.Random()

    async def destinations(self, domain: str) -> list[Destination]:
        route = match_route(self.routes, domain)
        if route is not None:
            return [destination_of(route)]
        if domain.startswith("["):
            raise RoutingError("550 5.1.2 Address literals are not routed", True)
        records = await self.resolver.mx(domain)
        if not records:
            # RFC 5321 5.1: no MX -> the domain itself is the implicit MX.
            return [Destination(domain, self.mx_port)]
        if len(records) == 1 and records[0][1] in ("", "."):
            # RFC 7505 3: a single MX of preference 0 with target "." -> no mail accepted.
            raise RoutingError(f"556 5.1.10 Domain {domain} accepts no mail (null MX)", True)
        return [Destination(host, self.mx_port) for host in order_mx(records, self.rng) if host]
