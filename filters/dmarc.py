"""DMARC (RFC 7489): policy record lookup, organizational domain, identifier alignment.

``evaluate_dmarc`` takes the RFC5322.From domain and the SPF and DKIM results already computed
and answers pass/fail/none/temperror/permerror with the policy to apply. The organizational
domain uses a built-in list of public suffixes that have more than one label (RFC 7489 3.2:
"the Public Suffix List or a similar list"); extend it with ``extra_suffixes``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from filters.dns import DnsResolver, DnsTempError

# Multi-label public suffixes met in Vietnamese government and common correspondence.
_VN_SECOND_LEVEL = "gov com net org edu ac int info biz name pro health id"
_OTHER_SUFFIXES = "co.uk org.uk gov.uk ac.uk com.au gov.au co.jp go.jp com.cn gov.cn co.kr go.kr"
PUBLIC_SUFFIXES = frozenset(
    [f"{label}.vn" for label in _VN_SECOND_LEVEL.split()] + _OTHER_SUFFIXES.split()
)


class DmarcResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Policy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True)
class DmarcRecord:
    policy: Policy
    subdomain_policy: Policy | None = None
    strict_dkim: bool = False
    strict_spf: bool = False
    percent: int = 100


@dataclass(frozen=True)
class DmarcOutcome:
    result: DmarcResult
    from_domain: str
    policy: Policy = Policy.NONE  # what the domain owner asks for when the result is fail
    applied: bool = True  # False when pct= sampled this message out (RFC 7489 6.6.4)
    detail: str = ""


def organizational_domain(domain: str, extra_suffixes: Iterable[str] = ()) -> str:
    """The registered domain: one label below the longest known public suffix."""
    labels = domain.rstrip(".").lower().split(".")
    suffixes = PUBLIC_SUFFIXES | {s.lower().strip(".") for s in extra_suffixes}
    for size in range(len(labels) - 1, 0, -1):
        if ".".join(labels[-size:]) in suffixes:
            return ".".join(labels[-size - 1 :])
    return ".".join(labels[-2:])


def parse_dmarc_record(text: str) -> DmarcRecord | None:
    """Parse "v=DMARC1; p=...; ..." (RFC 7489 6.3); None if it is not a valid policy record."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    if tags.get("v") != "DMARC1" or not text.lstrip().startswith("v"):
        return None

    def policy(value: str | None) -> Policy | None:
        if value is None:
            return None
        try:
            return Policy(value.lower())
        except ValueError:
            return None

    main = policy(tags.get("p"))
    if main is None:
        # RFC 7489 6.6.3: an invalid p= with a valid rua= is treated as p=none.
        if "rua" in tags:
            main = Policy.NONE
        else:
            return None
    percent = 100
    if re.fullmatch(r"\d{1,3}", tags.get("pct", "100")):
        percent = min(int(tags.get("pct", "100")), 100)
    return DmarcRecord(
        policy=main,
        subdomain_policy=policy(tags.get("sp")),
        strict_dkim=tags.get("adkim", "r").lower() == "s",
        strict_spf=tags.get("aspf", "r").lower() == "s",
        percent=percent,
    )


def aligned(
    identifier: str, from_domain: str, strict: bool, extra_suffixes: Iterable[str] = ()
) -> bool:
    """RFC 7489 3.1: strict needs the same name; relaxed the same organizational domain."""
    identifier, from_domain = identifier.rstrip(".").lower(), from_domain.rstrip(".").lower()
    if strict:
        return identifier == from_domain
    suffixes = list(extra_suffixes)
    return organizational_domain(identifier, suffixes) == organizational_domain(
        from_domain, suffixes
    )


async def _policy_record(resolver: DnsResolver, domain: str) -> DmarcRecord | None:
    records = [r for r in await resolver.query(f"_dmarc.{domain}", "TXT") if r.startswith("v=")]
    parsed = [p for p in (parse_dmarc_record(r) for r in records) if p is not None]
    # RFC 7489 6.6.3: more than one record means none is used.
    return parsed[0] if len(parsed) == 1 else None


async def find_policy(
    resolver: DnsResolver, from_domain: str, extra_suffixes: Sequence[str] = ()
) -> tuple[DmarcRecord | None, bool]:
    """The record governing ``from_domain``, and whether it is the organizational domain's."""
    record = await _policy_record(resolver, from_domain)
    if record is not None:
        return record, False
    org = organizational_domain(from_domain, extra_suffixes)
    if org != from_domain:
        record = await _policy_record(resolver, org)
        if record is not None:
            return record, True
    return None, False


async def evaluate_dmarc(
    resolver: DnsResolver,
    from_domain: str,
    spf_pass_domain: str | None,
    dkim_pass_domains: Sequence[str],
    extra_suffixes: Sequence[str] = (),
    sample: Callable[[], float] = random.random,
) -> DmarcOutcome:
    """RFC 7489 6.6: the DMARC result for a message whose From domain is ``from_domain``.

    ``spf_pass_domain`` is the MAIL FROM domain when SPF passed; ``dkim_pass_domains`` the d=
    of every DKIM signature that verified.
    """
    from_domain = from_domain.rstrip(".").lower()
    try:
        record, inherited = await find_policy(resolver, from_domain, extra_suffixes)
    except DnsTempError as exc:
        return DmarcOutcome(DmarcResult.TEMPERROR, from_domain, detail=str(exc))
    if record is None:
        return DmarcOutcome(DmarcResult.NONE, from_domain, detail="no DMARC record")
    policy = (record.subdomain_policy or record.policy) if inherited else record.policy
    dkim_ok = any(
        aligned(d, from_domain, record.strict_dkim, extra_suffixes) for d in dkim_pass_domains
    )
    spf_ok = spf_pass_domain is not None and aligned(
        spf_pass_domain, from_domain, record.strict_spf, extra_suffixes
    )
    if dkim_ok or spf_ok:
        how = "dkim" if dkim_ok else "spf"
        return DmarcOutcome(DmarcResult.PASS, from_domain, policy, detail=f"aligned {how}")
    applied = record.percent >= 100 or sample() * 100 < record.percent
    return DmarcOutcome(
        DmarcResult.FAIL, from_domain, policy, applied, detail="no aligned SPF or DKIM pass"
    )
