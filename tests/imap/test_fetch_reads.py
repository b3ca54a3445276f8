"""How FETCH plans its blob reads: header bytes only when enough, bounded bytes per read."""

from __future__ import annotations

from datetime import UTC, datetime

from mailserver.imap import protocol as p
from mailserver.imap.commands.fetch import READ_CHUNK_BYTES, _header_only, _read_chunks
from storage.message_queries import MessageRow
from storage.message_summary import MessageSummary, summarize_message

RAW = b"Subject: a\r\nFrom: b@c.vn\r\n\r\nbody text\r\n"


def row(uid: int, size: int) -> MessageRow:
    return MessageRow(uid, 1, frozenset(), size, datetime(2026, 11, 24, tzinfo=UTC), "0" * 64, None)


def test_header_sections_need_only_the_header() -> None:
    fields = p.SectionSpec(text=p.SectionText.HEADER_FIELDS, fields=("SUBJECT",))
    assert _header_only(p.FetchAttribute(p.FetchKind.BODY_SECTION, section=fields, peek=True))
    assert _header_only(p.FetchAttribute(p.FetchKind.RFC822_HEADER))
    whole = p.FetchAttribute(p.FetchKind.BODY_SECTION, section=p.SectionSpec(), peek=True)
    assert not _header_only(whole)
    part_header = p.SectionSpec(part=(1,), text=p.SectionText.HEADER)
    assert not _header_only(p.FetchAttribute(p.FetchKind.BODY_SECTION, section=part_header))


def test_reads_are_grouped_by_size_and_cut_at_the_header() -> None:
    summary = summarize_message(RAW)
    header_length = summary.root.body_start
    assert RAW[:header_length].endswith(b"\r\n\r\n")
    rows = [row(uid, READ_CHUNK_BYTES // 3) for uid in range(1, 8)]
    summaries: list[MessageSummary | None] = [summary] * len(rows)
    whole = _read_chunks(rows, summaries, header_only=False)
    assert [len(chunk) for chunk in whole] == [3, 3, 1]
    assert all(length is None for chunk in whole for _, length in chunk)
    headers = _read_chunks(rows, summaries, header_only=True)
    assert [len(chunk) for chunk in headers] == [7]
    assert {length for _, length in headers[0]} == {header_length}
    assert _read_chunks([], [], header_only=True) == []
