"""Shared helpers for the IMAP tests: SMTP delivery and blocking clients run off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
from pathlib import Path

from sqlmodel import Session as DBSession

from storage.accounts import find_mailbox
from tests.support.harness import TEST_PASSWORD, LiveServer

USER = "vanban@sotest.gov.vn"

SAMPLE = (
    b"From: =?utf-8?q?Nguy=E1=BB=85n_V=C4=83n_A?= <a@bo-ngoai.example>\r\n"
    b"To: vanban@sotest.gov.vn\r\n"
    b"Subject: =?utf-8?b?VsSDbiBi4bqjbiBz4buRIDEyMw==?=\r\n"
    b"Date: Mon, 02 Mar 2026 09:15:00 +0700\r\n"
    b"Message-ID: <m1@sotest.gov.vn>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"K\xc3\xadnh g\xe1\xbb\xadi c\xc3\xa1c \xc4\x91\xe1\xbb\x93ng ch\xc3\xad.\r\n"
    b"8-bit tail \xff\r\n"
)


def smtp_deliver(server: LiveServer, raw: bytes, rcpt: str = USER) -> None:
    host, port = server.address("smtp_mx")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("a@bo-ngoai.example", [rcpt], raw)


async def deliver_smtp(server: LiveServer, raw: bytes, rcpt: str = USER) -> None:
    """Deliver through the MX listener, as another agency's server would."""
    await asyncio.to_thread(smtp_deliver, server, raw, rcpt)


async def deliver(server: LiveServer, raw: bytes, rcpt: str = USER) -> None:
    """Deliver straight through the store (the path SMTP's DATA ends in), without SMTP."""
    store = server.running.instance.store

    def mailbox_id(session: DBSession) -> int:
        mailbox = find_mailbox(session, rcpt)
        assert mailbox is not None and mailbox.id is not None
        return mailbox.id

    await store.deliver(raw, [(await store.read(mailbox_id), "INBOX")])


def imap_login(server: LiveServer, user: str = USER) -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=10)
    client.login(user, TEST_PASSWORD)
    return client


class RawClient:
    """A minimal line-level IMAP client for protocol tests: exact bytes in, exact lines out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.counter = 0

    @classmethod
    async def connect(cls, server: LiveServer, listener: str = "imap") -> RawClient:
        host, port = server.address(listener)
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        greeting = await client.line()
        assert greeting.startswith(b"* OK "), greeting
        return client

    async def line(self) -> bytes:
        """One response line with any literals it carries inlined (CRLF removed at the end)."""
        data = await asyncio.wait_for(self.reader.readline(), 10)
        if not data:
            raise ConnectionError("server closed the connection")
        while data.endswith(b"}\r\n") and b"{" in data:
            size = int(data[data.rindex(b"{") + 1 : -3])
            data += await asyncio.wait_for(self.reader.readexactly(size), 10)
            more = await asyncio.wait_for(self.reader.readline(), 10)
            data += more
        return data[:-2] if data.endswith(b"\r\n") else data

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, text: str | bytes) -> tuple[list[bytes], bytes]:
        """Send `tagN text` and read until the tagged answer: (untagged lines, tagged line)."""
        self.counter += 1
        tag = f"t{self.counter}".encode()
        raw = text.encode() if isinstance(text, str) else text
        await self.send(tag + b" " + raw + b"\r\n")
        return await self.until(tag)

    async def until(self, tag: bytes) -> tuple[list[bytes], bytes]:
        lines: list[bytes] = []
        while True:
            line = await self.line()
            if line.startswith(tag + b" "):
                return lines, line[len(tag) + 1 :]
            lines.append(line)

    async def login(self, user: str = USER) -> None:
        _, status = await self.command(f'LOGIN "{user}" "{TEST_PASSWORD}"')
        assert status.startswith(b"OK"), status

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def wait_for_line(client: RawClient, predicate: object, deadline: float = 5.0) -> bytes:
    """Read untagged lines until one satisfies predicate (a callable on bytes)."""
    assert callable(predicate)

    async def scan() -> bytes:
        while True:
            line = await client.line()
            if predicate(line):
                return line

    return await asyncio.wait_for(scan(), deadline)


async def run_mbsync(config: Path) -> str:
    """``mbsync -a`` with this config; its output, asserting that it succeeded."""
    process = await asyncio.create_subprocess_exec(
        "mbsync",
        "-c",
        str(config),
        "-a",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text
