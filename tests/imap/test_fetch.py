"""FETCH over a real connection: RFC822 items and BINARY (RFC 3516) decoding.

Cases follow Dovecot's imaptest scripted groups (fetch-body, fetch-binary-mime-qp).
"""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer

PLAIN = (
    b"From: User2 <user2@domain.org>\r\n"
    b"Date: Sat, 24 Mar 2007 23:00:00 +0200\r\n"
    b"Subject: s22\r\n"
    b"\r\n"
    b"body22\r\n"
)


async def _selected_client(server: LiveServer, *messages: bytes) -> RawClient:
    await server.add_mailbox(USER)
    for raw in messages:
        await deliver(server, raw)
    client = await RawClient.connect(server)
    await client.login()
    _, status = await client.command("SELECT INBOX")
    assert status.startswith(b"OK"), status
    return client


async def test_fetch_rfc822_returns_the_message_and_sets_seen(
    protocol_server: LiveServer,
) -> None:
    client = await _selected_client(protocol_server, PLAIN)
    untagged, status = await client.command("FETCH 1 RFC822")
    assert status == b"OK FETCH completed"
    literal = b"{%d}\r\n" % len(PLAIN) + PLAIN
    assert untagged == [b"* 1 FETCH (RFC822 " + literal + b" FLAGS (\\Seen))"]
    await client.close()
