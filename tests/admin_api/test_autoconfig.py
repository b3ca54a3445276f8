"""Client autoconfiguration: each document fetched as its client fetches it (httpx against the
real admin API on a loopback socket, no token), parsed with xml.etree / plistlib and checked
element by element against its format (no XSD of these formats ships in a Debian or PyPI
package); only local domains answer, and the answer never depends on the mailbox existing.
Plus the public host/ports of [clients] and the DNS records that point clients here."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailserver.client_autoconfig import (
    AUTODISCOVER_REQUEST_NS,
    AUTODISCOVER_RESPONSE_NS,
    OUTLOOK_RESPONSE_SCHEMA,
)
from mailserver.config import (
    ClientsSection,
    GovmailConfig,
    IMAPSection,
    ServerSection,
    SMTPSection,
)
from mailserver.dns_records import ClientEndpoints, client_endpoints, domain_records
from tests.support.harness import TEST_DOMAIN, LiveServer, start_live_server
from tests.support.harness import test_config as make_config

PUBLIC_HOST = "mail.sotest.gov.vn"
# Behind NAT: the listeners are on ephemeral loopback ports, clients are told the public ones.
PUBLIC = {
    "hostname": PUBLIC_HOST,
    "imap_port": 143,
    "imaps_port": 993,
    "submission_port": 587,
    "submissions_port": 465,
}
USER = f"an@{TEST_DOMAIN}"
NOBODY = f"khongco@{TEST_DOMAIN}"  # no such mailbox: answered all the same
FOREIGN = "an@example.org"
AGENCY_NAME = "Agency sotest"  # LiveServer.add_domain names the agency so

TB = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AD = "/autodiscover/autodiscover.xml"
R = f"{{{OUTLOOK_RESPONSE_SCHEMA}}}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = make_config(
        tmp_path / "data", f"sqlite:///{tmp_path / 'govmail.sqlite3'}", clients=PUBLIC
    )
    server: LiveServer = await start_live_server(config)
    try:
        await server.add_domain()
        await server.add_mailbox(USER)
        host, port = server.address("admin_api")
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as http:
            yield http
    finally:
        await server.running.stop(grace=1.0)


def outlook_request(address: str) -> bytes:
    """The POX request Outlook sends."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{AUTODISCOVER_REQUEST_NS}"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        f"<AcceptableResponseSchema>{OUTLOOK_RESPONSE_SCHEMA}</AcceptableResponseSchema>"
        f"</Request></Autodiscover>"
    ).encode()


def server_settings(element: ET.Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in element}


# ---------------------------------------------------------------- Thunderbird


async def test_thunderbird_autoconfig_lists_imap_and_smtp_with_tls(
    client: httpx.AsyncClient,
) -> None:
    for path in TB:
        response = await client.get(path, params={"emailaddress": USER})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        root = ET.fromstring(response.content)
        assert root.tag == "clientConfig" and root.get("version") == "1.1"
        (provider,) = root.findall("emailProvider")
        assert provider.get("id") == TEST_DOMAIN
        assert provider.findtext("domain") == TEST_DOMAIN
        assert provider.findtext("displayName") == AGENCY_NAME
        assert provider.findtext("displayShortName") == AGENCY_NAME
        incoming = [server_settings(e) for e in provider.findall("incomingServer")]
        outgoing = [server_settings(e) for e in provider.findall("outgoingServer")]
        assert [e.get("type") for e in provider.findall("incomingServer")] == ["imap", "imap"]
        assert [e.get("type") for e in provider.findall("outgoingServer")] == ["smtp", "smtp"]
        common = {
            "hostname": PUBLIC_HOST,
            "authentication": "password-cleartext",
            "username": "%EMAILADDRESS%",
        }
        # Implicit TLS first (RFC 8314), then STARTTLS.
        assert incoming == [
            {**common, "port": "993", "socketType": "SSL"},
            {**common, "port": "143", "socketType": "STARTTLS"},
        ]
        assert outgoing == [
            {**common, "port": "465", "socketType": "SSL"},
            {**common, "port": "587", "socketType": "STARTTLS"},
        ]


