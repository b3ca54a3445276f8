"""The ``authentication`` check of inbound mail: SPF, DKIM, ARC, DMARC, one Authentication-Results.

Results go into a single Authentication-Results field (RFC 8601) with this server's authserv-id;
every Authentication-Results field that arrived with the message is removed first (RFC 8601 5:
a receiver removes fields that claim its authserv-id; from outside, none can be trusted).

Decisions: mail claiming a local domain in the envelope (MAIL FROM), in From or in Sender that
does not pass DMARC alignment for that domain is refused (whatever DNS says: we know our own
policy); a message with no From field is refused (RFC 5322 3.6 requires one, and a client then
shows whatever it finds); and a sender's DMARC policy is applied up to ``enforcement``. An ARC
chain sealed by a trusted forwarder overrides a DMARC failure (RFC 7489 6.7 local policy,
RFC 8617 7.2).
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from filters.dkim_verify import ArcResult, DkimResult, verify_arc, verify_dkim
from filters.dmarc import DmarcOutcome, DmarcResult, Policy, aligned, evaluate_dmarc
from filters.dns import DnsResolver
from filters.message_headers import field_domains, field_values, from_domains
from filters.pipeline import Action, Direction, MessageContext, Verdict
from filters.spf import SpfOutcome, SpfResult, check_host

AUTH_RESULTS = "Authentication-Results"
_SAFE_VALUE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]{1,255}")

IsLocalDomain = Callable[[str], Awaitable[bool]]
NO_FROM_REPLY = "550 5.6.0 The message has no From field (RFC 5322 3.6)"


def claimed_domains(
    mail_from: str, from_domains: Sequence[str], sender_domains: Sequence[str]
) -> list[tuple[str, str]]:
    """(where, domain) for each identity the message claims: From, Sender, then the envelope."""
    claims = [("From", d) for d in from_domains] + [("Sender", d) for d in sender_domains]
    envelope_domain = mail_from.rpartition("@")[2].lower().rstrip(".") if "@" in mail_from else ""
    if envelope_domain:
        claims.append(("MAIL FROM", envelope_domain))
    return claims


@dataclass(frozen=True)
class AuthenticationReport:
    """Every result of one message, and what they decide."""

    spf: SpfOutcome
    dkim: tuple[DkimResult, ...]
    arc: ArcResult
    dmarc: DmarcOutcome
    from_domain: str
    action: Action = Action.ACCEPT
    reply: str | None = None


def _pvalue(text: str) -> str | None:
    """``text`` if it can stand as an RFC 8601 property value without quoting, else None."""
    return text if _SAFE_VALUE.fullmatch(text) else None


def render_authentication_results(
    authserv_id: str, report: AuthenticationReport, mail_from: str, helo: str
) -> str:
    """The field value: "authserv-id; spf=...; dkim=...; arc=...; dmarc=..." (RFC 8601 2.2)."""
    spf = f"spf={report.spf.result}"
    identity = _pvalue(mail_from) if mail_from else None
    if identity:
        spf += f" smtp.mailfrom={identity}"
    elif _pvalue(helo):
        spf += f" smtp.helo={helo}"
    parts = [spf]
    for result in report.dkim:
        entry = f"dkim={result.result}"
        for prop, value in (
            ("header.d", result.domain),
            ("header.s", result.selector),
            ("header.a", result.algorithm),
            ("header.b", result.signature_prefix),
        ):
            if _pvalue(value):
                entry += f" {prop}={value}"
        parts.append(entry)
    if not report.dkim:
        parts.append("dkim=none")
    parts.append(f"arc={report.arc.result}")
    dmarc = f"dmarc={report.dmarc.result}"
    if report.dmarc.result in (DmarcResult.PASS, DmarcResult.FAIL):
        dmarc += f" (p={report.dmarc.policy})"
    if _pvalue(report.from_domain):
        dmarc += f" header.from={report.from_domain}"
    parts.append(dmarc)
    return f"{authserv_id};\r\n\t" + ";\r\n\t".join(parts)


class AuthenticationCheck:
    """SPF + DKIM + ARC + DMARC for mail arriving through MX."""

    name = "authentication"

    def __init__(
        self,
        resolver: DnsResolver,
        authserv_id: str,
        is_local_domain: IsLocalDomain,
        enforcement: str = "reject",
        trusted_arc_sealers: Sequence[str] = (),
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.is_local_domain = is_local_domain
        self.enforcement = Policy(enforcement)
        self.trusted_arc_sealers = {s.lower().rstrip(".") for s in trusted_arc_sealers}
        self.sample = sample

    async def authenticate(self, message: bytes, context: MessageContext) -> AuthenticationReport:
        spf = await check_host(self.resolver, context.peer_ip, context.mail_from, context.helo)
        dkim_results = tuple(await verify_dkim(message, self.resolver))
        arc = await verify_arc(message, self.resolver)
        domains = from_domains(message)
        dkim_pass = [r.domain for r in dkim_results if r.result == "pass"]
        spf_pass = spf.domain if spf.result is SpfResult.PASS else None
        if len(domains) != 1:
            dmarc = DmarcOutcome(
                DmarcResult.PERMERROR, "", detail=f"{len(domains)} From domains (RFC 7489 6.6.1)"
            )
        else:
            dmarc = await evaluate_dmarc(
                self.resolver, domains[0], spf_pass, dkim_pass, sample=self.sample
            )
        report = AuthenticationReport(spf, dkim_results, arc, dmarc, ",".join(domains))
        if not field_values(message, "from"):
            return AuthenticationReport(
                spf, dkim_results, arc, dmarc, "", Action.REJECT, NO_FROM_REPLY
            )
        claims = claimed_domains(context.mail_from, domains, field_domains(message, "sender"))
        action, reply = await self._decide(report, claims, len(domains), spf_pass, dkim_pass)
        return AuthenticationReport(
            spf, dkim_results, arc, dmarc, report.from_domain, action, reply
        )

    async def _decide(
        self,
        report: AuthenticationReport,
        claims: list[tuple[str, str]],
        from_count: int,
        spf_pass: str | None,
        dkim_pass: list[str],
    ) -> tuple[Action, str | None]:
        trusted_arc = report.arc.result == "pass" and report.arc.sealer in self.trusted_arc_sealers
        for where, domain in claims:
            if not await self.is_local_domain(domain):
                continue
            passed = (where != "From" or from_count == 1) and (
                any(aligned(d, domain, strict=False) for d in dkim_pass)
                or (spf_pass is not None and aligned(spf_pass, domain, strict=False))
            )
            if passed or trusted_arc:
                continue
            if report.spf.result is SpfResult.TEMPERROR or any(
                r.result == "temperror" for r in report.dkim
            ):
                return Action.TEMPFAIL, "451 4.7.1 Cannot verify the sender now, try again later"
            return Action.REJECT, (
                f"550 5.7.1 {where} claims {domain}, a domain of this server, "
                "but the message fails authentication (DMARC)"
            )
        if any([await self.is_local_domain(domain) for _, domain in claims]):
            return Action.ACCEPT, None
        dmarc = report.dmarc
        if dmarc.result is not DmarcResult.FAIL or not dmarc.applied or trusted_arc:
            return Action.ACCEPT, None
        wanted = dmarc.policy
        if wanted is Policy.REJECT and self.enforcement is Policy.REJECT:
            return Action.REJECT, (
                f"550 5.7.1 Rejected by the DMARC policy of {dmarc.from_domain}: "
                "no aligned SPF or DKIM pass"
            )
        if wanted is not Policy.NONE and self.enforcement is not Policy.NONE:
            return Action.JUNK, None
        return Action.ACCEPT, None

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        if context.direction is not Direction.INBOUND:
            return Verdict(self.name, detail="not inbound")
        report = await self.authenticate(message, context)
        value = render_authentication_results(
            self.authserv_id, report, context.mail_from, context.helo
        )
        dkim_words = ",".join(r.result for r in report.dkim) or "none"
        detail = (
            f"spf={report.spf.result} dkim={dkim_words} arc={report.arc.result} "
            f"dmarc={report.dmarc.result} from={report.from_domain}"
        )
        return Verdict(
            self.name,
            action=report.action,
            reply=report.reply,
            add_headers=((AUTH_RESULTS, value),),
            remove_headers=(AUTH_RESULTS,),
            detail=detail,
        )
