"""Mail client autoconfiguration documents, so that a user types only an address and a password.

Pure functions from the public endpoints (mailserver.dns_records.client_endpoints) to the bytes
each client expects; admin_api/routers/autoconfig.py serves them:
- Thunderbird (and K-9, Evolution, ...) autoconfig, clientConfig version 1.1;
- Outlook's POX Autodiscover, the outlook/responseschema/2006a response, and the request parser;
- an Apple configuration profile (.mobileconfig) with a com.apple.mail.managed payload, unsigned.

Implicit TLS comes first wherever a client takes an order (RFC 8314 3: prefer it); the user name
is the whole address; nothing here depends on whether the mailbox exists.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from mailserver.dns_records import ClientEndpoints

AUTODISCOVER_REQUEST_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
)
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE_SCHEMA = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
MAX_AUTODISCOVER_REQUEST = 16 * 1024


@dataclass(frozen=True)
class ClientServer:
    """One server a client may use: protocol, port and how TLS starts."""

    protocol: str  # "imap" or "smtp"
    port: int
    implicit_tls: bool  # True: TLS from the first byte (993, 465); False: STARTTLS


def offered_servers(endpoints: ClientEndpoints) -> list[ClientServer]:
    """The offered services, each protocol's implicit-TLS port before its STARTTLS port."""
    candidates = [
        ("imap", endpoints.imaps, True),
        ("imap", endpoints.imap, False),
        ("smtp", endpoints.submissions, True),
        ("smtp", endpoints.submission, False),
    ]
    return [ClientServer(p, port, tls) for p, port, tls in candidates if port is not None]


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text
    return child


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# ---------------------------------------------------------------- Thunderbird


def thunderbird_config(endpoints: ClientEndpoints, domain: str, display_name: str) -> bytes:
    """clientConfig 1.1 (the format Thunderbird's ISPDB uses) for every address of ``domain``."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    _text(provider, "domain", domain)
    _text(provider, "displayName", display_name)
    _text(provider, "displayShortName", display_name)
    for server in offered_servers(endpoints):
        tag = "incomingServer" if server.protocol == "imap" else "outgoingServer"
        element = ET.SubElement(provider, tag, type=server.protocol)
        _text(element, "hostname", endpoints.host)
        _text(element, "port", str(server.port))
        _text(element, "socketType", "SSL" if server.implicit_tls else "STARTTLS")
        _text(element, "authentication", "password-cleartext")
        _text(element, "username", "%EMAILADDRESS%")
    return _document(root)


# ---------------------------------------------------------------- Outlook Autodiscover


class AutodiscoverRequestError(ValueError):
    """The request body is not an Autodiscover request we can answer."""


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_autodiscover_request(body: bytes) -> str:
    """The EMailAddress of a POX Autodiscover request; refuses DTDs and other response schemas."""
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        raise AutodiscoverRequestError("request too large")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise AutodiscoverRequestError("a DTD is not allowed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise AutodiscoverRequestError("not well-formed XML") from exc
    fields = {_local_name(e.tag): (e.text or "").strip() for e in root.iter()}
    if _local_name(root.tag) != "Autodiscover" or not fields.get("EMailAddress"):
        raise AutodiscoverRequestError("no Autodiscover/Request/EMailAddress")
    schema = fields.get("AcceptableResponseSchema", OUTLOOK_RESPONSE_SCHEMA)
    if schema != OUTLOOK_RESPONSE_SCHEMA:
        raise AutodiscoverRequestError(f"only {OUTLOOK_RESPONSE_SCHEMA} is served")
    return fields["EMailAddress"]


def _first(servers: list[ClientServer], protocol: str) -> ClientServer | None:
    return next((s for s in servers if s.protocol == protocol), None)


def autodiscover_response(endpoints: ClientEndpoints, address: str) -> bytes:
    """The Outlook 2006a settings: one IMAP and one SMTP protocol, implicit TLS preferred."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_RESPONSE_SCHEMA)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    servers = offered_servers(endpoints)
    for kind in ("imap", "smtp"):
        server = _first(servers, kind)
        if server is None:
            continue
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", kind.upper())
        _text(protocol, "Server", endpoints.host)
        _text(protocol, "Port", str(server.port))
        _text(protocol, "DomainRequired", "off")
        _text(protocol, "LoginName", address)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        if not server.implicit_tls:
            _text(protocol, "Encryption", "TLS")  # STARTTLS; overrides SSL where understood
        _text(protocol, "AuthRequired", "on")
        if kind == "smtp":
            _text(protocol, "UsePOPAuth", "on")  # the same user name and password as IMAP
            _text(protocol, "SMTPLast", "off")
    return _document(root)


# ---------------------------------------------------------------- Apple configuration profile


def _profile_uuid(address: str, part: str) -> str:
    """Stable per address, so that installing a new download replaces the old profile."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"govmail:mobileconfig:{address}:{part}")).upper()


def _reverse_dns(domain: str) -> str:
    return ".".join(reversed(domain.split(".")))


def apple_mobileconfig(endpoints: ClientEndpoints, address: str, organisation: str) -> bytes:
    """A configuration profile with one IMAP account (com.apple.mail.managed), unsigned."""
    servers = offered_servers(endpoints)
    incoming = _first(servers, "imap")
    outgoing = _first(servers, "smtp")
    domain = address.rpartition("@")[2]
    identifier = f"{_reverse_dns(domain)}.govmail.{_profile_uuid(address, 'id')}"
    account: dict[str, object] = {
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "PayloadDescription": f"E-mail account {address}",
        "PayloadDisplayName": address,
        "PayloadIdentifier": f"{identifier}.mail",
        "PayloadType": "com.apple.mail.managed",
        "PayloadUUID": _profile_uuid(address, "mail"),
        "PayloadVersion": 1,
        "PreventAppSheet": False,
        "PreventMove": False,
        "SMIMEEnabled": False,
    }
    if incoming is not None:
        account |= {
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "IncomingMailServerHostName": endpoints.host,
            "IncomingMailServerPortNumber": incoming.port,
            "IncomingMailServerUseSSL": True,
            "IncomingMailServerUsername": address,
        }
    if outgoing is not None:
        account |= {
            "OutgoingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingMailServerHostName": endpoints.host,
            "OutgoingMailServerPortNumber": outgoing.port,
            "OutgoingMailServerUseSSL": True,
            "OutgoingMailServerUsername": address,
            "OutgoingPasswordSameAsIncomingPassword": True,
        }
    profile = {
        "PayloadContent": [account],
        "PayloadDescription": f"E-mail account {address} ({organisation})",
        "PayloadDisplayName": f"{organisation}: {address}",
        "PayloadIdentifier": identifier,
        "PayloadOrganization": organisation,
        "PayloadRemovalDisallowed": False,
        "PayloadType": "Configuration",
        "PayloadUUID": _profile_uuid(address, "profile"),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