async def test_thunderbird_domain_from_the_autoconfig_host_name(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(TB[1], headers={"Host": f"autoconfig.{TEST_DOMAIN}"})
    assert response.status_code == 200
    assert ET.fromstring(response.content).find("emailProvider/domain") is not None
    other = await client.get(TB[1], headers={"Host": "autoconfig.example.org"})
    assert other.status_code == 404
    bare = await client.get(TB[1])  # neither an address nor an autoconfig host
    assert bare.status_code == 404


async def test_answers_do_not_reveal_whether_the_mailbox_exists(
    client: httpx.AsyncClient,
) -> None:
    thunderbird = [
        (await client.get(TB[0], params={"emailaddress": a})).content for a in (USER, NOBODY)
    ]
    assert thunderbird[0] == thunderbird[1]
    for address in (USER, NOBODY):
        outlook = await client.post(AD, content=outlook_request(address))
        assert outlook.status_code == 200
        apple = await client.get("/mobileconfig", params={"emailaddress": address})
        assert apple.status_code == 200


async def test_unknown_domains_and_bad_addresses_are_refused(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(TB[0], params={"emailaddress": FOREIGN}),
        await client.post(AD, content=outlook_request(FOREIGN)),
        await client.get("/mobileconfig", params={"emailaddress": FOREIGN}),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert FOREIGN not in response.text
    bad = await client.get(TB[0], params={"emailaddress": "no-at-sign"})
    assert bad.status_code == 400


# ---------------------------------------------------------------- Outlook


async def test_outlook_autodiscover_answers_the_2006a_schema(client: httpx.AsyncClient) -> None:
    for path in (AD, "/Autodiscover/Autodiscover.xml"):
        response = await client.post(
            path, content=outlook_request(USER.upper()), headers={"Content-Type": "text/xml"}
        )
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.content)
        assert root.tag == f"{{{AUTODISCOVER_RESPONSE_NS}}}Autodiscover"
        account = root.find(f"{R}Response/{R}Account")
        assert account is not None
        assert account.findtext(f"{R}AccountType") == "email"
        assert account.findtext(f"{R}Action") == "settings"
        protocols = {
            p.findtext(f"{R}Type"): {c.tag.removeprefix(R): c.text for c in p}
            for p in account.findall(f"{R}Protocol")
        }
        assert set(protocols) == {"IMAP", "SMTP"}
        for kind, port in (("IMAP", "993"), ("SMTP", "465")):
            settings = protocols[kind]
            assert settings["Server"] == PUBLIC_HOST
            assert settings["Port"] == port
            assert settings["SSL"] == "on"
            assert settings["LoginName"] == USER  # normalised to lower case
            assert settings["AuthRequired"] == "on"
            assert settings["SPA"] == "off"
            assert "Encryption" not in settings  # implicit TLS: SSL on says it all
    by_get = await client.get(AD, params={"emailaddress": USER})
    assert by_get.status_code == 200
    assert by_get.content == response.content


async def test_autodiscover_refuses_what_it_cannot_answer(client: httpx.AsyncClient) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><Autodiscover>&b;</Autodiscover>'
    mobilesync = outlook_request(USER).replace(
        b"outlook/responseschema/2006a", b"mobilesync/responseschema/2006"
    )
    for body in (b"not xml", b"<Autodiscover/>", bomb, mobilesync):
        response = await client.post(AD, content=body)
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "application/problem+json"
    too_large = await client.post(AD, content=b" " * 20_000 + outlook_request(USER))
    assert too_large.status_code == 413
    assert (await client.get(AD)).status_code == 400


# ---------------------------------------------------------------- Apple


async def test_apple_mobileconfig_is_a_mail_profile(client: httpx.AsyncClient) -> None:
    response = await client.get("/mobileconfig", params={"emailaddress": USER})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-apple-aspen-config"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{TEST_DOMAIN}.mobileconfig"'
    )
    profile = plistlib.loads(response.content)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    assert profile["PayloadOrganization"] == AGENCY_NAME
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"):
        assert isinstance(profile[key], str) and profile[key]
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["PayloadVersion"] == 1
    assert mail["PayloadIdentifier"].startswith(profile["PayloadIdentifier"])
    assert mail["PayloadUUID"] != profile["PayloadUUID"]
    assert {k: v for k, v in mail.items() if "MailServer" in k or k.startswith("Email")} == {
        "EmailAccountDescription": USER,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": USER,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": PUBLIC_HOST,
        "IncomingMailServerPortNumber": 993,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": USER,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": PUBLIC_HOST,
        "OutgoingMailServerPortNumber": 465,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": USER,
    }
    assert mail["OutgoingPasswordSameAsIncomingPassword"] is True
    # A second download is the same profile (same UUIDs), so installing it replaces the first.
    again = await client.get("/mobileconfig", params={"emailaddress": USER})
    assert plistlib.loads(again.content)["PayloadUUID"] == profile["PayloadUUID"]


