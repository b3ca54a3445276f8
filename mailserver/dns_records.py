"""The DNS records an admin publishes for a domain, in zone-file syntax.

DKIM keys (every selector that must be published now), SPF, DMARC, MX, and the SRV records
with which mail clients find the servers (RFC 6186 for IMAP and submission, RFC 8314 for the
implicit-TLS ports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from filters.dkim_keys import key_record
from mailserver.config import GovmailConfig, parse_listen
from storage.models import DkimKey

TTL = 3600
MAX_TXT_STRING = 255  # RFC 1035 3.3: one character-string


@dataclass(frozen=True)
class ServicePorts:
    submission: int = 587
    submissions: int = 465
    imap: int = 143
    imaps: int = 993


def _port(listen: str, default: int) -> int:
    return parse_listen(listen)[1] if listen else default


def service_ports(config: GovmailConfig) -> ServicePorts:
    """The ports clients are told about: the configured listeners (standard ones if off)."""
    return ServicePorts(
        submission=_port(config.smtp.submission_listen, 587),
        submissions=_port(config.smtp.submissions_listen, 465),
        imap=_port(config.imap.listen, 143),
        imaps=_port(config.imap.tls_listen, 993),
    )


def txt_strings(value: str) -> str:
    """A TXT value as quoted character-strings of at most 255 octets each."""
    chunks = [value[i : i + MAX_TXT_STRING] for i in range(0, len(value), MAX_TXT_STRING)]
    return " ".join(f'"{chunk}"' for chunk in chunks or [""])


def domain_records(
    domain: str, mail_host: str, keys: Sequence[DkimKey], ports: ServicePorts
) -> list[str]:
    """Comment lines and records, one per line, ready for a zone file."""
    host = mail_host.rstrip(".") + "."
    name = domain.rstrip(".") + "."
    lines = ["; DKIM (RFC 6376, RFC 8463): every selector in use or being rotated"]
    for key in keys:
        lines.append(
            f"{key.selector}._domainkey.{name} {TTL} IN TXT {txt_strings(key_record(key))}"
        )
    lines += [
        "; SPF (RFC 7208): only this domain's MX hosts send its mail",
        f'{name} {TTL} IN TXT "v=spf1 mx -all"',
        "; DMARC (RFC 7489): refuse mail that fails both aligned SPF and DKIM",
        f'_dmarc.{name} {TTL} IN TXT "v=DMARC1; p=reject; adkim=r; aspf=r"',
        "; MX",
        f"{name} {TTL} IN MX 10 {host}",
        "; client autoconfiguration (RFC 6186, RFC 8314)",
        f"_submission._tcp.{name} {TTL} IN SRV 0 1 {ports.submission} {host}",
        f"_submissions._tcp.{name} {TTL} IN SRV 0 1 {ports.submissions} {host}",
        f"_imap._tcp.{name} {TTL} IN SRV 0 1 {ports.imap} {host}",
        f"_imaps._tcp.{name} {TTL} IN SRV 0 1 {ports.imaps} {host}",
    ]
    return lines
