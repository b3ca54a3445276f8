"""A minimal asyncio IMAP client for load generation: one command at a time, literals both ways.

Kept small on purpose: the load tool must measure the server, not a client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass

LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


class IMAPProtocolError(Exception):
    pass


@dataclass
class Reply:
    status: str  # OK | NO | BAD
    lines: list[bytes]
    seconds: float


class IMAPClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._tag = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> IMAPClient:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise IMAPProtocolError(f"bad greeting {greeting!r}")
        return cls(reader, writer)

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"a%d" % self._tag

    async def _read_line(self) -> bytes:
        """One response line with any literals it carries inlined."""
        line = await self.reader.readline()
        if not line:
            raise IMAPProtocolError("connection closed")
        while True:
            match = LITERAL_AT_END.search(line)
            if not match:
                return line
            line += await self.reader.readexactly(int(match.group(1)))
            line += await self.reader.readline()

    async def command(self, text: bytes, literal: bytes | None = None) -> Reply:
        tag = self._next_tag()
        started = time.perf_counter()
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            await self.writer.drain()
            cont = await self._read_line()
            if not cont.startswith(b"+"):
                return self._finish(tag, [cont], started)
            self.writer.write(literal + b"\r\n")
        await self.writer.drain()
        lines: list[bytes] = []
        while True:
            line = await self._read_line()
            if line.startswith(tag + b" "):
                return self._finish(tag, [*lines, line], started)
            lines.append(line)

    @staticmethod
    def _finish(tag: bytes, lines: list[bytes], started: float) -> Reply:
        last = lines[-1]
        status = last[len(tag) + 1 :].split(b" ", 1)[0].decode("ascii", "replace")
        return Reply(status, lines[:-1], time.perf_counter() - started)

    async def idle(self) -> Reply:
        """IDLE, then DONE as soon as the server says it is idling."""
        tag = self._next_tag()
        started = time.perf_counter()
        self.writer.write(tag + b" IDLE\r\n")
        await self.writer.drain()
        lines: list[bytes] = []
        while True:
            line = await self._read_line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                return self._finish(tag, [*lines, line], started)
            lines.append(line)
        self.writer.write(b"DONE\r\n")
        await self.writer.drain()
        while True:
            line = await self._read_line()
            if line.startswith(tag + b" "):
                return self._finish(tag, [*lines, line], started)
            lines.append(line)

    async def start_idle(self) -> None:
        """Enter IDLE and stay there (for the idle-memory measurement)."""
        self.writer.write(self._next_tag() + b" IDLE\r\n")
        await self.writer.drain()
        line = await self._read_line()
        if not line.startswith(b"+"):
            raise IMAPProtocolError(f"IDLE refused: {line!r}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
