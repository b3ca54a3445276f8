"""The DNS records an admin publishes for a domain, in zone-file syntax.

DKIM keys (every selector that must be published now), SPF, DMARC, MX, and the SRV records
with which mail clients find the servers (RFC 6186 for IMAP and submission, RFC 8314 for the
implicit-TLS ports), plus the autoconfig/autodiscover names of the web host that serves the
client autoconfiguration files (admin_api/routers/autoconfig.py). Host names and ports are the
public ones clients are told ([clients] in the config; client_endpoints).
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
class ClientEndpoints:
    """Where mail clients connect: the public host names and ports (None: not offered)."""

    host: str  # IMAP and submission
    web_host: str  # autoconfig and autodiscover, over HTTPS
    submission: int | None = 587
    submissions: int | None = 465
    imap: int | None = 143
    imaps: int | None = 993


def _advertised_port(configured: int, listen: str) -> int | None:
    """A configured public port wins; else the listener's port; None if neither exists."""
    if configured:
        return configured
    return parse_listen(listen)[1] if listen else None


def client_endpoints(config: GovmailConfig) -> ClientEndpoints:
    """What clients are told: [clients] where set, else server.hostname and the listeners."""
    clients = config.clients
    host = clients.hostname or config.server.hostname
    return ClientEndpoints(
        host=host,
        web_host=clients.web_hostname or host,
        submission=_advertised_port(clients.submission_port, config.smtp.submission_listen),
        submissions=_advertised_port(clients.submissions_port, config.smtp.submissions_listen),
        imap=_advertised_port(clients.imap_port, config.imap.listen),
        imaps=_advertised_port(clients.imaps_port, config.imap.tls_listen),
    )


def _srv(service: str, name: str, port: int | None, host: str) -> str:
    """RFC 6186 3.4: a service that is not offered has the target "." (and port 0)."""
    if port is None:
        return f"{service}._tcp.{name} {TTL} IN SRV 0 0 0 ."
    return f"{service}._tcp.{name} {TTL} IN SRV 0 1 {port} {host}"


def txt_strings(value: str) -> str:
    """A TXT value as quoted character-strings of at most 255 octets each."""
    chunks = [value[i : i + MAX_TXT_STRING] for i in range(0, len(value), MAX_TXT_STRING)]
    return " ".join(f'"{chunk}"' for chunk in chunks or [""])


def domain_records(
    domain: str, mail_host: str, keys: Sequence[DkimKey], clients: ClientEndpoints
) -> list[str]:
    """Comment lines and records, one per line, ready for a zone file."""
    host = mail_host.rstrip(".") + "."
    client_host = clients.host.rstrip(".") + "."
    web_host = clients.web_host.rstrip(".") + "."
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
        _srv("_submission", name, clients.submission, client_host),
        _srv("_submissions", name, clients.submissions, client_host),
        _srv("_imap", name, clients.imap, client_host),
        _srv("_imaps", name, clients.imaps, client_host),
        "; Thunderbird (autoconfig), Outlook (autodiscover): HTTPS on the web host",
        f"autoconfig.{name} {TTL} IN CNAME {web_host}",
        f"autodiscover.{name} {TTL} IN CNAME {web_host}",
        f"_autodiscover._tcp.{name} {TTL} IN SRV 0 1 443 {web_host}",
    ]
    return lines
