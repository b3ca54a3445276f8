"""First contact over IMAP: STARTTLS that never hangs, no plaintext injected into TLS, and no
password accepted in cleartext where ``imap.allow_plaintext_auth`` forbids it (issues 11, 13)."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailserver.imap.commands.auth import PLAINTEXT_REFUSED
from mailserver.imap.session import plaintext_auth_permitted
from tests.imap.helpers import USER, RawClient
from tests.support import harness
from tests.support.harness import TEST_PASSWORD, LiveServer, start_live_server

# Consecutive connections of the reliability test; before the fix about one in nine hung.
STARTTLS_CONNECTIONS = 200
# Per-connection timeout: a hang shows as a timeout, a healthy upgrade takes milliseconds.
CLIENT_TIMEOUT = 5.0


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test instance's certificate is self-signed
    return context


@pytest.fixture
async def tls_only_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """``allow_plaintext_auth = "never"``: loopback counts as untrusted, as the network would."""
    config = harness.test_config(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        imap={"allow_plaintext_auth": "never"},
    )
    server = await start_live_server(config)
    await server.add_domain()
    await server.add_mailbox(USER)
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)


# ---------------------------------------------------------------- STARTTLS reliability


async def test_hundreds_of_consecutive_starttls_upgrades_never_hang(
    protocol_server: LiveServer,
) -> None:
    host, port = protocol_server.address("imap")

    def with_imaplib() -> list[str]:
        with imaplib.IMAP4(host, port, timeout=CLIENT_TIMEOUT) as client:
            client.starttls(_insecure_context())
            _, data = client.capability()
            return data[0].decode().split()

    def with_imapclient() -> list[str]:
        with IMAPClient(host, port, ssl=False, timeout=CLIENT_TIMEOUT) as client:
            client.starttls(_insecure_context())
            return [cap.decode() for cap in client.capabilities()]

    def run() -> list[str]:
        failures: list[str] = []
        for index in range(STARTTLS_CONNECTIONS):
            try:
                capabilities = with_imaplib() if index % 2 == 0 else with_imapclient()
            except Exception as exc:
                failures.append(f"{index}: {exc!r}")
                continue
            if "STARTTLS" in capabilities or "AUTH=PLAIN" not in capabilities:
                failures.append(f"{index}: not upgraded: {capabilities}")
        return failures

    assert await asyncio.to_thread(run) == []


async def test_plaintext_pipelined_after_starttls_is_never_run_in_the_tls_session(
    protocol_server: LiveServer,
) -> None:
    """CVE-2011-0411 style: a man in the middle appends commands behind STARTTLS."""
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    injected = f'a2 LOGIN "{USER}" "{TEST_PASSWORD}"\r\na3 SELECT INBOX\r\n'.encode()
    await client.send(b"a1 STARTTLS\r\n" + injected)
    assert await client.line() == b"a1 OK Begin TLS negotiation now"
    await client.writer.start_tls(_insecure_context())
    untagged, status = await client.command("NOOP")
    assert (untagged, status) == ([], b"OK NOOP completed")  # no answer to a2 or a3
    _, status = await client.command("SELECT INBOX")
    assert status == b"BAD SELECT is not allowed in this state"  # the injected LOGIN never ran
    untagged, _ = await client.command("CAPABILITY")
    assert b"STARTTLS" not in untagged[0] and b"AUTH=PLAIN" in untagged[0]
    await client.login()
    await client.close()


# ---------------------------------------------------------------- cleartext authentication


def test_plaintext_auth_policy() -> None:
    assert plaintext_auth_permitted("loopback", "127.0.0.1")
    assert plaintext_auth_permitted("loopback", "127.3.4.5")
    assert plaintext_auth_permitted("loopback", "::1")
    assert plaintext_auth_permitted("loopback", "::ffff:127.0.0.1")
    assert not plaintext_auth_permitted("loopback", "10.1.2.3")
    assert not plaintext_auth_permitted("loopback", "::ffff:10.1.2.3")
    assert not plaintext_auth_permitted("loopback", "unknown")
    assert plaintext_auth_permitted("always", "10.1.2.3")
    assert not plaintext_auth_permitted("never", "127.0.0.1")


async def test_cleartext_login_is_refused_until_starttls(tls_only_server: LiveServer) -> None:
    host, port = tls_only_server.address("imap")

    def run() -> dict[str, object]:
        out: dict[str, object] = {}
        with imaplib.IMAP4(host, port, timeout=CLIENT_TIMEOUT) as client:
            out["before"] = set(client.capabilities)
            for attempt in ("login", "authenticate"):
                try:
                    if attempt == "login":
                        client.login(USER, TEST_PASSWORD)
                    else:
                        client.authenticate(
                            "PLAIN", lambda _: f"\0{USER}\0{TEST_PASSWORD}".encode()
                        )
                except imaplib.IMAP4.error as exc:
                    out[attempt] = str(exc)
            client.starttls(_insecure_context())
            out["after"] = set(client.capabilities)
            out["login_after"] = client.login(USER, TEST_PASSWORD)[0]
        with IMAPClient(host, port, ssl=False, timeout=CLIENT_TIMEOUT) as other:
            try:
                other.login(USER, TEST_PASSWORD)
            except LoginError as exc:
                out["imapclient"] = str(exc)
        return out

    out = await asyncio.to_thread(run)
    before = out["before"]
    assert isinstance(before, set)
    assert {"STARTTLS", "LOGINDISABLED"} <= before
    assert not {cap for cap in before if cap.startswith("AUTH=")}
    refused = f"[PRIVACYREQUIRED] {PLAINTEXT_REFUSED}"
    assert refused in str(out["login"])
    assert refused in str(out["authenticate"])
    assert refused in str(out["imapclient"])
    assert out["after"] == {"IMAP4REV1", "IMAP4REV2", "LITERAL+", "SASL-IR", "ID", "ENABLE"} | {
        "IDLE",
        "AUTH=PLAIN",
    }
    assert out["login_after"] == "OK"


async def test_cleartext_refusals_ask_for_no_password_and_do_not_count_as_failures(
    tls_only_server: LiveServer,
) -> None:
    client = await RawClient.connect(tls_only_server)
    refused = f"NO [PRIVACYREQUIRED] {PLAINTEXT_REFUSED}".encode()
    # Without an initial response: refused at once, before any "+" asks for the password.
    for _ in range(4):  # more than the 3 failures that close a connection
        _, status = await client.command("AUTHENTICATE PLAIN")
        assert status == refused
        _, status = await client.command(f'LOGIN "{USER}" "{TEST_PASSWORD}"')
        assert status == refused
    plain = base64.b64encode(f"\0{USER}\0{TEST_PASSWORD}".encode())
    _, status = await client.command(b"AUTHENTICATE PLAIN " + plain)
    assert status == refused
    await client.close()


async def test_implicit_tls_accepts_login_when_cleartext_is_refused(
    tls_only_server: LiveServer,
) -> None:
    host, port = tls_only_server.address("imaps")

    def run() -> tuple[set[str], str]:
        with imaplib.IMAP4_SSL(
            host, port, ssl_context=_insecure_context(), timeout=CLIENT_TIMEOUT
        ) as client:
            capabilities = set(client.capabilities)
            return capabilities, client.login(USER, TEST_PASSWORD)[0]

    capabilities, status = await asyncio.to_thread(run)
    assert "AUTH=PLAIN" in capabilities and "LOGINDISABLED" not in capabilities
    assert status == "OK"


async def test_loopback_may_log_in_in_cleartext_by_default(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    client = await RawClient.connect(protocol_server)
    untagged, _ = await client.command("CAPABILITY")
    assert b"AUTH=PLAIN" in untagged[0] and b"LOGINDISABLED" not in untagged[0]
    await client.login()
    await client.close()
