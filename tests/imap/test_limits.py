"""Hostile clients: autologout, connections per IP, failed logins and lockout, quota."""

from __future__ import annotations

import asyncio

from tests.imap.helpers import USER, RawClient
from tests.support.harness import TEST_PASSWORD, LiveServer


async def test_autologout_closes_a_silent_connection(tight_server: LiveServer) -> None:
    client = await RawClient.connect(tight_server)
    line = await asyncio.wait_for(client.line(), 5)
    assert line == b"* BYE Autologout; idle for too long"
    assert await client.reader.read() == b""
    await client.close()


async def test_connections_per_ip_are_limited(tight_server: LiveServer) -> None:
    first = await RawClient.connect(tight_server)
    second = await RawClient.connect(tight_server)
    host, port = tight_server.address("imap")
    reader, writer = await asyncio.open_connection(host, port)
    refused = await asyncio.wait_for(reader.readline(), 5)
    assert refused == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    writer.close()
    await first.close()
    await second.close()


async def test_failed_logins_close_the_connection_and_lock_the_account(
    tight_server: LiveServer,
) -> None:
    await tight_server.add_mailbox(USER)
    client = await RawClient.connect(tight_server)
    for _ in range(2):
        _, status = await client.command(f'LOGIN "{USER}" "wrong"')
        assert status == b"NO [AUTHENTICATIONFAILED] Invalid credentials"
    await client.send(f'x LOGIN "{USER}" "wrong"\r\n'.encode())
    assert await client.line() == b"* BYE Too many failed logins"
    await client.close()
    client = await RawClient.connect(tight_server)
    _, status = await client.command(f'LOGIN "{USER}" "wrong"')
    assert status == b"NO [AUTHENTICATIONFAILED] Invalid credentials"
    # The fourth consecutive failure locked the account: the right password no longer works.
    _, status = await client.command(f'LOGIN "{USER}" "{TEST_PASSWORD}"')
    assert status == b"NO [AUTHENTICATIONFAILED] Invalid credentials"
    await client.close()


async def test_append_over_quota_is_a_clean_no(tight_server: LiveServer) -> None:
    await tight_server.add_mailbox(USER, quota_bytes=1000)
    client = await RawClient.connect(tight_server)
    await client.login()
    raw = b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n"
    await client.send(b"a1 APPEND INBOX {%d}\r\n" % len(raw))
    assert (await client.line()).startswith(b"+ ")
    await client.send(raw + b"\r\n")
    _, status = await client.until(b"a1")
    assert status == b"NO [OVERQUOTA] mailbox is over quota"
    untagged, _ = await client.command("STATUS INBOX (MESSAGES)")
    assert untagged == [b"* STATUS INBOX (MESSAGES 0)"]
    # A line over the limit is refused and the session goes on.
    _, status = await client.command("NOOP " + "x" * 2000)
    assert status.startswith(b"BAD [TOOBIG]")
    _, status = await client.command("NOOP")
    assert status == b"OK NOOP completed"
    await client.close()


async def test_big_literals_need_authentication(tight_server: LiveServer) -> None:
    await tight_server.add_mailbox(USER)
    client = await RawClient.connect(tight_server)
    await client.send(b"a1 APPEND INBOX {9000}\r\n")
    assert await client.line() == b"a1 NO [TOOBIG] Literal too big (limit 8192 octets)"
    # A non-synchronising one is read and thrown away, then the session goes on.
    await client.send(b"a2 APPEND INBOX {9000+}\r\n" + b"x" * 9000 + b"\r\n")
    assert await client.line() == b"a2 BAD [TOOBIG] Literal too big (limit 8192 octets)"
    await client.login()
    raw = b"Subject: ok\r\n\r\n" + b"y" * 9000 + b"\r\n"
    await client.send(b"a3 APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    _, status = await client.until(b"a3")
    assert status.startswith(b"OK [APPENDUID ")
    await client.close()
