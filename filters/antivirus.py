"""The ``antivirus`` check: ClamAV's clamd over its INSTREAM command, without blocking.

clamd protocol (clamd(8)): "zINSTREAM\\0", then chunks each prefixed by its length as a 4-byte
big-endian integer, a zero-length chunk to finish; clamd answers "stream: OK\\0",
"stream: <signature> FOUND\\0" or "... ERROR\\0". An infected message is refused at DATA.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct

from filters.metrics import count
from filters.pipeline import Action, MessageContext, Verdict
from filters.services import ServiceAddress, unavailable_verdict

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_REPLY = 4096


class ClamdError(Exception):
    """clamd answered with an error (or nothing usable)."""


class ClamdClient:
    def __init__(self, address: str, timeout: float) -> None:
        self.address = ServiceAddress.parse(address)
        self.timeout = timeout

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.socket_path:
            return await asyncio.open_unix_connection(self.address.socket_path)
        return await asyncio.open_connection(self.address.host, self.address.port)

    async def ping(self) -> None:
        """Raises unless clamd answers PING with PONG (the start-up check of `serve`)."""
        async with asyncio.timeout(self.timeout):
            reader, writer = await self._connect()
            try:
                writer.write(b"zPING\0")
                await writer.drain()
                reply = await reader.read(MAX_REPLY)
            finally:
                writer.close()
        if not reply.startswith(b"PONG"):
            raise ClamdError(f"unexpected reply to PING: {reply[:40]!r}")

    async def scan(self, data: bytes) -> str | None:
        """The signature name if clamd finds one, None if the data is clean."""
        async with asyncio.timeout(self.timeout):
            reader, writer = await self._connect()
            try:
                writer.write(b"zINSTREAM\0")
                for start in range(0, len(data), CHUNK):
                    chunk = data[start : start + CHUNK]
                    writer.write(struct.pack(">I", len(chunk)) + chunk)
                    await writer.drain()
                writer.write(struct.pack(">I", 0))
                await writer.drain()
                reply = await reader.readuntil(b"\0")
            except asyncio.LimitOverrunError as exc:
                raise ClamdError("over-long reply") from exc
            finally:
                writer.close()
        return parse_clamd_reply(reply[:MAX_REPLY])


def parse_clamd_reply(reply: bytes) -> str | None:
    text = reply.rstrip(b"\0\n").decode("utf-8", "replace")
    _, _, status = text.partition(": ")
    if status == "OK":
        return None
    if status.endswith(" FOUND"):
        # The name goes into an SMTP reply: keep it to one harmless line.
        return re.sub(r"[^\w.:/-]", "?", status[: -len(" FOUND")].strip())[:100] or "unknown"
    raise ClamdError(text or "empty reply")


class AntivirusCheck:
    name = "antivirus"

    def __init__(self, client: ClamdClient, max_scan_size: int, on_failure: str) -> None:
        self.client = client
        self.max_scan_size = max_scan_size
        self.on_failure = on_failure

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        removed = ("X-Virus-Status",)
        if len(message) > self.max_scan_size:
            count("clamd.skipped_size")
            status = ("X-Virus-Status", "unchecked (too large)")
            return Verdict(self.name, add_headers=(status,), remove_headers=removed)
        try:
            found = await self.client.scan(message)
        except (OSError, TimeoutError, ClamdError, asyncio.IncompleteReadError) as exc:
            return unavailable_verdict(
                self.name, "clamd", self.on_failure, ("X-Virus-Status", "unchecked"), exc, removed
            )
        if found:
            count("clamd.infected")
            reply = f"550 5.7.1 Message refused: it contains a virus ({found})"
            return Verdict(self.name, Action.REJECT, reply, detail=f"infected: {found}")
        count("clamd.clean")
        return Verdict(
            self.name, add_headers=(("X-Virus-Status", "clean"),), remove_headers=removed
        )
