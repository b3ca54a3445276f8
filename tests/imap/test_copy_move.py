"""COPY and MOVE over a real connection (RFC 6851), cases from Dovecot's imaptest (move)."""

from __future__ import annotations

import re

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer

MESSAGE = f"From: a@sotest.gov.vn\r\nTo: {USER}\r\nSubject: m\r\n\r\nx\r\n".encode()


async def test_move_into_the_selected_folder_expunges_then_announces(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, MESSAGE)
    client = await RawClient.connect(protocol_server)
    await client.login()
    await client.command("SELECT INBOX")
    untagged, status = await client.command("MOVE 1 INBOX")
    assert status == b"OK MOVE completed"
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 1 2\] Moved", untagged[0]), untagged
    # The old message goes first (its number is the client's), then the new one arrives.
    assert untagged[1:] == [b"* 1 EXPUNGE", b"* 1 EXISTS", b"* 1 RECENT"]
    untagged, _ = await client.command("FETCH 1 UID")
    assert untagged == [b"* 1 FETCH (UID 2)"]
    await client.close()
