"""The bulk DATA reader against RFC 5321's transparency and end-of-data rules, at every split."""

from __future__ import annotations

import asyncio

import pytest

from mailserver.smtp.data_reader import DataProblem, MessageData, read_message_data

LINE_LIMIT = 1001


async def _read(
    wire: bytes, splits: list[int], limit: int | None = 10_000
) -> tuple[MessageData, bytes]:
    """Feed ``wire`` cut at ``splits`` (each piece after the previous one was asked for)."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    pieces = [wire[a:b] for a, b in zip([0, *splits], [*splits, len(wire)], strict=True)]

    async def feed() -> None:
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)  # let the reader consume before the next piece arrives
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    result = await read_message_data(reader, limit, LINE_LIMIT)
    await feeder
    rest = await reader.read()
    return result, rest


CASES = [
    # (wire after 354, content, bytes left for the next command)
    (b".\r\nQUIT\r\n", b"", b"QUIT\r\n"),
    (b"Subject: x\r\n.\r\n", b"Subject: x\r\n", b""),
    (b"a.\r\nb\r\n.\r\nMAIL FROM:<>\r\n", b"a.\r\nb\r\n", b"MAIL FROM:<>\r\n"),
    (b"..\r\n...x\r\n.y\r\n.\r\n", b".\r\n..x\r\ny\r\n", b""),
    (b"line\r\n..\r\n.\r\n", b"line\r\n.\r\n", b""),
    (b"bare\n.\nstill data\r\n.\r\n", b"bare\n.\nstill data\r\n", b""),
    (b"x\r\n.\r\n.\r\n", b"x\r\n", b".\r\n"),
    (b"Cau mot.\r\nCau hai.\r\n.\r\nQUIT\r\n", b"Cau mot.\r\nCau hai.\r\n", b"QUIT\r\n"),
    (b"\r\n.\r\n", b"\r\n", b""),
    (b"\r\r\n\r.\r\n.\r\n", b"\r\r\n\r.\r\n", b""),
]


@pytest.mark.parametrize(("wire", "content", "rest"), CASES)
async def test_content_and_leftover_at_every_split(
    wire: bytes, content: bytes, rest: bytes
) -> None:
    for cut in range(1, len(wire)):
        result, left = await _read(wire, [cut])
        assert result == MessageData(content), (wire, cut)
        assert left == rest, (wire, cut)
    result, left = await _read(wire, list(range(1, len(wire))))  # one byte at a time
    assert (result.content, left) == (content, rest)


async def test_large_message_in_one_piece_and_in_small_ones() -> None:
    body = b"".join(b"dong %05d van ban\r\n" % n for n in range(5000)) + b".stuffed\r\n"
    wire = body.replace(b"\r\n.", b"\r\n..") + b".\r\nNOOP\r\n"
    for splits in ([], list(range(700, len(wire), 700))):
        result, left = await _read(wire, splits, limit=None)
        assert result.content == body
        assert left == b"NOOP\r\n"


async def test_size_limit_drains_and_refuses() -> None:
    body = b"x" * 80 + b"\r\n"
    ok, _ = await _read(body * 10 + b".\r\n", [], limit=len(body) * 10)
    assert ok.problem is None and len(ok.content) == len(body) * 10
    over, left = await _read(body * 11 + b".\r\nQUIT\r\n", [300, 600], limit=len(body) * 10)
    assert over.problem is DataProblem.TOO_MUCH
    assert left == b"QUIT\r\n"  # the whole message was drained


async def test_line_limit_counts_the_crlf() -> None:
    at_limit = b"y" * (LINE_LIMIT - 2) + b"\r\n"
    ok, _ = await _read(at_limit + b".\r\n", [500])
    assert ok.content == at_limit
    too_long, left = await _read(b"z" * LINE_LIMIT + b"\r\n.\r\nRSET\r\n", [500, 1000])
    assert too_long.problem is DataProblem.TOO_LONG
    assert left == b"RSET\r\n"


async def test_peer_closing_in_the_middle_raises() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await _read(b"Subject: cut\r\nno end", [5])


async def test_the_data_is_read_in_large_pieces_and_the_line_limit_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """During DATA the reader takes up to DATA_READ_LIMIT at a time (a 60 KB message is one
    readuntil, not sixty kilobyte pieces); after it, commands are held to one line again."""
    from mailserver.smtp.data_reader import DATA_READ_LIMIT

    body = b"".join(b"Dong %05d cua mot thu dai.\r\n" % n for n in range(2000))
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    reader.feed_data(body + b".\r\n" + b"X" * 1500 + b"\r\n")
    reader.feed_eof()
    calls: list[int] = []
    readuntil = reader.readuntil

    async def counting(separator: bytes = b"\n") -> bytes:
        calls.append(reader._limit)  # type: ignore[attr-defined]
        return await readuntil(separator)

    monkeypatch.setattr(reader, "readuntil", counting)
    result = await read_message_data(reader, 10_000_000, LINE_LIMIT)
    assert result == MessageData(body)
    assert calls == [DATA_READ_LIMIT]
    assert reader._limit == LINE_LIMIT  # type: ignore[attr-defined]
    with pytest.raises(asyncio.LimitOverrunError):  # the next "command" is over one line
        await readuntil(b"\n")
