"""Replies written together (GovmailSMTP.push): a multi-line reply in one write, the replies of a
pipelined group (RFC 2920) with the reply that ends it, and nothing held back that the client
waits for. What the server writes is recorded at its stream writer; the client is a raw socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mailserver.smtp.protocol import MAX_HELD_REPLY_BYTES, GovmailSMTP
from tests.smtp.helpers import DOMAIN, folder_messages, message
from tests.support.harness import LiveServer

USER = f"gom@{DOMAIN}"


@pytest.fixture
def server_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every write an SMTP session of ours makes, in order."""
    writes: list[bytes] = []
    write = asyncio.StreamWriter.write

    def recording(self: asyncio.StreamWriter, data: bytes) -> None:
        if isinstance(getattr(self, "_protocol", None), GovmailSMTP):
            writes.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", recording)
    yield writes


async def _until(reader: asyncio.StreamReader, last_line_prefix: bytes) -> list[bytes]:
    lines: list[bytes] = []
    while not (lines and lines[-1].startswith(last_line_prefix)):
        lines.append((await asyncio.wait_for(reader.readline(), 10)).rstrip(b"\r\n"))
    return lines


async def test_ehlo_and_a_pipelined_group_each_go_out_in_one_write(
    live_server: LiveServer, server_writes: list[bytes]
) -> None:
    await live_server.add_mailbox(USER)
    reader, writer = await asyncio.open_connection(*live_server.address("smtp_mx"))
    await _until(reader, b"220 ")
    writer.write(b"EHLO peer.example.org\r\n")
    ehlo = await _until(reader, b"250 ")
    assert len(ehlo) > 5
    assert server_writes[-1] == b"".join(line + b"\r\n" for line in ehlo)

    writer.write(
        f"MAIL FROM:<a@example.org>\r\nRCPT TO:<khong-co@{DOMAIN}>\r\n"
        f"RCPT TO:<{USER}>\r\nDATA\r\n".encode()
    )
    replies = await _until(reader, b"354 ")
    assert [line[:3] for line in replies] == [b"250", b"550", b"250", b"354"]
    # The 250 waits for the 550 (an error is written at once, with what waited before it);
    # the last 250 waits for the 354.
    assert server_writes[-2:] == [
        b"".join(line + b"\r\n" for line in replies[:2]),
        b"".join(line + b"\r\n" for line in replies[2:]),
    ]
    writer.write(message("a@example.org", USER, "Gom tra loi") + b".\r\nQUIT\r\n")
    final = await _until(reader, b"221 ")
    assert [line[:3] for line in final] == [b"250", b"221"]
    assert len(await folder_messages(live_server, USER)) == 1
    writer.close()
    await writer.wait_closed()


async def test_a_client_pipelining_without_reading_is_not_buffered_without_bound(
    live_server: LiveServer, server_writes: list[bytes]
) -> None:
    """2,000 NOOPs in one go: every reply comes back, in writes of bounded size (so the socket's
    backpressure still reaches a client that never reads)."""
    reader, writer = await asyncio.open_connection(*live_server.address("smtp_mx"))
    await _until(reader, b"220 ")
    writer.write(b"EHLO peer.example.org\r\n")
    await _until(reader, b"250 ")
    before = len(server_writes)
    writer.write(b"NOOP\r\n" * 2000 + b"QUIT\r\n")
    replies = await _until(reader, b"221 ")
    assert len(replies) == 2001 and all(line.startswith(b"250 ") for line in replies[:-1])
    writes = server_writes[before:]
    assert len(writes) > 1
    assert max(map(len, writes)) <= MAX_HELD_REPLY_BYTES + 100
    writer.close()
    await writer.wait_closed()
