"""SPF (RFC 7208): the check_host() function over a ``DnsResolver``.

Evaluation follows RFC 7208 section 4-6: one "v=spf1" record, mechanisms left to right, at most
10 terms that cause DNS lookups (4.6.4) and 2 void lookups, ``redirect=`` only when nothing
matched. Macros (section 7) are expanded for the domain-spec of mechanisms; ``exp=`` is not
fetched (explanations are for rejections we word ourselves).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from filters.dns import DnsResolver, DnsTempError

MAX_DNS_TERMS = 10  # RFC 7208 4.6.4
MAX_VOID_LOOKUPS = 2  # RFC 7208 4.6.4
MAX_MX_OR_PTR_NAMES = 10  # RFC 7208 4.6.4

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


QUALIFIERS = {
    "+": SpfResult.PASS,
    "-": SpfResult.FAIL,
    "~": SpfResult.SOFTFAIL,
    "?": SpfResult.NEUTRAL,
}


@dataclass(frozen=True)
class SpfOutcome:
    result: SpfResult
    domain: str
    detail: str = ""


class SpfPermError(Exception):
    pass


class _Budget:
    """Lookup counters shared by one check_host() and its includes and redirects."""

    def __init__(self) -> None:
        self.terms = 0
        self.voids = 0

    def charge_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_DNS_TERMS:
            raise SpfPermError("more than 10 DNS-querying terms")

    def note_answer(self, records: list[str]) -> list[str]:
        if not records:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise SpfPermError("more than 2 void lookups")
        return records


@dataclass(frozen=True)
class _Request:
    ip: IPAddress
    sender: str  # local@domain (postmaster@helo for the null sender)
    helo: str


def _valid_domain(domain: str) -> bool:
    # RFC 7208 4.3: a malformed or non-FQDN domain gives "none".
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or len(domain) > 253:
        return False
    return all(0 < len(label) <= 63 for label in labels)


def _client_ip(text: str) -> IPAddress:
    ip = ipaddress.ip_address(text.strip().strip("[]").removeprefix("IPv6:"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


async def check_host(
    resolver: DnsResolver, client_ip: str, mail_from: str, helo: str
) -> SpfOutcome:
    """The SPF result for the MAIL FROM identity (or HELO when the reverse-path is null)."""
    try:
        ip = _client_ip(client_ip)
    except ValueError:
        return SpfOutcome(SpfResult.NONE, "", f"no usable client address {client_ip!r}")
    helo = helo.strip().rstrip(".").lower()
    if mail_from and "@" in mail_from:
        local, _, domain = mail_from.rpartition("@")
    else:
        # RFC 7208 2.4: with the null reverse-path, check "postmaster@<HELO domain>".
        local, domain = "postmaster", helo
    domain = domain.rstrip(".").lower()
    request = _Request(ip, f"{local or 'postmaster'}@{domain}", helo)
    if not _valid_domain(domain):
        return SpfOutcome(SpfResult.NONE, domain, "not a fully qualified domain")
    try:
        result, detail = await _evaluate(resolver, request, domain, _Budget(), depth=0)
    except SpfPermError as exc:
        return SpfOutcome(SpfResult.PERMERROR, domain, str(exc))
    except DnsTempError as exc:
        return SpfOutcome(SpfResult.TEMPERROR, domain, str(exc))
    return SpfOutcome(result, domain, detail)


async def _spf_record(resolver: DnsResolver, domain: str) -> str | None:
    records = [
        r for r in await resolver.query(domain, "TXT") if re.match(r"(?i)v=spf1( |$)", r.strip())
    ]
    if len(records) > 1:
        raise SpfPermError(f"{domain} publishes {len(records)} SPF records")  # RFC 7208 4.5
    return records[0] if records else None


async def _evaluate(
    resolver: DnsResolver, request: _Request, domain: str, budget: _Budget, depth: int
) -> tuple[SpfResult, str]:
    if depth > MAX_DNS_TERMS:
        raise SpfPermError("include/redirect loop")
    record = await _spf_record(resolver, domain)
    if record is None:
        return SpfResult.NONE, f"{domain} has no SPF record"
    terms = record.split()[1:]
    redirect: str | None = None
    seen_modifiers: set[str] = set()
    directives: list[tuple[SpfResult, str, str]] = []
    for term in terms:
        modifier = re.fullmatch(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", term)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name in seen_modifiers:
                    raise SpfPermError(f"duplicate {name}= modifier")  # RFC 7208 6
                seen_modifiers.add(name)
                if name == "redirect":
                    redirect = modifier.group(2)
            continue  # RFC 7208 6: unknown modifiers are ignored
        qualifier = QUALIFIERS.get(term[0])
        body = term[1:] if qualifier else term
        parsed = re.fullmatch(r"([A-Za-z0-9]+)([:/].*)?", body)
        if not parsed:
            raise SpfPermError(f"malformed term {term!r}")
        directives.append((qualifier or SpfResult.PASS, parsed.group(1).lower(), body))
    for result, mechanism, body in directives:
        if await _matches(resolver, request, domain, mechanism, body, budget, depth):
            return result, f"matched {mechanism} in {domain}"
    if redirect is not None:
        budget.charge_term()
        target = _expand(redirect, request, domain)
        if not _valid_domain(target):
            raise SpfPermError(f"redirect to invalid domain {target!r}")
        result, detail = await _evaluate(resolver, request, target, budget, depth + 1)
        if result is SpfResult.NONE:
            raise SpfPermError(f"redirect target {target} has no SPF record")  # RFC 7208 6.1
        return result, detail
    return SpfResult.NEUTRAL, f"no mechanism matched in {domain}"  # RFC 7208 4.7


def _split_cidr(spec: str) -> tuple[str, int | None, int | None]:
    """ "domain/24//64" -> ("domain", 24, 64)."""
    match = re.fullmatch(r"(.*?)(?:/(\d+))?(?://(\d+))?", spec)
    assert match is not None
    v4 = int(match.group(2)) if match.group(2) is not None else None
    v6 = int(match.group(3)) if match.group(3) is not None else None
    if (v4 is not None and v4 > 32) or (v6 is not None and v6 > 128):
        raise SpfPermError(f"bad prefix length in {spec!r}")
    return match.group(1), v4, v6


def _in_network(ip: IPAddress, address: str, v4: int | None, v6: int | None) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    prefix = (v4 if v4 is not None else 32) if ip.version == 4 else (v6 if v6 is not None else 128)
    network = ipaddress.ip_network(f"{candidate}/{prefix}", strict=False)
    return ip in network


async def _addresses(
    resolver: DnsResolver, name: str, ip: IPAddress, budget: _Budget | None
) -> list[str]:
    records = await resolver.query(name, "A" if ip.version == 4 else "AAAA")
    return budget.note_answer(records) if budget else records


async def _matches(
    resolver: DnsResolver,
    request: _Request,
    domain: str,
    mechanism: str,
    body: str,
    budget: _Budget,
    depth: int,
) -> bool:
    argument = body[len(mechanism) :]
    ip = request.ip
    if mechanism == "all":
        if argument:
            raise SpfPermError("all takes no argument")
        return True
    if mechanism in ("ip4", "ip6"):
        if not argument.startswith(":"):
            raise SpfPermError(f"{mechanism} needs an address")
        try:
            network = ipaddress.ip_network(argument[1:], strict=False)
        except ValueError as exc:
            raise SpfPermError(f"bad network {argument[1:]!r}") from exc
        if (mechanism == "ip4") != (network.version == 4):
            raise SpfPermError(f"{mechanism} with a v{network.version} network")
        return ip.version == network.version and ip in network
    if mechanism in ("a", "mx", "ptr", "exists", "include"):
        budget.charge_term()
    if mechanism in ("a", "mx"):
        spec = argument[1:] if argument.startswith(":") else argument
        if argument and not argument.startswith(("/", ":")):
            raise SpfPermError(f"malformed {mechanism}")
        name, v4, v6 = _split_cidr(spec)
        target = _expand(name, request, domain) if name else domain
        if mechanism == "a":
            return any(
                _in_network(ip, a, v4, v6) for a in await _addresses(resolver, target, ip, budget)
            )
        exchanges = budget.note_answer(await resolver.query(target, "MX"))
        if len(exchanges) > MAX_MX_OR_PTR_NAMES:
            raise SpfPermError(f"{target} has more than 10 MX names")
        for exchange in exchanges:
            host = exchange.split()[-1]
            if any(_in_network(ip, a, v4, v6) for a in await _addresses(resolver, host, ip, None)):
                return True
        return False
    if mechanism == "ptr":
        target = _expand(argument[1:], request, domain) if argument.startswith(":") else domain
        names = (await resolver.query(ip.reverse_pointer, "PTR"))[:MAX_MX_OR_PTR_NAMES]
        for name in names:
            name = name.rstrip(".").lower()
            if name == target or name.endswith("." + target):
                addresses = await _addresses(resolver, name, ip, None)
                if any(_in_network(ip, a, None, None) for a in addresses):
                    return True
        return False
    if mechanism in ("exists", "include"):
        if not argument.startswith(":") or len(argument) < 2:
            raise SpfPermError(f"{mechanism} needs a domain")
        target = _expand(argument[1:], request, domain)
        if mechanism == "exists":
            # RFC 7208 5.7: an A query, whatever the client's address family.
            return bool(budget.note_answer(await resolver.query(target, "A")))
        result, _ = await _evaluate(resolver, request, target, budget, depth + 1)
        # RFC 7208 5.2: what an included result means for the including record.
        if result is SpfResult.PASS:
            return True
        if result is SpfResult.TEMPERROR:
            raise DnsTempError(f"include:{target} temperror")
        if result in (SpfResult.PERMERROR, SpfResult.NONE):
            raise SpfPermError(f"include:{target} gave {result}")
        return False
    raise SpfPermError(f"unknown mechanism {mechanism!r}")  # RFC 7208 5


_MACRO = re.compile(r"%\{([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-|%", re.IGNORECASE)


def _expand(spec: str, request: _Request, domain: str) -> str:
    """Expand RFC 7208 section 7 macros in a domain-spec."""

    def letter_value(letter: str) -> str:
        local, _, sender_domain = request.sender.rpartition("@")
        ip = request.ip
        values = {
            "s": request.sender,
            "l": local,
            "o": sender_domain,
            "d": domain,
            "i": str(ip) if ip.version == 4 else ".".join(ip.exploded.replace(":", "")),
            "p": "unknown",
            "v": "in-addr" if ip.version == 4 else "ip6",
            "h": request.helo,
        }
        if letter not in values:
            raise SpfPermError(f"macro %{{{letter}}} is not allowed here")
        return values[letter]

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "%%":
            return "%"
        if text == "%_":
            return " "
        if text == "%-":
            return "%20"
        if text == "%":
            raise SpfPermError(f"lone % in {spec!r}")
        letter, digits, reverse, delimiters = match.groups()
        parts = re.split("[" + re.escape(delimiters or ".") + "]", letter_value(letter.lower()))
        if reverse:
            parts.reverse()
        if digits:
            count = int(digits)
            if count == 0:
                raise SpfPermError("macro with zero labels")
            parts = parts[-count:]
        return ".".join(parts)

    expanded = _MACRO.sub(replace, spec)
    # RFC 7208 7.3: keep the rightmost 253 characters, dropping whole labels.
    while len(expanded) > 253 and "." in expanded:
        expanded = expanded.split(".", 1)[1]
    return expanded.rstrip(".").lower()
