"""The text search index: folded header and body text per message content, kept at delivery.

IMAP text SEARCH (TEXT, BODY) must match Vietnamese regardless of case and diacritics, and must
never scan message bodies at search time. At delivery each distinct content (blob) gets one row
of folded text (storage.text_fold), so a message sent to 500 people is indexed once. The rows are
indexed for substring search: SQLite FTS5 with the trigram tokenizer, PostgreSQL pg_trgm GIN
indexes (migration 0002). Needles shorter than a trigram fall back to a scan of the indexed text
of the one folder (still never the message bytes).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Column, Text, bindparam, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel

from storage.fast_sql import Prepared
from storage.message_summary import (
    MessageSummary,
    decode_header_text,
    split_header_fields,
    text_for_search,
)
from storage.text_fold import fold_for_search

MAX_INDEXED_CHARS = 1_000_000  # per field; longer text is cut (a 40 MB log file is not prose)
TRIGRAM = 3


class MessageText(SQLModel, table=True):
    """Folded text of one message content (blob)."""

    __tablename__ = "message_text"
    id: int | None = Field(default=None, primary_key=True)
    blob_sha256: str = Field(foreign_key="blob.sha256", unique=True, max_length=64)
    headers: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))


class TextField(StrEnum):
    BODY = "body"  # IMAP BODY: the body only
    TEXT = "text"  # IMAP TEXT: header or body


def searchable_text(raw: bytes, summary: MessageSummary) -> tuple[str, str]:
    """(headers, body) of ``raw``, decoded and folded for search. Never raises on bad input."""
    header_block = raw[: summary.root.body_start]
    values = [
        f"{name} {decode_header_text(value)}" for name, value in split_header_fields(header_block)
    ]
    headers = fold_for_search(" ".join(values))[:MAX_INDEXED_CHARS]
    body = fold_for_search(text_for_search(raw, summary))[:MAX_INDEXED_CHARS]
    return headers, body


_ADD_TEXT = Prepared(
    lambda dialect: (
        (postgresql_insert if dialect == "postgresql" else sqlite_insert)(MessageText)
        .values(
            blob_sha256=bindparam("sha256"), headers=bindparam("headers"), body=bindparam("body")
        )
        .on_conflict_do_nothing(index_elements=["blob_sha256"])
    )
)


def add_text(session: Session, blob_sha256: str, headers: str, body: str) -> None:
    """Index a content once; a second delivery of the same bytes changes nothing."""
    _ADD_TEXT.execute(session, {"sha256": blob_sha256, "headers": headers, "body": body}).close()


def _fts_phrase(needle: str) -> str:
    # An FTS5 string: double quotes inside are doubled (sqlite.org/fts5.html 3.1).
    return '"' + needle.replace('"', '""') + '"'


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Hit ids mapped to a folder's UIDs this many at a time (bound parameters per statement).
MAP_CHUNK = 500


def matching_uids(session: Session, folder_id: int, needle: str, field: TextField) -> set[int]:
    """UIDs in ``folder_id`` whose text contains ``needle`` (already folded, see fold_query).

    Two steps, because a single join lets SQLite's planner walk the folder and probe the index
    per message, which is minutes on a 100,000-message folder with a common phrase: first the
    index gives the matching texts, then each is mapped to this folder's messages through the
    blob index.
    """
    if not needle.strip():
        # An empty or blank key matches every message (every text contains "").
        rows = session.execute(
            text("SELECT uid FROM message WHERE folder_id = :folder"), {"folder": folder_id}
        )
        return {int(row[0]) for row in rows}
    if len(needle) < TRIGRAM:
        return _scan_folder(session, folder_id, needle, field)
    hits = _indexed_hits(session, needle, field)
    uids: set[int] = set()
    for start in range(0, len(hits), MAP_CHUNK):
        chunk = hits[start : start + MAP_CHUNK]
        names = ", ".join(f":h{n}" for n in range(len(chunk)))
        params: dict[str, object] = {f"h{n}": hit for n, hit in enumerate(chunk)}
        params["folder"] = folder_id
        # "+m.folder_id": keeps SQLite from choosing the folder index over the blob index.
        query = text(
            "SELECT m.uid FROM message_text t JOIN message m ON m.blob_sha256 = t.blob_sha256 "
            f"WHERE t.id IN ({names}) AND +m.folder_id = :folder"
        )
        uids.update(int(row[0]) for row in session.execute(query, params))
    return uids


def _indexed_hits(session: Session, needle: str, field: TextField) -> list[int]:
    """Ids of the indexed texts containing ``needle`` (three characters or more)."""
    if session.get_bind().dialect.name == "sqlite":
        column = "body" if field is TextField.BODY else "{headers body}"
        query = text("SELECT rowid FROM message_text_fts WHERE message_text_fts MATCH :match")
        params: dict[str, object] = {"match": f"{column} : {_fts_phrase(needle)}"}
    else:
        # PostgreSQL: LIKE answered by the pg_trgm GIN indexes.
        query = text(f"SELECT id FROM message_text t WHERE {_like_condition(field)}")
        params = {"pattern": _like_pattern(needle)}
    return [int(row[0]) for row in session.execute(query, params)]


def _scan_folder(session: Session, folder_id: int, needle: str, field: TextField) -> set[int]:
    """Needles shorter than a trigram: the folder's indexed text, scanned (never the bytes)."""
    query = text(
        "SELECT m.uid FROM message m JOIN message_text t ON t.blob_sha256 = m.blob_sha256 "
        f"WHERE m.folder_id = :folder AND {_like_condition(field)}"
    )
    params = {"folder": folder_id, "pattern": _like_pattern(needle)}
    return {int(row[0]) for row in session.execute(query, params)}


def _like_condition(field: TextField) -> str:
    if field is TextField.BODY:
        return "t.body LIKE :pattern ESCAPE '\\'"
    return "(t.headers LIKE :pattern ESCAPE '\\' OR t.body LIKE :pattern ESCAPE '\\')"