async def test_mobileconfig_without_an_address_asks_for_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/mobileconfig")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'name="emailaddress"' in response.text and 'action="/mobileconfig"' in response.text


# ---------------------------------------------------------------- public endpoints and DNS


def test_public_endpoints_default_to_the_listeners() -> None:
    config = GovmailConfig(
        server=ServerSection(hostname="mx.sotest.gov.vn"),
        imap=IMAPSection(listen="0.0.0.0:143", tls_listen=""),
        smtp=SMTPSection(submission_listen="0.0.0.0:587", submissions_listen="0.0.0.0:465"),
    )
    assert client_endpoints(config) == ClientEndpoints(
        host="mx.sotest.gov.vn",
        web_host="mx.sotest.gov.vn",
        submission=587,
        submissions=465,
        imap=143,
        imaps=None,  # listener off: not offered
    )
    behind_nat = GovmailConfig(
        server=ServerSection(hostname="mx.sotest.gov.vn"),
        imap=IMAPSection(listen="10.0.0.5:2143", tls_listen=""),
        clients=ClientsSection(
            hostname=PUBLIC_HOST, web_hostname="www.sotest.gov.vn", imap_port=143, imaps_port=993
        ),
    )
    endpoints = client_endpoints(behind_nat)
    assert (endpoints.host, endpoints.web_host) == (PUBLIC_HOST, "www.sotest.gov.vn")
    assert (endpoints.imap, endpoints.imaps) == (143, 993)


def test_dns_records_point_clients_to_the_public_endpoints() -> None:
    endpoints = ClientEndpoints(
        host=PUBLIC_HOST, web_host="web.sotest.gov.vn", submission=587, submissions=465,
        imap=None, imaps=993,
    )  # fmt: skip
    lines = domain_records(TEST_DOMAIN, "mx.sotest.gov.vn", [], endpoints)
    name = f"{TEST_DOMAIN}."
    for expected in (
        f"{name} 3600 IN MX 10 mx.sotest.gov.vn.",
        f"_submission._tcp.{name} 3600 IN SRV 0 1 587 {PUBLIC_HOST}.",
        f"_submissions._tcp.{name} 3600 IN SRV 0 1 465 {PUBLIC_HOST}.",
        f"_imap._tcp.{name} 3600 IN SRV 0 0 0 .",  # RFC 6186 3.4: not offered
        f"_imaps._tcp.{name} 3600 IN SRV 0 1 993 {PUBLIC_HOST}.",
        f"autoconfig.{name} 3600 IN CNAME web.sotest.gov.vn.",
        f"autodiscover.{name} 3600 IN CNAME web.sotest.gov.vn.",
        f"_autodiscover._tcp.{name} 3600 IN SRV 0 1 443 web.sotest.gov.vn.",
    ):
        assert expected in lines
