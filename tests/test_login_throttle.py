"""Failed logins are counted per client address across IMAP and SMTP submission: failures on one
protocol block the address on both (password spraying), while the account itself stays usable
from elsewhere."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailserver.tls import client_ssl_context
from tests.support.harness import TEST_PASSWORD, LiveServer, start_live_server
from tests.support.harness import test_config as make_config

USER = "an@sotest.gov.vn"


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
    assert throttle.blocked("127.0.0.1") and not throttle.blocked("192.0.2.1")
