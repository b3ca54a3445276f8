"""Two govmail instances (two data directories, two domains, two sets of ports) that route to
each other through their static routing tables, over STARTTLS: mail crosses both ways, and an
unknown recipient at the far side comes back to the sender as a DSN."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.smtp.helpers import Arrivals, folder_messages, message, submit_tls
from tests.support.harness import LiveServer, start_live_server
from tests.support.harness import test_config as make_config

A_DOMAIN, B_DOMAIN = "soa.gov.vn", "sob.gov.vn"
AN, BINH = f"an@{A_DOMAIN}", f"binh@{B_DOMAIN}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def instance(
    data: Path, db_url: str, name: str, domain: str, mx_port: int, peer_domain: str, peer_port: int
) -> LiveServer:
    config = make_config(
        data,
        db_url,
        server={"hostname": f"mail.{domain}"},
        smtp={"mx_listen": f"127.0.0.1:{mx_port}"},
        queue={"retry_base_seconds": 1, "poll_seconds": 0.2},
        routing={
            "routes": [
                {"domain": peer_domain, "host": "127.0.0.1", "port": peer_port, "tls": "required"}
            ]
        },
    )
    server = await start_live_server(config)
    await server.add_domain(domain, name)
    return server


async def test_two_agencies_route_to_each_other_and_bounces_come_back(
    tmp_path: Path, db_url: str
) -> None:
    a_port, b_port = free_port(), free_port()
    a = await instance(tmp_path / "a", db_url, "soa", A_DOMAIN, a_port, B_DOMAIN, b_port)
    b = await instance(
        tmp_path / "b",
        f"sqlite:///{tmp_path / 'b.sqlite3'}",
        "sob",
        B_DOMAIN,
        b_port,
        A_DOMAIN,
        a_port,
    )
    try:
        at_a = Arrivals(a, await a.add_mailbox(AN))
        at_b = Arrivals(b, await b.add_mailbox(BINH))
        outgoing = message(AN, BINH, "Cong van so 12")
        await submit_tls(a, AN, AN, [BINH, f"nobody@{B_DOMAIN}"], outgoing)
        await at_b.reach(1)
        await at_a.reach(1)
        delivered = (await folder_messages(b, BINH))[0]
        assert b"Subject: Cong van so 12" in delivered
        # B's Received line records A's server, the TLS hop and the single recipient.
        assert f"by mail.{B_DOMAIN} (govmail) with ESMTPS".encode() in delivered
        assert f"for <{BINH}>;".encode() in delivered
        assert f"from mail.{A_DOMAIN} ([127.0.0.1])".encode() in delivered

        bounce = (await folder_messages(a, AN))[0]
        assert b"Subject: Undelivered Mail Returned to Sender" in bounce
        assert (
            f"Final-Recipient: rfc822; nobody@{B_DOMAIN}\r\nAction: failed\r\n".encode() in bounce
        )
        assert b"Status: 5.1.1\r\n" in bounce
        assert (
            b"Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected: user unknown" in bounce
        )
        assert f"Reporting-MTA: dns; mail.{A_DOMAIN}".encode() in bounce

        await submit_tls(b, BINH, BINH, [AN], message(BINH, AN, "Tra loi"))
        await at_a.reach(2)
        assert b"Subject: Tra loi" in (await folder_messages(a, AN))[1]
    finally:
        await a.running.stop(grace=1.0)
        await b.running.stop(grace=1.0)
