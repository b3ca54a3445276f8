"""The filters on a running server: MX mail checked (spamd, SPF/DMARC, forged headers),
submitted mail signed. Real sockets, real spamd, DNS from a static table file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import Session

from filters.dkim_keys import domain_keys, key_record
from filters.dkim_verify import verify_dkim
from filters.dns import StaticDns
from storage.accounts import find_domain
from storage.models import DkimKey
from tests.filters.conftest import corpus_file
from tests.smtp.helpers import Dialogue, client_tls, folder_messages
from tests.support.harness import TEST_PASSWORD, LiveServer, serving
from tests.support.harness import test_config as make_config

DOMAIN = "sotest.gov.vn"
USER, OTHER = f"an@{DOMAIN}", f"binh@{DOMAIN}"
STATIC_DNS = """\
["remote.example"]
TXT = ["v=spf1 ip4:127.0.0.1 -all"]
["_dmarc.remote.example"]
TXT = ["v=DMARC1; p=reject"]
"""


@pytest.fixture
async def server(tmp_path: Path, db_url: str, spamd_address: str) -> AsyncIterator[LiveServer]:
    dns_file = tmp_path / "dns.toml"
    dns_file.write_text(STATIC_DNS)
    config = make_config(
        tmp_path / "data",
        db_url,
        spamd={"enabled": True, "address": spamd_address, "reject_score": 15.0},
        dns={"static_file": str(dns_file)},
    )
    async with serving(config, USER, OTHER) as live:
        yield live


async def mx_send(server: LiveServer, mail_from: str, rcpt: str, raw: bytes) -> str:
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    try:
        assert (await dialogue.last(f"MAIL FROM:<{mail_from}>")).startswith("250")
        assert (await dialogue.last(f"RCPT TO:<{rcpt}>")).startswith("250")
        assert (await dialogue.last("DATA")).startswith("354")
        dialogue.writer.write(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        await dialogue.writer.drain()
        return (await dialogue.reply())[-1]
    finally:
        await dialogue.close()


async def test_gtube_through_mx_is_refused_at_data(server: LiveServer) -> None:
    gtube = corpus_file("t/data/spam/gtube.eml").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    reply = await mx_send(server, "a@remote.example", OTHER, gtube)
    assert reply.startswith("550 5.7.1 Message refused as spam (score ")
    assert float(reply.split("score ")[1].rstrip(")")) >= 1000.0  # GTUBE, plus trace rules
    assert await folder_messages(server, OTHER) == []
    assert await folder_messages(server, OTHER, "Junk") == []


async def test_spoofing_an_agency_domain_through_mx_is_refused(server: LiveServer) -> None:
    raw = (
        f"From: Giam doc <giamdoc@{DOMAIN}>\r\nTo: {OTHER}\r\nSubject: Chuyen tien\r\n\r\nGap.\r\n"
    )
    reply = await mx_send(server, "x@remote.example", OTHER, raw.encode())
    assert reply == (
        f"550 5.7.1 From claims {DOMAIN}, a domain of this server, "
        "but the message fails authentication (DMARC)"
    )


async def test_accepted_mail_carries_our_results_only(server: LiveServer) -> None:
    raw = (
        "Authentication-Results: mail.test.gov.vn; dkim=pass header.d=remote.example\r\n"
        "X-Spam-Status: No, score=-99\r\n"
        f"From: Doi tac <a@remote.example>\r\nTo: {OTHER}\r\nSubject: Hop tac\r\n\r\nXin chao.\r\n"
    ).encode()
    reply = await mx_send(server, "a@remote.example", OTHER, raw)
    assert reply.startswith("250 ")
    [stored] = await folder_messages(server, OTHER)
    header = stored.split(b"\r\n\r\n", 1)[0].decode()
    assert header.count("Authentication-Results:") == 1
    assert (
        "Authentication-Results: mail.test.gov.vn;\r\n\tspf=pass smtp.mailfrom=a@remote.example;"
        "\r\n\tdkim=none;\r\n\tarc=none;\r\n\tdmarc=pass (p=reject) header.from=remote.example"
    ) in header
    assert header.count("X-Spam-Status:") == 1 and "score=-99" not in header


async def test_submitted_mail_is_signed_with_both_keys(server: LiveServer) -> None:
    host, port = server.address("smtp_submissions")
    raw = f"From: {USER}\r\nTo: {OTHER}\r\nSubject: Ky so\r\n\r\nNoi dung.\r\n".encode()
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.login(USER, TEST_PASSWORD)
        errors, _ = await client.sendmail(USER, [OTHER], raw)
        assert errors == {}
    [stored] = await folder_messages(server, OTHER)

    def keys(session: Session) -> list[DkimKey]:
        domain = find_domain(session, DOMAIN)
        assert domain is not None and domain.id is not None
        return domain_keys(session, domain.id)

    rows = await server.running.instance.store.read(keys)
    table = {f"{k.selector}._domainkey.{DOMAIN}": {"TXT": [key_record(k)]} for k in rows}
    results = await verify_dkim(stored, StaticDns(table))
    assert sorted((r.result, r.algorithm) for r in results) == [
        ("pass", "ed25519-sha256"),
        ("pass", "rsa-sha256"),
    ]


async def test_mail_that_looks_local_is_refused_or_marked(server: LiveServer) -> None:
    """Issue 18: each way outside mail can pass for local mail, through the real MX."""
    body = f"To: {OTHER}\r\nSubject: Chuyen tien gap\r\n\r\nGap.\r\n"
    refused = {
        f"giamdoc@{DOMAIN}": "From: Doi tac <a@remote.example>\r\n",  # local MAIL FROM
        "a@remote.example": f"Sender: giamdoc@{DOMAIN}\r\nFrom: a@remote.example\r\n",
    }
    for mail_from, header in refused.items():
        reply = await mx_send(server, mail_from, OTHER, (header + body).encode())
        assert reply.startswith("550 5.7.1 ") and f"claims {DOMAIN}" in reply, reply
    no_from = await mx_send(server, "a@remote.example", OTHER, body.encode())
    assert no_from == "550 5.6.0 The message has no From field (RFC 5322 3.6)"
    marked = [
        f'From: "giamdoc@{DOMAIN}" <a@remote.example>\r\n',
        f"From: a@remote.example (giamdoc@{DOMAIN})\r\n",
        "From: =?utf-8?q?giamdoc=40sotest=2Egov=2Evn?= <a@remote.example>\r\n",
    ]
    for header in marked:
        assert (
            await mx_send(server, "a@remote.example", OTHER, (header + body).encode())
        ).startswith("250 ")
    stored = await folder_messages(server, OTHER)
    assert len(stored) == len(marked)
    for message in stored:
        head = message.split(b"\r\n\r\n", 1)[0].decode()
        assert f"X-Govmail-Warning: impersonation; field=from; resembles=giamdoc@{DOMAIN}" in head
        assert "Subject: =?utf-8?b?" in head and "?= Chuyen tien gap" in head
