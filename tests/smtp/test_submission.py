"""Submission over real sockets: STARTTLS before AUTH on 587, implicit TLS on 465, sender
rights, header completion, queueing, AUTH lockout and per-IP throttling, the outbound limit."""

from __future__ import annotations

import smtplib
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import Session, col, select

from storage.accounts import find_mailbox
from storage.models import AuditEvent, QueueEntry, QueueRecipient
from tests.smtp.helpers import (
    DOMAIN,
    Dialogue,
    add_alias,
    blocking,
    client_tls,
    folder_messages,
    grant_send_as,
    mailbox_state,
    message,
    sendmail,
    submit_tls,
)
from tests.support.harness import TEST_PASSWORD, LiveServer, serving, start_live_server
from tests.support.harness import test_config as make_config

USER = f"an@{DOMAIN}"
OTHER = f"binh@{DOMAIN}"
# Outside mail goes to a closed port: it stays queued, never leaves the machine.
NOWHERE: dict[str, object] = {
    "routes": [{"domain": ".example.org", "host": "127.0.0.1", "port": 9, "tls": "none"}]
}


def submit(address: tuple[str, int], user: str, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.starttls(context=client_tls())
        client.login(user, TEST_PASSWORD)
        client.sendmail(sender, rcpts, raw)


def _after_starttls(address: tuple[str, int]) -> tuple[bytes, tuple[int, bytes]]:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.starttls(context=client_tls())
        _, features = client.ehlo()
        return features, client.mail(USER)


async def submit_465(server: LiveServer, sender: str, rcpts: list[str], raw: bytes) -> str:
    return await submit_tls(server, USER, sender, rcpts, raw)


@pytest.fixture
async def server(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    async with serving(
        make_config(tmp_path / "data", db_url, routing=NOWHERE), USER, OTHER
    ) as live:
        yield live


async def test_587_requires_starttls_before_auth_and_mail(server: LiveServer) -> None:
    dialogue = await Dialogue.open(server.address("smtp_submission"), ehlo=False)
    lines = [line[4:] for line in await dialogue.send("EHLO laptop")]
    assert "STARTTLS" in lines and not any("AUTH" in line for line in lines)
    assert (
        await dialogue.last("AUTH PLAIN AGFuAHg=")
        == "530 5.7.0 Must issue a STARTTLS command first"
    )
    assert await dialogue.last("MAIL FROM:<an@sotest.gov.vn>") == (
        "530 5.7.0 Must issue a STARTTLS command first"
    )
    await dialogue.close()
    # After STARTTLS: AUTH offered, and MAIL still needs it.
    features, mail = await blocking(_after_starttls, server.address("smtp_submission"))
    assert b"AUTH LOGIN PLAIN" in features
    assert mail == (530, b"5.7.0 Authentication required")
    raw = message(USER, OTHER)
    await blocking(submit, server.address("smtp_submission"), USER, USER, [OTHER], raw)
    stored = await folder_messages(server, OTHER)
    assert len(stored) == 1
    assert b"with ESMTPSA id " in stored[0]


async def test_465_implicit_tls_with_plain_and_login(server: LiveServer) -> None:
    reply = await submit_465(server, USER, [OTHER], message(USER, OTHER, "qua 465"))
    assert reply.startswith("2.0.0 OK queued as ")
    host, port = server.address("smtp_submissions")
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.ehlo()
        assert (await client.auth_login(USER, TEST_PASSWORD)).code == 235
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.ehlo()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
            await client.auth_plain(USER, "wrong")
        assert refused.value.code == 535
    stored = await folder_messages(server, OTHER)
    assert [b"Subject: qua 465" in m for m in stored] == [True]


async def test_sender_rights_and_from_header(server: LiveServer) -> None:
    mailbox = await server.running.instance.store.read(lambda s: find_mailbox(s, USER))
    assert mailbox is not None and mailbox.id is not None
    await add_alias(server, f"vanthu@{DOMAIN}", [USER], owner=mailbox.id)
    await grant_send_as(server, mailbox.id, f"giamdoc@{DOMAIN}")
    for sender in (USER, f"vanthu@{DOMAIN}", f"giamdoc@{DOMAIN}"):
        await submit_465(server, sender, [OTHER], message(sender, OTHER, sender))

    host, port = server.address("smtp_submissions")
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.login(USER, TEST_PASSWORD)
        for sender in (OTHER, "", "an@example.org"):
            response = await client.execute_command(f"MAIL FROM:<{sender}>".encode())
            assert (response.code, response.message) == (
                553,
                "5.7.1 Sender address not owned by the authenticated user",
            )
        # The envelope is ours but the From header is someone else's.
        await client.mail(USER)
        await client.rcpt(OTHER)
        with pytest.raises(aiosmtplib.SMTPDataError) as forged:
            await client.data(message(f"Giam doc <{OTHER}>", OTHER))
        assert (forged.value.code, forged.value.message) == (
            550,
            "5.7.1 From address not owned by the authenticated user",
        )
        await client.mail(USER)
        await client.rcpt(OTHER)
        with pytest.raises(aiosmtplib.SMTPDataError) as no_from:
            await client.data(b"Subject: no from\r\n\r\nx\r\n")
        assert no_from.value.code == 550
    stored = await folder_messages(server, OTHER)
    assert len(stored) == 3


async def test_sender_resent_and_display_names_must_be_the_users(server: LiveServer) -> None:
    """Issue 18: Sender/Resent-From/Resent-Sender must be owned; no display name or comment may
    show another local address. The user's own addresses may be shown."""
    mailbox = await server.running.instance.store.read(lambda s: find_mailbox(s, USER))
    assert mailbox is not None and mailbox.id is not None
    await add_alias(server, f"vanthu@{DOMAIN}", [USER], owner=mailbox.id)
    refused = {
        f"Sender: {OTHER}\r\n": "5.7.1 Sender address not owned by the authenticated user",
        f"Resent-From: {OTHER}\r\n": (
            "5.7.1 Resent-From address not owned by the authenticated user"
        ),
        "Resent-Sender: x@example.org\r\n": (
            "5.7.1 Resent-Sender address not owned by the authenticated user"
        ),
    }
    shown = {
        f'"{OTHER}" <{USER}>': (
            f"5.7.1 The display name in From shows {OTHER}, another local address"
        ),
        f"{USER} (giamdoc@{DOMAIN})": (
            f"5.7.1 The display name in From shows giamdoc@{DOMAIN}, another local address"
        ),
        f"=?utf-8?q?{OTHER.replace('@', '=40')}?= <{USER}>": (
            f"5.7.1 The display name in From shows {OTHER}, another local address"
        ),
    }
    host, port = server.address("smtp_submissions")
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.login(USER, TEST_PASSWORD)
        cases = [(field + message(USER, OTHER).decode(), reply) for field, reply in refused.items()]
        cases += [(message(sender, OTHER).decode(), reply) for sender, reply in shown.items()]
        for raw, reply in cases:
            await client.mail(USER)
            await client.rcpt(OTHER)
            with pytest.raises(aiosmtplib.SMTPDataError) as refusal:
                await client.data(raw.encode())
            assert (refusal.value.code, refusal.value.message) == (550, reply)
    own_names = [f'"vanthu@{DOMAIN}" <{USER}>', f'"{USER}" <{USER}>']
    for sender in own_names:
        await submit_465(server, USER, [OTHER], message(sender, OTHER, "own"))
    await submit_465(
        server, USER, [OTHER], f"Sender: vanthu@{DOMAIN}\r\n".encode() + message(USER, OTHER)
    )
    assert len(await folder_messages(server, OTHER)) == len(own_names) + 1


async def test_date_message_id_and_received_are_added(server: LiveServer) -> None:
    await submit_465(server, USER, [OTHER], message(USER, OTHER, "bare"))
    await submit_465(
        server,
        USER,
        [OTHER],
        message(
            USER, OTHER, "kept", "Message-ID: <mine@x>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0700\r\n"
        ),
    )
    bare, kept = await folder_messages(server, OTHER)
    head = bare.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"Received: from ") == 1
    assert b"\r\nDate: " in head
    assert b"\r\nMessage-ID: <" in head and b"@mail.test.gov.vn>" in head
    kept_head = kept.split(b"\r\n\r\n", 1)[0]
    assert kept_head.count(b"Message-ID:") == 1 and b"Message-ID: <mine@x>" in kept_head
    assert kept_head.count(b"\r\nDate:") == 1


async def test_remote_and_local_recipients_in_one_durable_commit(server: LiveServer) -> None:
    await submit_465(
        server,
        USER,
        [OTHER, "someone@example.org"],
        message(USER, "someone@example.org"),
    )
    assert len(await folder_messages(server, OTHER)) == 1

    def queued(session: Session) -> list[tuple[str, str | None, str]]:
        rows = session.exec(
            select(QueueEntry.sender, QueueEntry.authenticated_user, QueueRecipient.address).join(
                QueueRecipient, col(QueueRecipient.entry_id) == col(QueueEntry.id)
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    assert await server.running.instance.store.read(queued) == [(USER, USER, "someone@example.org")]


async def test_twelve_failures_lock_the_account_which_still_receives(server: LiveServer) -> None:
    host, port = server.address("smtp_submissions")
    for _ in range(12):
        async with aiosmtplib.SMTP(
            hostname=host, port=port, use_tls=True, tls_context=client_tls()
        ) as client:
            await client.ehlo()
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await client.auth_plain(USER, "not-the-password")
    assert await mailbox_state(server, USER) == "locked"
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.login(USER, TEST_PASSWORD)
    await blocking(
        sendmail,
        server.address("smtp_mx"),
        "x@example.org",
        [USER],
        b"From: x@example.org\r\nS: x\r\n\r\nx\r\n",
    )
    notice, received = await folder_messages(server, USER)  # the lock notice, then the mail
    assert b"Auto-Submitted: auto-generated" in notice
    assert received.endswith(b"S: x\r\n\r\nx\r\n")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_password_spraying_from_one_address_is_throttled(tmp_path: Path, db_url: str) -> None:
    config = make_config(tmp_path / "d", db_url, auth={"max_failures_per_ip": 3})
    live = await start_live_server(config)
    try:
        await live.add_domain()
        for n in range(4):
            await live.add_mailbox(f"u{n}@{DOMAIN}")
        host, port = live.address("smtp_submissions")
        for n in range(3):  # one guess per account: no account reaches its own limit
            async with aiosmtplib.SMTP(
                hostname=host, port=port, use_tls=True, tls_context=client_tls()
            ) as client:
                await client.ehlo()
                with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
                    await client.auth_plain(f"u{n}@{DOMAIN}", "Password1!")
                assert refused.value.code == 535
        async with aiosmtplib.SMTP(
            hostname=host, port=port, use_tls=True, tls_context=client_tls()
        ) as client:
            await client.ehlo()
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as throttled:
                await client.auth_plain(f"u3@{DOMAIN}", TEST_PASSWORD)  # even the right one
            assert (throttled.value.code, throttled.value.message) == (
                454,
                "4.7.0 Too many failed logins from your address, try again later",
            )
        assert await mailbox_state(live, f"u3@{DOMAIN}") == "active"
    finally:
        await live.running.stop(grace=1.0)


async def test_outbound_limit_counts_recipients_not_messages(tmp_path: Path, db_url: str) -> None:
    config = make_config(
        tmp_path / "d", db_url, smtp={"outbound_limit_recipients": 5}, routing=NOWHERE
    )
    live = await start_live_server(config)
    try:
        await live.add_domain()
        await live.add_mailbox(USER)
        outside = [f"r{n}@example.org" for n in range(5)]
        # Five outside recipients in one message: at the limit, not over it.
        await submit_465(live, USER, outside, message(USER, ", ".join(outside)))
        assert await mailbox_state(live, USER) == "active"
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await submit_465(live, USER, ["r9@example.org"], message(USER, "r9@example.org"))
        assert refused.value.code == 550
        assert await mailbox_state(live, USER) == "locked"
    finally:
        await live.running.stop(grace=1.0)


async def test_outbound_limit_locks_the_account_and_alerts(tmp_path: Path, db_url: str) -> None:
    config = make_config(
        tmp_path / "d",
        db_url,
        smtp={"outbound_limit_recipients": 2},
        routing=NOWHERE,
    )
    live = await start_live_server(config)
    try:
        await live.add_domain()
        await live.add_mailbox(USER)
        await live.add_mailbox(f"postmaster@{DOMAIN}")
        for n in range(2):
            await submit_465(live, USER, [f"r{n}@example.org"], message(USER, "r@example.org"))
        # Local mail does not count.
        await submit_465(live, USER, [f"postmaster@{DOMAIN}"], message(USER, "pm", "local"))
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await submit_465(live, USER, ["r9@example.org"], message(USER, "r9@example.org"))
        assert (refused.value.code, refused.value.message) == (
            550,
            "5.7.1 Too many recipients in outside domains: account locked, contact the admins",
        )
        assert await mailbox_state(live, USER) == "locked"
        alerts = await folder_messages(live, f"postmaster@{DOMAIN}")
        assert len(alerts) == 2
        assert b"Subject: [govmail] Account locked: an@sotest.gov.vn" in alerts[1]

        def audited(session: Session) -> list[tuple[str, str]]:
            rows = session.exec(
                select(AuditEvent.actor, AuditEvent.action).where(
                    AuditEvent.action == "mailbox.state"
                )
            )
            return list(rows)

        assert await live.running.instance.store.read(audited) == [
            ("system:outbound-limit", "mailbox.state")
        ]
        queued = await live.running.instance.store.read(
            lambda s: len(s.exec(select(QueueEntry.id)).all())
        )
        assert queued == 2  # the refused message was not queued
    finally:
        await live.running.stop(grace=1.0)
