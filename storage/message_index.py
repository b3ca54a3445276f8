"""What is computed once per message at delivery: the cached summary and the search fields.

``index_message`` parses the raw bytes once; the result is stored on every message row that
refers to the blob, so FETCH of structure and SEARCH of headers never re-parse the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import storage.vn_charsets  # noqa: F401  (registers VISCII/TCVN for legacy Vietnamese mail)
from storage.message_summary import MessageSummary, summarize_message
from storage.search_index import SearchableText, searchable_text
from storage.text_fold import fold_for_search

MAX_SEARCH_FIELD = 4000


@dataclass(frozen=True)
class IndexedMessage:
    summary: bytes  # MessageSummary.to_json()
    subject: str  # folded (case and diacritics) for search
    from_addr: str
    to_addr: str
    cc_addr: str
    sent_date: datetime | None  # the Date header's wall clock, zone dropped (labelled UTC)
    message_id: str
    text: SearchableText  # for the search index (storage.search_index)


def normalise_line_endings(raw: bytes) -> bytes:
    """Bare LF (and bare CR) become CRLF, as RFC 5322 2.1 and IMAP (RFC 3501 2.3.3) require.

    Messages that already use CRLF throughout are returned unchanged (the common case, cheap).
    """
    if raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n"):
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _fold(text: str | None) -> str:
    return fold_for_search(text or "")[:MAX_SEARCH_FIELD]


def _sender_wall_clock(value: datetime | None) -> datetime | None:
    """The Date header's own date and time with its zone dropped (stored labelled UTC).

    RFC 3501 6.4.4: SENTBEFORE/SENTON/SENTSINCE compare "the date of the Date header, disregarding
    time and timezone": 23:00 +0200 on the 24th is the 24th, not the 24th's 21:00 UTC, and
    01:00 +0300 on the 25th is the 25th, not the 24th (Dovecot's imaptest search-date).
    """
    if value is None:
        return None
    return value.replace(tzinfo=UTC)


def index_message(raw: bytes) -> IndexedMessage:
    """Parse ``raw`` once and return what the message rows cache. Never raises on bad input."""
    summary: MessageSummary = summarize_message(raw)
    headers = summary.search_headers
    message_id = (headers.message_id or "").strip()[:998]
    return IndexedMessage(
        summary=summary.to_json(),
        subject=_fold(headers.subject),
        from_addr=_fold(headers.from_),
        to_addr=_fold(headers.to),
        cc_addr=_fold(headers.cc),
        sent_date=_sender_wall_clock(headers.date),
        message_id=message_id,
        text=searchable_text(raw, summary),
    )
