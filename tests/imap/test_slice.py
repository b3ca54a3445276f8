"""The first slice: an SMTP-delivered message read back byte for byte by imaplib."""

from __future__ import annotations

import asyncio

from tests.imap.helpers import SAMPLE, USER, deliver_smtp, imap_login
from tests.support.harness import LiveServer


async def test_imaplib_reads_smtp_delivery_byte_for_byte(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    await deliver_smtp(live_server, SAMPLE)

    def read_back() -> tuple[bytes, bytes, list[bytes]]:
        client = imap_login(live_server)
        try:
            typ, data = client.select("INBOX")
            assert typ == "OK" and data == [b"1"]
            typ, fetched = client.fetch("1", "(UID RFC822.SIZE BODY.PEEK[] FLAGS)")
            assert typ == "OK"
            head, body = fetched[0]  # type: ignore[misc]
            typ, flags = client.fetch("1", "(FLAGS)")
            return head, body, flags  # type: ignore[return-value]
        finally:
            client.logout()

    head, body, flags = await asyncio.to_thread(read_back)
    # The MX only adds trace fields in front of the bytes it was given (RFC 5321 4.4).
    assert body.endswith(SAMPLE)
    added = body[: -len(SAMPLE)]
    names = {
        line.split(b":", 1)[0] for line in added.split(b"\r\n") if line and not line[:1].isspace()
    }
    assert b"Received" in names
    assert names <= {
        b"Received",
        b"Authentication-Results",
        b"Return-Path",
        b"ARC-Seal",
        b"ARC-Message-Signature",
        b"ARC-Authentication-Results",
    }
    assert f"RFC822.SIZE {len(body)}".encode() in head
    assert b"UID 1 " in head
    # BODY.PEEK does not set \Seen; \Recent: this session was the first to see it.
    assert flags == [b"1 (FLAGS (\\Recent))"]
