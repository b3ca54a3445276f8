"""A minimal SMTP server over asyncio streams whose EHLO keywords the test chooses (aiosmtpd
always offers 8BITMIME and refuses DSN parameters), recording every command line and message."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Transaction:
    mail: str  # the MAIL command line as received
    rcpts: list[str]  # the RCPT command lines
    data: bytes  # the message, dot-unstuffed, CRLF line ends


@dataclass
class ScriptedPeer:
    """``extensions``: the EHLO keywords after the greeting line (e.g. ["SIZE", "DSN"])."""

    extensions: list[str] = field(default_factory=list)
    received: list[Transaction] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> ScriptedPeer:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        try:
            say("220 peer.example ESMTP scripted")
            mail = ""
            rcpts: list[str] = []
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line[:4].upper()
                if verb == "EHLO":
                    lines = ["peer.example", *self.extensions]
                    for index, text in enumerate(lines):
                        say(f"250{'-' if index < len(lines) - 1 else ' '}{text}")
                elif verb == "MAIL":
                    mail, rcpts = line, []
                    say("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(line)
                    say("250 2.1.5 Ok")
                elif verb == "DATA":
                    say("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    data = await self._read_data(reader)
                    self.received.append(Transaction(mail, rcpts, data))
                    self.arrived.set()
                    say("250 2.0.0 Ok: queued")
                elif verb == "RSET":
                    mail, rcpts = "", []
                    say("250 2.0.0 Ok")
                elif verb == "QUIT":
                    say("221 2.0.0 Bye")
                    await writer.drain()
                    return
                else:
                    say("502 5.5.1 Not implemented")
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read_data(reader: asyncio.StreamReader) -> bytes:
        lines: list[bytes] = []
        while True:
            line = await reader.readline()
            if line in (b".\r\n", b""):
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b"..") else line)
