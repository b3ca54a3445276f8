"""`govmail check --dns`: the records `govmail dkim dns DOMAIN` prints, against what DNS answers.

The expected records are read back from ``mailserver.dns_records.domain_records`` (the zone lines
an admin publishes), so a record added there is checked here too. Lookups go through the
configured resolver (``[dns]``: static table, then the system's or the configured nameservers).
A wrong or missing DKIM key, MX or SPF/DMARC record fails; SPF or DMARC records that exist but
differ from the suggested text are warnings (an agency may have its own); SRV records only help
mail clients configure themselves, so their absence is a warning.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from filters.dkim_keys import domain_keys, published_keys
from filters.dns import DnsResolver, DnsTempError
from filters.registry import build_dns
from mailserver.config import GovmailConfig
from mailserver.dns_records import client_endpoints, domain_records
from mailserver.doctor.results import CheckResult, fail, ok, warn
from storage.db import Database
from storage.models import Domain

QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ZoneRecord:
    """One expected record, its value in the form ``DnsResolver.query`` answers."""

    name: str
    rtype: str
    value: str
    line: str  # the zone-file line to publish

    @property
    def kind(self) -> str:
        if self.rtype == "TXT" and "._domainkey." in f".{self.name}":
            return "DKIM"
        if self.rtype == "TXT" and self.name.startswith("_dmarc."):
            return "DMARC"
        if self.rtype == "TXT" and self.value.startswith("v=spf1"):
            return "SPF"
        return self.rtype


def parse_zone_line(line: str) -> ZoneRecord | None:
    """``name TTL IN TYPE data`` as a record; None for comments and blank lines."""
    if not line.strip() or line.lstrip().startswith(";"):
        return None
    name, _ttl, _class, rtype, data = line.split(maxsplit=4)
    if rtype == "TXT":
        value = "".join(QUOTED.findall(data))
    else:
        value = " ".join(part.rstrip(".") for part in data.split())
    return ZoneRecord(name.rstrip(".").lower(), rtype.upper(), value, line)


def expected_records(zone_lines: Sequence[str]) -> list[ZoneRecord]:
    return [r for line in zone_lines if (r := parse_zone_line(line)) is not None]


def squeeze(text: str) -> str:
    return " ".join(text.split()).lower()


def check_name(record: ZoneRecord) -> str:
    return f"dns {record.kind} {record.name}"


def compare(record: ZoneRecord, answers: Sequence[str]) -> CheckResult:
    """The published answers against the expected record."""
    check, publish = check_name(record), f"publish: {record.line}"
    if record.kind == "DKIM":
        wanted = "".join(record.value.split())
        if any("".join(a.split()) == wanted for a in answers):
            return ok(check, "published key matches")
        found = "a different key" if answers else "nothing"
        return fail(check, f"{found} published: signatures with this selector fail", publish)
    if record.kind in ("SPF", "DMARC"):
        prefix = record.value.split(";")[0].split()[0].lower()
        policies = [a for a in answers if a.lower().startswith(prefix)]
        if not policies:
            return fail(check, f"no {record.kind} record", publish)
        if squeeze(record.value) in map(squeeze, policies):
            return ok(check, f"{policies[0]}")
        return warn(
            check,
            f"published {' | '.join(policies)}; suggested {record.value}",
            f"make sure it still covers this server, or {publish}",
        )
    if record.kind == "MX":
        host = record.value.split()[-1].lower()
        if any(a.split()[-1].lower().rstrip(".") == host for a in answers):
            return ok(check, f"{host} is an MX host")
        return fail(check, f"MX is {', '.join(answers) or 'missing'}, not {host}", publish)
    if record.kind == "CNAME":
        target = record.value.lower()
        if any(a.lower().rstrip(".") == target for a in answers):
            return ok(check, f"points at {target}")
        found = ", ".join(answers) or "missing"
        return warn(check, f"{found} (mail clients cannot configure themselves)", publish)
    wanted_srv = record.value.lower().split()[-2:]
    if any([p.lower().rstrip(".") for p in a.split()[-2:]] == wanted_srv for a in answers):
        return ok(check, f"port {wanted_srv[0]} on {wanted_srv[1]}")
    found = ", ".join(answers) or "missing"
    return warn(check, f"{found} (mail clients cannot find the service by themselves)", publish)


async def check_records(resolver: DnsResolver, records: Sequence[ZoneRecord]) -> list[CheckResult]:
    results = []
    for record in records:
        try:
            answers = await resolver.query(record.name, record.rtype)
        except DnsTempError as exc:
            results.append(
                fail(
                    check_name(record),
                    f"lookup failed: {exc}",
                    "check [dns] nameservers and the network",
                )
            )
            continue
        results.append(compare(record, answers))
    return results


def zone_lines(config: GovmailConfig, db: Database, now: datetime) -> list[str]:
    """What `govmail dkim dns DOMAIN` prints, for every local domain (without making keys)."""
    lines: list[str] = []
    with db.read_session() as session:
        for domain in session.exec(select(Domain).order_by(col(Domain.name))):
            assert domain.id is not None
            keys = published_keys(domain_keys(session, domain.id), now)
            clients = client_endpoints(config)
            lines += domain_records(domain.name, config.server.hostname, keys, clients)
    return lines


def check_dns(config: GovmailConfig, db: Database, now: datetime) -> list[CheckResult]:
    """Every local domain's records, looked up through the configured resolver."""
    records = expected_records(zone_lines(config, db, now))
    return asyncio.run(check_records(build_dns(config), records))
