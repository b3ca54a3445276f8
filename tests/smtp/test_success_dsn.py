"""Success reports (RFC 3461 NOTIFY=SUCCESS, RFC 3464) over real sockets: ``delivered`` for a
local mailbox, ``expanded`` for a group (whose members do not inherit SUCCESS), none for a null
sender, and a report to an outside sender that leaves through the queue with MAIL FROM:<>."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import select

from storage.models import QueueEntry, QueueRecipient
from tests.smtp.helpers import (
    DOMAIN,
    Arrivals,
    add_group,
    client_tls,
    folder_messages,
    message,
    mime_parts,
    text_payload,
)
from tests.smtp.scripted_peer import ScriptedPeer
from tests.support.harness import TEST_PASSWORD, LiveServer, serving
from tests.support.harness import test_config as make_config

AN, BINH = f"an@{DOMAIN}", f"binh@{DOMAIN}"


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    """The outside world (remote.example): offers 8BITMIME, no DSN."""
    remote = await ScriptedPeer(["8BITMIME"]).start()
    try:
        yield remote
    finally:
        await remote.stop()


@pytest.fixture
async def server(tmp_path: Path, db_url: str, peer: ScriptedPeer) -> AsyncIterator[LiveServer]:
    route = {"domain": "remote.example", "host": "127.0.0.1", "port": peer.port, "tls": "none"}
    # One queue worker: entries conclude in the order they were queued.
    config = make_config(
        tmp_path / "data", db_url, routing={"routes": [route]}, queue={"workers": 1}
    )
    async with serving(config, AN, BINH) as live:
        yield live


async def submit(
    server: LiveServer,
    rcpts: dict[str, list[str]],
    raw: bytes,
    mail_options: list[str],
) -> None:
    """Submit as AN over 465 with per-recipient RCPT parameters; asserts every 250."""
    host, port = server.address("smtp_submissions")
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.login(AN, TEST_PASSWORD)
        assert (await client.mail(AN, options=mail_options)).code == 250
        for address, options in rcpts.items():
            assert (await client.rcpt(address, options=options)).code == 250
        assert (await client.data(raw)).code == 250


def parsed(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def report_blocks(report: Message) -> list[Message]:
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = mime_parts(report)
    assert len(parts) == 3
    assert parts[1].get_content_type() == "message/delivery-status"
    return mime_parts(parts[1])


async def test_local_delivery_with_notify_success_reports_delivered(server: LiveServer) -> None:
    original = message(AN, BINH, "Giay moi hop")
    await submit(
        server,
        {BINH: ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{BINH}"]},
        original,
        ["RET=HDRS", "ENVID=gm-2026-14"],
    )
    # Written in the commit that filed the copy: there as soon as DATA got its 250.
    assert b"Subject: Giay moi hop" in (await folder_messages(server, BINH))[0]
    (raw,) = await folder_messages(server, AN)
    report = parsed(raw)
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mail.test.gov.vn>"
    assert report["To"] == f"<{AN}>"
    assert report["Subject"] == "Successful Mail Delivery Report"
    assert report["Auto-Submitted"] == "auto-replied"
    envelope, recipient = report_blocks(report)
    assert envelope["Reporting-MTA"] == "dns; mail.test.gov.vn"
    assert envelope["Original-Envelope-Id"] == "gm-2026-14"
    assert recipient["Original-Recipient"] == f"rfc822; {BINH}"
    assert recipient["Final-Recipient"] == f"rfc822; {BINH}"
    assert (recipient["Action"], recipient["Status"]) == ("delivered", "2.0.0")
    assert recipient["Diagnostic-Code"] is None and recipient["Remote-MTA"] is None
    returned = mime_parts(report)[2]
    assert returned.get_content_type() == "text/rfc822-headers"  # RET=HDRS
    assert "Subject: Giay moi hop" in text_payload(returned)
    assert "Noi dung thu." not in text_payload(returned)


async def test_ret_full_returns_the_message_and_only_success_recipients_are_listed(
    server: LiveServer,
) -> None:
    await server.add_mailbox(f"chi@{DOMAIN}")
    original = message(AN, BINH, "Bao cao thang")
    await submit(
        server,
        {BINH: ["NOTIFY=SUCCESS"], f"chi@{DOMAIN}": ["NOTIFY=FAILURE"]},
        original,
        ["RET=FULL"],
    )
    (raw,) = await folder_messages(server, AN)
    report = parsed(raw)
    envelope, recipient, *others = report_blocks(report)
    assert others == [] and envelope["Original-Envelope-Id"] is None
    assert (recipient["Final-Recipient"], recipient["Action"]) == (f"rfc822; {BINH}", "delivered")
    assert recipient["Original-Recipient"] is None  # no ORCPT was given
    returned = mime_parts(report)[2]
    assert returned.get_content_type() == "message/rfc822"
    inner = mime_parts(returned)[0]
    assert inner["Subject"] == "Bao cao thang"
    assert text_payload(inner) == "Noi dung thu.\r\n"


async def test_group_reports_expanded_and_members_do_not_inherit_success(
    server: LiveServer, peer: ScriptedPeer
) -> None:
    members = [BINH, "ext@remote.example"]
    await add_group(server, f"phong@{DOMAIN}", members, "anyone")
    await submit(
        server,
        {f"phong@{DOMAIN}": ["NOTIFY=SUCCESS,FAILURE"]},
        message(AN, f"phong@{DOMAIN}", "Thong bao"),
        [],
    )
    (raw,) = await folder_messages(server, AN)
    _, recipient = report_blocks(parsed(raw))
    assert (recipient["Final-Recipient"], recipient["Action"], recipient["Status"]) == (
        f"rfc822; phong@{DOMAIN}",
        "expanded",
        "2.0.0",
    )
    # The outside member was queued with NOTIFY minus SUCCESS and the group as ORCPT.
    store = server.running.instance.store
    queued = await store.read(
        lambda s: list(s.exec(select(QueueRecipient.dsn_notify, QueueRecipient.dsn_orcpt)))
    )
    assert queued == [("FAILURE", f"rfc822;phong@{DOMAIN}")]
    # A later message to one outside recipient does get 'relayed' (the peer has no DSN); by
    # the time it arrives the group's entry has concluded (one worker, in order).
    arrived = await Arrivals.watch(server, AN)
    await submit(
        server, {"ext2@remote.example": ["NOTIFY=SUCCESS"]}, message(AN, "ext2@remote.example"), []
    )
    await arrived.reach(1)
    assert [r.rcpts for r in peer.received] == [
        ["RCPT TO:<ext@remote.example>"],
        ["RCPT TO:<ext2@remote.example>"],
    ]
    reports = [report_blocks(parsed(raw))[1] for raw in await folder_messages(server, AN)]
    assert [(r["Final-Recipient"], r["Action"]) for r in reports] == [
        (f"rfc822; phong@{DOMAIN}", "expanded"),
        ("rfc822; ext2@remote.example", "relayed"),
    ]  # and no 'relayed' for the group's outside member


async def test_null_sender_and_no_notify_get_no_report(server: LiveServer) -> None:
    host, port = server.address("smtp_mx")
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as client:
        assert (await client.mail("")).code == 250
        assert (await client.rcpt(AN, options=["NOTIFY=SUCCESS"])).code == 250
        assert (await client.data(message("MAILER-DAEMON@remote.example", AN, "DSN"))).code == 250
    await submit(server, {BINH: []}, message(AN, BINH, "Khong can bao"), [])
    assert len(await folder_messages(server, AN)) == 1  # the null-sender message itself
    assert len(await folder_messages(server, BINH)) == 1
    entries = await server.running.instance.store.read(
        lambda s: list(s.exec(select(QueueEntry.id)))
    )
    assert entries == []


async def test_report_to_an_outside_sender_leaves_with_a_null_reverse_path(
    server: LiveServer, peer: ScriptedPeer
) -> None:
    host, port = server.address("smtp_mx")
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as client:
        assert (await client.mail("x@remote.example", options=["ENVID=out-7"])).code == 250
        assert (await client.rcpt(AN, options=["NOTIFY=SUCCESS"])).code == 250
        assert (await client.data(message("x@remote.example", AN, "Hoi dap"))).code == 250
    await peer.wait_for(1)
    (sent,) = peer.received
    assert (sent.mail, sent.rcpts) == ("MAIL FROM:<>", ["RCPT TO:<x@remote.example>"])
    envelope, recipient = report_blocks(parsed(sent.data))
    assert envelope["Original-Envelope-Id"] == "out-7"
    assert (recipient["Final-Recipient"], recipient["Action"]) == (f"rfc822; {AN}", "delivered")


async def test_smtputf8_submission_to_a_server_without_it_bounces_with_5_6_7(
    server: LiveServer, peer: ScriptedPeer
) -> None:
    """The SMTPUTF8 of MAIL travels with the queue entry; the peer lacks SMTPUTF8."""
    arrived = await Arrivals.watch(server, AN)
    raw = f"From: {AN}\r\nTo: x@remote.example\r\nSubject: Thẩm định hồ sơ\r\n\r\nx\r\n"
    await submit(server, {"x@remote.example": []}, raw.encode(), ["SMTPUTF8", "BODY=8BITMIME"])
    flags = await server.running.instance.store.read(
        lambda s: list(s.exec(select(QueueEntry.smtputf8)))
    )
    assert flags == [True]
    await arrived.reach(1)
    assert peer.received == []
    (bounce,) = await folder_messages(server, AN)
    _, recipient = report_blocks(parsed(bounce))
    assert (recipient["Action"], recipient["Status"]) == ("failed", "5.6.7")
    assert recipient["Diagnostic-Code"] == (
        "smtp; 553 5.6.7 Remote server does not support SMTPUTF8"
    )
