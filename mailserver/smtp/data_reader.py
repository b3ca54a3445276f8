"""The DATA phase read in large pieces instead of line by line (RFC 5321 4.1.1.4, 4.5.2).

aiosmtpd reads message data one line at a time: a 10 KB message is about 150 awaits, which on
one event loop costs more than storing the message. Here the stream is read up to the
end-of-data sequence (CRLF "." CRLF) itself, in one or a few pieces. The only place where that
sequence can begin in bytes already read is the start of the data (the line break before it
belongs to the DATA command) or a byte just read that begins it; there the reader takes one
byte at a time until the question is settled.

aiosmtpd's stream reader has a limit of one command line (1001 bytes), and asyncio pauses the
socket whenever twice that is buffered: a 10 KB message would be read a kilobyte at a time, each
piece a pause and a resume of the socket (two ``epoll_ctl``) and a trip round the loop. For the
data phase the limit is raised to ``DATA_READ_LIMIT`` and put back after (``StreamReader._limit``
is CPython's attribute for it, read by its flow control and its ``readuntil``), so commands
after the data are held to their line limit again. Limits keep aiosmtpd's meaning: the size counts
the content before dot-unstuffing, a line counts its CRLF, and an oversized message is drained,
not kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

DATA_READ_LIMIT = 256 * 1024
_DOT_LINE = b".\r\n"
_END_OF_DATA = b"\r\n.\r\n"


class DataProblem(Enum):
    TOO_MUCH = "too_much"  # over the size limit (552)
    TOO_LONG = "too_long"  # a line over the line limit (500)


@dataclass(frozen=True)
class MessageData:
    content: bytes  # dot-unstuffed, with its final CRLF, without the terminating dot line
    problem: DataProblem | None = None


async def read_message_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> MessageData:
    """Read up to and including the end-of-data line; the bytes after it stay in ``reader``.

    Raises ``asyncio.IncompleteReadError`` when the peer closes the connection first.
    """
    line_reader_limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = max(line_reader_limit, DATA_READ_LIMIT)  # type: ignore[attr-defined]
    try:
        return await _read_until_end(reader, size_limit, line_limit)
    finally:
        reader._limit = line_reader_limit  # type: ignore[attr-defined]


async def _read_until_end(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> MessageData:
    data = bytearray()
    total = 0
    too_much = False
    recent = b"\r\n"  # the last bytes seen, starting with the line break before the data
    while True:
        if _partial_end(recent):
            # The end-of-data may begin in what was already read (at the very start, the line
            # break before the data): take one byte at a time until that is settled.
            chunk = await reader.readexactly(1)
        else:
            try:
                chunk = await reader.readuntil(_END_OF_DATA)
            except asyncio.LimitOverrunError as overrun:
                # Not within the reader's limit: take what is safe to take (asyncio never
                # counts a possible start of the separator as safe) and go on.
                chunk = await reader.read(overrun.consumed)
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", None) from None
        total += len(chunk)
        recent = (recent + chunk)[-len(_END_OF_DATA) :]
        if not too_much:
            data += chunk
            if size_limit and total > size_limit + len(_DOT_LINE):
                too_much = True
                data.clear()  # drain the rest without keeping it
        if recent == _END_OF_DATA:
            break
    if too_much or (size_limit and total - len(_DOT_LINE) > size_limit):
        return MessageData(b"", DataProblem.TOO_MUCH)
    del data[-len(_DOT_LINE) :]
    content = bytes(data)
    if len(content) + 2 > line_limit and _longest_line(content) + 2 > line_limit:
        return MessageData(b"", DataProblem.TOO_LONG)
    # Transparency (RFC 5321 4.5.2): a leading dot on any line is removed.
    content = content.replace(b"\r\n.", b"\r\n")
    if content.startswith(b"."):
        content = content[1:]
    return MessageData(content)


_END_BEGINNINGS = tuple(_END_OF_DATA[:size] for size in range(1, len(_END_OF_DATA)))


def _partial_end(recent: bytes) -> bool:
    """Whether ``recent`` ends with the beginning of an end-of-data (CRLF "." CRLF)."""
    return recent.endswith(_END_BEGINNINGS)


def _longest_line(content: bytes) -> int:
    return max(map(len, content.split(b"\r\n")))
