"""SEARCH criteria evaluated against message rows (RFC 9051 6.4.4, RFC 7162 3.1.5).

Text keys are compared after folding both sides with storage.text_fold (case, diacritics and
đ/d insensitive, NFC/NFD alike), as substrings (RFC 9051: "Messages that contain the specified
string"). FROM, TO, CC and SUBJECT use the folded columns indexed at delivery; BODY and TEXT
use the search index (storage.search_index), whose answers the caller looks up beforehand and
passes in as ``text_hits``. Only other header names (and BCC) need the message's header bytes,
which the caller provides through ``MessageText``: read lazily, and only for messages the
cheaper keys did not rule out (AND evaluates left to right and stops at the first miss).

Pure: no I/O of its own; the caller runs it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from mailserver.imap import protocol as p
from storage.message_queries import SearchRow
from storage.message_summary import (
    MessageSummary,
    decode_header_text,
    split_header_fields,
)
from storage.text_fold import fold_for_search, fold_query

# Header keys answered by the folded columns stored with each message.
COLUMN_HEADERS = {
    "FROM": "from_addr",
    "TO": "to_addr",
    "CC": "cc_addr",
    "SUBJECT": "subject",
}


def column_needle(key: p.SearchHeader) -> tuple[str, str] | None:
    """(column, folded needle) when a stored column answers ``key``; None if the header is needed.

    A blank value asks whether the field is present at all, which the columns cannot tell.
    """
    needle = fold_query(key.value)
    column = COLUMN_HEADERS.get(key.name)
    if column is None or not needle.strip():
        return None
    return column, needle


@dataclass
class MessageText:
    """Lazily loaded, folded text of one message for the keys the columns cannot answer."""

    load_raw: Callable[[], tuple[bytes, MessageSummary]]
    _raw: tuple[bytes, MessageSummary] | None = None
    _headers: list[tuple[str, str]] | None = None

    def _get(self) -> tuple[bytes, MessageSummary]:
        if self._raw is None:
            self._raw = self.load_raw()
        return self._raw

    def headers(self) -> list[tuple[str, str]]:
        """(lower-case name, folded decoded value) of every header field."""
        if self._headers is None:
            raw, summary = self._get()
            fields = split_header_fields(raw[: summary.root.body_start])
            self._headers = [(name, fold_for_search(decode_header_text(v))) for name, v in fields]
        return self._headers


@dataclass(frozen=True)
class SearchContext:
    """What sequence-set keys need: the view's numbering and the saved result."""

    seq_of: Callable[[int], int | None]
    exists: int
    largest_uid: int
    saved: frozenset[int]
    recent: frozenset[int] = frozenset()  # \Recent in this session (IMAP4rev1)


def _day(value: datetime) -> date:
    return value.date()


def _compare_date(value: date, op: p.DateOp, wanted: date) -> bool:
    if op is p.DateOp.BEFORE:
        return value < wanted
    if op is p.DateOp.ON:
        return value == wanted
    return value >= wanted


def _contains(haystack: str, needle: str) -> bool:
    return needle in haystack if needle.strip() else True


class Matcher:
    """Evaluates one criteria tree; resolve sequence sets once per search."""

    def __init__(
        self,
        key: p.SearchKey,
        context: SearchContext,
        text_hits: Mapping[p.SearchText, frozenset[int]],
    ) -> None:
        self.key = key
        self.context = context
        self.text_hits = text_hits
        self._sets: dict[int, p.ResolvedSet] = {}

    def _resolved(self, sequence_set: p.SequenceSet, largest: int) -> p.ResolvedSet:
        cached = self._sets.get(id(sequence_set))
        if cached is None:
            cached = sequence_set.resolve(largest)
            self._sets[id(sequence_set)] = cached
        return cached

    def matches(self, row: SearchRow, text: MessageText) -> bool:
        return self._match(self.key, row, text)

    def _match(self, key: p.SearchKey, row: SearchRow, text: MessageText) -> bool:
        match key:
            case p.SearchAll():
                return True
            case p.SearchAnd(keys=keys):
                return all(self._match(k, row, text) for k in keys)
            case p.SearchOr(left=left, right=right):
                return self._match(left, row, text) or self._match(right, row, text)
            case p.SearchNot(key=inner):
                return not self._match(inner, row, text)
            case p.SearchFlag(flag=flag, present=present):
                if flag == "\\Recent":  # this session's, not stored (mailserver/imap/selected.py)
                    return (row.uid in self.context.recent) == present
                return (flag in row.flags) == present
            case p.SearchDate(field=field, op=op, date=wanted):
                if field is p.DateField.INTERNAL:
                    return _compare_date(_day(row.internal_date), op, wanted)
                if row.sent_date is None:
                    return False
                return _compare_date(_day(row.sent_date), op, wanted)
            case p.SearchSize(larger=larger, size=size):
                return row.size > size if larger else row.size < size
            case p.SearchHeader(name=name, value=value):
                return self._header(row, text, name, value)
            case p.SearchText():
                return row.uid in self.text_hits[key]
            case p.SearchSequence(sequence_set=sequence_set):
                seq = self.context.seq_of(row.uid)
                if seq is None:
                    return False
                if sequence_set.saved:
                    return row.uid in self.context.saved
                return seq in self._resolved(sequence_set, self.context.exists)
            case p.SearchUid(sequence_set=sequence_set):
                if sequence_set.saved:
                    return row.uid in self.context.saved
                return row.uid in self._resolved(sequence_set, self.context.largest_uid)
            case p.SearchModSeq(modseq=modseq):
                return row.modseq >= modseq
        raise ValueError(f"unknown search key {key!r}")

    def _header(self, row: SearchRow, text: MessageText, name: str, value: str) -> bool:
        needle = fold_query(value)
        column = COLUMN_HEADERS.get(name)
        if column is not None and needle.strip():
            return needle in getattr(row, column)
        wanted = name.lower()
        values = [v for n, v in text.headers() if n == wanted]
        if not values:
            return False
        return any(_contains(v, needle) for v in values)


def uses_modseq(key: p.SearchKey) -> bool:
    """Whether the criteria contain MODSEQ (RFC 7162 3.1.5: then the response carries MODSEQ)."""
    match key:
        case p.SearchModSeq():
            return True
        case p.SearchAnd(keys=keys):
            return any(uses_modseq(k) for k in keys)
        case p.SearchOr(left=left, right=right):
            return uses_modseq(left) or uses_modseq(right)
        case p.SearchNot(key=inner):
            return uses_modseq(inner)
    return False


def text_keys(key: p.SearchKey) -> Iterator[p.SearchText]:
    """Every TEXT/BODY key of the criteria (looked up in the search index before matching)."""
    match key:
        case p.SearchText():
            yield key
        case p.SearchAnd(keys=keys):
            for inner in keys:
                yield from text_keys(inner)
        case p.SearchOr(left=left, right=right):
            yield from text_keys(left)
            yield from text_keys(right)
        case p.SearchNot(key=inner):
            yield from text_keys(inner)
