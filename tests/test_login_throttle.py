"""Failed logins are counted per client address across IMAP and SMTP submission: failures on one
protocol block the address on both (password spraying), while the account itself stays usable
from elsewhere."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from mailserver.auth_throttle import LoginThrottle
from mailserver.tls import client_ssl_context
from storage.models import LoginIpFailure
from storage.store import MailStore
from tests.support.harness import TEST_PASSWORD, LiveServer, start_live_server
from tests.support.harness import test_config as make_config

USER = "an@sotest.gov.vn"
NEW_PASSWORD = "Doi-mat-khau#2026"


@pytest.fixture
async def strict_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    config = make_config(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        auth={"max_failures_per_ip": 3, "ip_failure_window_seconds": 600.0},
    )
    server = await start_live_server(config)
    await server.add_domain()
    await server.add_mailbox(USER)
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)


async def imap_login(server: LiveServer, password: str) -> str:
    host, port = server.address("imap")

    def attempt() -> str:
        client = imaplib.IMAP4(host, port)
        try:
            client.login(USER, password)
            return "OK"
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.shutdown()

    return await asyncio.to_thread(attempt)


async def smtp_login(server: LiveServer, password: str) -> int:
    host, port = server.address("smtp_submissions")

    def attempt() -> int:
        with smtplib.SMTP_SSL(host, port, context=client_ssl_context(False, None)) as client:
            client.ehlo("client.test")
            # One AUTH PLAIN: smtplib's login() would retry with LOGIN, a second failure.
            client.user, client.password = USER, password
            try:
                return client.auth("PLAIN", client.auth_plain)[0]
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code

    return await asyncio.to_thread(attempt)


async def test_failures_on_either_protocol_block_the_address_on_both(
    strict_server: LiveServer,
) -> None:
    assert await imap_login(strict_server, TEST_PASSWORD) == "OK"
    assert await smtp_login(strict_server, "wrong-1") == 535
    assert await smtp_login(strict_server, "wrong-2") == 535
    assert "AUTHENTICATIONFAILED" in await imap_login(strict_server, "wrong-3")
    # Three failures from 127.0.0.1: even the right password is refused, over both protocols.
    refused = await imap_login(strict_server, TEST_PASSWORD)
    assert "[UNAVAILABLE]" in refused
    assert await smtp_login(strict_server, TEST_PASSWORD) == 454
    # The account is not locked (that takes 12 consecutive failures of its own).
    throttle = strict_server.running.instance.login_throttle
    assert await throttle.blocked("127.0.0.1") and not await throttle.blocked("192.0.2.1")


async def change_password(server: LiveServer, current: str) -> httpx.Response:
    host, port = server.address("admin_api")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        return await client.post(
            "/v1/password-change",
            json={"address": USER, "current_password": current, "new_password": NEW_PASSWORD},
        )


async def test_the_password_change_page_shares_the_address_throttle(
    strict_server: LiveServer,
) -> None:
    assert (await change_password(strict_server, "wrong-1")).status_code == 401
    assert (await change_password(strict_server, "wrong-2")).status_code == 401
    assert await smtp_login(strict_server, "wrong-3") == 535
    # Three failures from 127.0.0.1 over the page and SMTP: the page refuses even the right
    # password now, and so does IMAP.
    refused = await change_password(strict_server, TEST_PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert "[UNAVAILABLE]" in await imap_login(strict_server, TEST_PASSWORD)


async def test_the_address_throttle_outlives_a_restart(strict_server: LiveServer) -> None:
    for attempt in range(3):
        assert await smtp_login(strict_server, f"wrong-{attempt}") == 535
    await strict_server.running.stop(grace=1.0)
    restarted = await start_live_server(strict_server.config)
    try:
        assert "[UNAVAILABLE]" in await imap_login(restarted, TEST_PASSWORD)
    finally:
        await restarted.running.stop(grace=1.0)


async def test_failures_are_shared_through_the_database_and_leave_with_the_window(
    mail_store: MailStore,
) -> None:
    now = [1_000_000.0]
    # Two throttles on one database: two worker processes, or two nodes.
    here, there = (LoginThrottle(mail_store, 3, 600.0, clock=lambda: now[0]) for _ in range(2))
    await here.note_failure("192.0.2.7")
    await there.note_failure("192.0.2.7")
    assert not await here.blocked("192.0.2.7")
    await here.note_failure("192.0.2.7")
    assert await there.blocked("192.0.2.7") and await here.blocked("192.0.2.7")
    assert not await there.blocked("192.0.2.8")
    now[0] += 599.0
    assert await there.blocked("192.0.2.7")
    now[0] += 2.0  # the window of the first failure is over: a fresh count
    assert not await there.blocked("192.0.2.7")
    await there.note_failure("192.0.2.7")
    assert not await here.blocked("192.0.2.7")


async def test_rows_of_windows_that_are_over_are_pruned(mail_store: MailStore) -> None:
    now = [1_000_000.0]
    throttle = LoginThrottle(mail_store, 3, 600.0, clock=lambda: now[0], prune_every=2)

    def ips(session: Session) -> list[str]:
        return sorted(row.ip for row in session.exec(select(LoginIpFailure)))

    await throttle.note_failure("192.0.2.1")
    now[0] += 601.0
    await throttle.note_failure("192.0.2.2")  # the second failure: prunes 192.0.2.1
    assert await mail_store.read(ips) == ["192.0.2.2"]
