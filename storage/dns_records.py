"""The DNS records an agency publishes for a mail domain: a pure function of what we know.

MX to this server; SPF allowing only the MX (RFC 7208); DMARC with reports to the postmaster
(RFC 7489); one DKIM TXT per published key (RFC 6376 3.6.1, Ed25519 per RFC 8463); the RFC 6186
SRV records for client setup, with submissions on 465 (RFC 8314 5.1) and IMAPS on 993; and the
autoconfig/autodiscover names Thunderbird and Outlook look up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# RFC 6376 3.6.1 allows long p= values split into several strings of one TXT record; 255 octets
# is the most one character-string holds (RFC 1035 3.3.14).
TXT_STRING_MAX = 255


@dataclass(frozen=True)
class DnsRecord:
    name: str  # fully qualified, with the trailing dot
    type: str
    value: str  # presentation form (TXT values quoted)
    purpose: str


@dataclass(frozen=True)
class PublishedKey:
    selector: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    public_key_b64: str


def quote_txt(text: str) -> str:
    """A TXT value as zone-file strings of at most 255 octets each."""
    chunks = [text[i : i + TXT_STRING_MAX] for i in range(0, len(text), TXT_STRING_MAX)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


def dkim_txt(key: PublishedKey) -> str:
    key_type = "ed25519" if key.algorithm.startswith("ed25519") else "rsa"
    return f"v=DKIM1; k={key_type}; p={key.public_key_b64}"


def records_for_domain(
    domain: str, mail_host: str, keys: Sequence[PublishedKey] = ()
) -> list[DnsRecord]:
    """Every record to publish for ``domain`` served by ``mail_host`` (both A-labels)."""
    zone = domain.rstrip(".") + "."
    host = mail_host.rstrip(".") + "."
    records = [
        DnsRecord(zone, "MX", f"10 {host}", "mail for the domain is delivered here"),
        DnsRecord(zone, "TXT", quote_txt("v=spf1 mx -all"), "SPF: only the MX sends"),
        DnsRecord(
            f"_dmarc.{zone}",
            "TXT",
            quote_txt(f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
            "DMARC policy and aggregate reports",
        ),
    ]
    for key in keys:
        records.append(
            DnsRecord(
                f"{key.selector}._domainkey.{zone}",
                "TXT",
                quote_txt(dkim_txt(key)),
                f"DKIM public key ({key.algorithm})",
            )
        )
    for service, port in (("_submissions._tcp", 465), ("_submission._tcp", 587)):
        records.append(
            DnsRecord(f"{service}.{zone}", "SRV", f"0 1 {port} {host}", "RFC 6186 client setup")
        )
    for service, port in (("_imaps._tcp", 993), ("_imap._tcp", 143)):
        records.append(
            DnsRecord(f"{service}.{zone}", "SRV", f"0 1 {port} {host}", "RFC 6186 client setup")
        )
    for alias in ("autoconfig", "autodiscover"):
        records.append(
            DnsRecord(f"{alias}.{zone}", "CNAME", host, "Thunderbird / Outlook autoconfiguration")
        )
    return records
