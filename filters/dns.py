"""DNS for the authentication checks: one small interface, a static table and a real resolver.

Checks ask ``DnsResolver.query(name, rtype)`` and get the records as text: TXT strings joined
(RFC 7208 3.3: the character-strings of one TXT record are concatenated), A/AAAA addresses,
MX as "preference host", PTR host names. No record and no such name both answer ``[]``; a
timeout or server failure raises ``DnsTempError`` (the checks report ``temperror``).

``StaticDns`` answers from a table (tests, and closed government networks with their own DNS)
and hands names it does not know to a fallback; ``SystemDns`` is dnspython's asyncio resolver
with a lifetime per query.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

RECORD_TYPES = ("TXT", "A", "AAAA", "MX", "PTR", "CNAME", "SRV")
# A table value of exactly this string makes the lookup fail temporarily (tests of temperror).
TEMPFAIL_MARK = "SERVFAIL"


class DnsTempError(Exception):
    """The lookup could not be completed (timeout, SERVFAIL): try again later."""


class DnsResolver(Protocol):
    async def query(self, name: str, rtype: str) -> list[str]: ...


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


class NoDns:
    """A DNS where no name exists (the end of a static-only chain)."""

    async def query(self, name: str, rtype: str) -> list[str]:
        return []


StaticTable = Mapping[str, Mapping[str, Sequence[str] | str]]


class StaticDns:
    """Records from a table ``{name: {rtype: [values]}}``; names not in it go to ``fallback``.

    A name present in the table is answered from the table alone (other types: no records),
    so a closed network's names never leak to outside resolvers.
    """

    def __init__(self, table: StaticTable, fallback: DnsResolver | None = None) -> None:
        self.records: dict[str, dict[str, list[str] | str]] = {}
        for name, types in table.items():
            entry = self.records.setdefault(normalise_name(name), {})
            for rtype, values in types.items():
                rtype = rtype.upper()
                if rtype not in RECORD_TYPES:
                    raise ValueError(f"static DNS: unsupported record type {rtype} for {name}")
                entry[rtype] = values if isinstance(values, str) else list(values)
        self.fallback = fallback or NoDns()

    async def query(self, name: str, rtype: str) -> list[str]:
        entry = self.records.get(normalise_name(name))
        if entry is None:
            return await self.fallback.query(name, rtype)
        values = entry.get(rtype.upper(), [])
        if isinstance(values, str):
            if values == TEMPFAIL_MARK:
                raise DnsTempError(f"{name} {rtype}: {TEMPFAIL_MARK} (static table)")
            return [values]
        return list(values)


def load_static_table(path: Path) -> dict[str, dict[str, list[str] | str]]:
    """Read a TOML file of ``["name"] TXT = ["..."]`` tables."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    table: dict[str, dict[str, list[str] | str]] = {}
    for name, types in data.items():
        if not isinstance(types, dict):
            raise ValueError(f"{path}: {name!r} must be a table of record types")
        table[name] = {
            rtype: value if isinstance(value, str) else [str(v) for v in value]
            for rtype, value in types.items()
        }
    return table


class SystemDns:
    """dnspython's asyncio resolver; every query is bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float, nameservers: Sequence[str] = ()) -> None:
        self.resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self.resolver.nameservers = list(nameservers)
        self.resolver.lifetime = timeout
        self.resolver.timeout = timeout

    async def query(self, name: str, rtype: str) -> list[str]:
        rtype = rtype.upper()
        try:
            if rtype == "PTR":
                answer = await self.resolver.resolve_address(name)
            else:
                answer = await self.resolver.resolve(name, rtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsTempError(f"{name} {rtype}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{name} {rtype}: {exc}") from exc
        return [_record_text(rdata, rtype) for rdata in answer]


def _record_text(rdata: object, rtype: str) -> str:
    if rtype == "TXT":
        strings: list[bytes] = getattr(rdata, "strings", [])
        return b"".join(strings).decode("utf-8", "replace")
    if rtype == "MX":
        exchange = str(getattr(rdata, "exchange", "")).rstrip(".")
        return f"{getattr(rdata, 'preference', 0)} {exchange}"
    return str(rdata).rstrip(".")


def build_resolver(
    static_file: str, system_resolver: bool, timeout: float, nameservers: Sequence[str] = ()
) -> DnsResolver:
    """The resolver the configuration describes: static table, then (optionally) real DNS."""
    fallback: DnsResolver = SystemDns(timeout, nameservers) if system_resolver else NoDns()
    if not static_file:
        return fallback
    return StaticDns(load_static_table(Path(static_file)), fallback)
