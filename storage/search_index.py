"""The text search index: folded header and body text per message content, kept at delivery.

IMAP text SEARCH (TEXT, BODY) must match Vietnamese regardless of case and diacritics, and must
never scan message bodies at search time. At delivery each distinct content (blob) gets one row
of folded text (storage.text_fold), so a message sent to 500 people is indexed once. The rows are
indexed for substring search: SQLite FTS5 with the trigram tokenizer, PostgreSQL pg_trgm GIN
indexes (migration 0002). Needles shorter than a trigram, and folders small enough that it is
cheaper, are answered by a scan of the indexed text of the one folder (never the message bytes).

On SQLite the delivery only writes the row: a background indexer (storage/text_indexer.py)
adds rows to the FTS5 table afterwards, in id order, and keeps a watermark, ``indexed_upto``
(migration 0009), below which every row is indexed and above which none is. The index plan
therefore also scans this folder's rows above the watermark, with the scan plan's condition,
in the same statement: results are exact whether or not the indexer has caught up. On
PostgreSQL the GIN indexes are partial, over the rows the indexer has marked ``indexed``
(migration 0011); the index plan adds the unmarked rows, scanned, in the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, String, Text, TextClause, text
from sqlmodel import Field, Session, SQLModel

from storage.fast_sql import Prepared, PreparedRows
from storage.message_summary import MessageSummary
from storage.search_text import body_text, header_text
from storage.text_fold import fold_exact, fold_for_search

MAX_INDEXED_CHARS = 1_000_000  # per field; longer text is cut (a 40 MB log file is not prose)
TRIGRAM = 3


class MessageText(SQLModel, table=True):
    """Folded text of one message content (blob)."""

    __tablename__ = "message_text"
    id: int | None = Field(default=None, primary_key=True)
    blob_sha256: str = Field(foreign_key="blob.sha256", unique=True, max_length=64)
    headers: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))


class MessageTextExact(SQLModel, table=True):
    """The same text with its diacritics (storage.text_fold.fold_exact; "" if it has none), for
    keys typed with diacritics. A table of its own (migration 0014), so the rows every search
    reads stay as small as before; texts stored before 0014 have no row here."""

    __tablename__ = "message_text_exact"
    blob_sha256: str = Field(
        sa_column=Column(
            String(64),
            ForeignKey("message_text.blob_sha256", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    headers: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))


class TextField(StrEnum):
    BODY = "body"  # IMAP BODY: the body only
    TEXT = "text"  # IMAP TEXT: header or body


@dataclass(frozen=True)
class SearchableText:
    """One message's text for the index: folded, and with its diacritics (see text_fold)."""

    headers: str
    body: str
    headers_exact: str
    body_exact: str


def searchable_text(raw: bytes, summary: MessageSummary) -> SearchableText:
    """The text of ``raw`` for search (storage/search_text.py: the body holds everything BODY
    matches, nested headers included). Never raises on bad input."""
    headers = header_text(raw[: summary.root.body_start])
    body = body_text(raw, summary)
    return SearchableText(
        fold_for_search(headers)[:MAX_INDEXED_CHARS],
        fold_for_search(body)[:MAX_INDEXED_CHARS],
        fold_exact(headers)[:MAX_INDEXED_CHARS],
        fold_exact(body)[:MAX_INDEXED_CHARS],
    )


_ADD_TEXTS = PreparedRows(
    MessageText.__table__,  # type: ignore[attr-defined]
    ("blob_sha256", "headers", "body"),
    lambda _dialect, statement: statement.on_conflict_do_nothing(index_elements=["blob_sha256"]),
)
_ADD_EXACT_TEXTS = PreparedRows(
    MessageTextExact.__table__,  # type: ignore[attr-defined]
    ("blob_sha256", "headers", "body"),
    lambda _dialect, statement: statement.on_conflict_do_nothing(index_elements=["blob_sha256"]),
)


def add_texts(session: Session, texts: list[tuple[str, SearchableText]]) -> None:
    """Store the text of many contents: (sha256, text) each, distinct."""
    _ADD_TEXTS.execute(
        session,
        [{"blob_sha256": sha, "headers": text.headers, "body": text.body} for sha, text in texts],
    )
    _ADD_EXACT_TEXTS.execute(
        session,
        [
            {"blob_sha256": sha, "headers": text.headers_exact, "body": text.body_exact}
            for sha, text in texts
        ],
    )


def _fts_phrase(needle: str) -> str:
    # An FTS5 string: double quotes inside are doubled (sqlite.org/fts5.html 3.1).
    return '"' + needle.replace('"', '""') + '"'


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Folders up to this many messages are searched by scanning their indexed text (a few
# microseconds a message, in the database); larger ones ask the index. The index's cost grows
# with the matches in every account's mail, not with the folder: a common phrase costs tens of
# milliseconds on 20,000 messages server-wide, while 1,000 messages scan in about 5.
SCAN_FOLDER_MAX = 2000

# SQLite: every message_text row with an id up to this is in message_text_fts, and none above
# it is (migration 0009; storage/text_indexer.py moves it up).
INDEXED_UPTO = "(SELECT indexed_upto FROM search_index_state)"


def matching_uids(
    session: Session,
    folder_id: int,
    needle: str,
    field: TextField,
    folder_size: int | None = None,
    exact: str | None = None,
) -> set[int]:
    """UIDs in ``folder_id`` whose text contains ``needle`` (already folded, see fold_query).

    ``folder_size`` is the folder's message count if the caller knows it (it picks the plan).
    ``exact`` (text_fold.exact_query of a key typed with diacritics) must then be in the text
    with its diacritics too: the index finds the candidates, ``MessageTextExact`` confirms them.
    """
    if not needle.strip():
        # An empty or blank key matches every message (every text contains "").
        return {int(row[0]) for row in _FOLDER_UIDS.all(session, {"folder": folder_id})}
    if len(needle) < TRIGRAM:
        return _scan_folder(session, folder_id, needle, field, exact)
    if folder_size is None:
        row = _FOLDER_SIZE.first(session, {"folder": folder_id})
        folder_size = int(row[0]) if row is not None else 0
    if folder_size <= SCAN_FOLDER_MAX:
        return _scan_folder(session, folder_id, needle, field, exact)
    return set(_index_plan(session, folder_id, needle, field, exact))


def _index_plan(
    session: Session, folder_id: int, needle: str, field: TextField, exact: str | None = None
) -> list[int]:
    """The index plan's UIDs: one per matching message, indexed or not yet."""
    # SQLite: the FTS phrase for the index and the LIKE pattern for the rows not indexed yet;
    # PostgreSQL's statement takes only the pattern.
    column = "body" if field is TextField.BODY else "{headers body}"
    params = {
        "folder": folder_id,
        "match": f"{column} : {_fts_phrase(needle)}",
        "pattern": _like_pattern(needle),
    }
    if exact is not None:
        params["exact"] = exact
    statement = _INDEXED[field, exact is not None]
    return [int(row[0]) for row in statement.all(session, params)]


def _indexed(field: TextField, exact: bool) -> Prepared:
    """The index's matching texts, then this folder's messages of those texts.

    The matches are materialised first: left to choose, SQLite's planner walks the folder and
    probes the index once per message, which is minutes on a 100,000-message folder with a
    common phrase. "+m.folder_id" keeps it on the blob index for the join.

    On SQLite the FTS table holds only the rows up to the indexer's watermark
    (storage/text_indexer.py); the rows above it, the few the indexer has not reached yet, are
    taken by id range, kept to this folder's messages, and only those are scanned with the
    scan plan's condition. One statement reads the index, the watermark and the tail in one
    snapshot, so each text is counted exactly once, indexed or not. On PostgreSQL the same
    holds with the ``indexed`` mark in place of the watermark.
    """

    def build(dialect: str) -> TextClause:
        joined = _EXACT_JOIN if exact else ""
        confirmed = _exact_condition(field, dialect) if exact else ""
        condition = _like_condition(field) + confirmed
        if dialect == "sqlite":
            return text(
                "WITH hits AS MATERIALIZED (SELECT rowid AS id FROM message_text_fts "
                "WHERE message_text_fts MATCH :match), "
                "tail AS MATERIALIZED (SELECT m.uid, t.id FROM message_text t "
                "JOIN message m ON m.blob_sha256 = t.blob_sha256 "
                f"WHERE t.id > {INDEXED_UPTO} AND +m.folder_id = :folder) "
                "SELECT m.uid FROM hits JOIN message_text t ON t.id = hits.id "
                f"JOIN message m ON m.blob_sha256 = t.blob_sha256{joined} "
                f"WHERE +m.folder_id = :folder{confirmed} "
                "UNION ALL "
                f"SELECT tail.uid FROM tail JOIN message_text t ON t.id = tail.id{joined} "
                f"WHERE {condition}"
            )
        # PostgreSQL: LIKE answered by the partial pg_trgm GIN indexes over the indexed rows,
        # and by a scan of the rows not indexed yet (found by their own partial index).
        return text(
            f"WITH hits AS MATERIALIZED (SELECT t.blob_sha256 FROM message_text t{joined} "
            f"WHERE t.indexed AND {condition} "
            f"UNION ALL SELECT t.blob_sha256 FROM message_text t{joined} "
            f"WHERE NOT t.indexed AND {condition}) "
            "SELECT m.uid FROM hits JOIN message m ON m.blob_sha256 = hits.blob_sha256 "
            "WHERE m.folder_id = :folder"
        )

    return Prepared(build)


def _scan(field: TextField, exact: bool) -> Prepared:
    return Prepared(
        lambda dialect: text(
            "SELECT m.uid FROM message m JOIN message_text t ON t.blob_sha256 = m.blob_sha256"
            + (_EXACT_JOIN if exact else "")
            + f" WHERE m.folder_id = :folder AND {_like_condition(field)}"
            + (_exact_condition(field, dialect) if exact else "")
        )
    )


_FOLDER_UIDS = Prepared(lambda _dialect: text("SELECT uid FROM message WHERE folder_id = :folder"))
_FOLDER_SIZE = Prepared(
    lambda _dialect: text("SELECT count(*) FROM message WHERE folder_id = :folder")
)


def _scan_folder(
    session: Session, folder_id: int, needle: str, field: TextField, exact: str | None
) -> set[int]:
    """The folder's indexed text, scanned (never the message bytes)."""
    params = {"folder": folder_id, "pattern": _like_pattern(needle)}
    if exact is not None:
        params["exact"] = exact
    statement = _SCAN[field, exact is not None]
    return {int(row[0]) for row in statement.all(session, params)}


def _like_condition(field: TextField) -> str:
    if field is TextField.BODY:
        return "t.body LIKE :pattern ESCAPE '\\'"
    return "(t.headers LIKE :pattern ESCAPE '\\' OR t.body LIKE :pattern ESCAPE '\\')"


# The exact text of a candidate, if it has one (texts stored before migration 0014 have none).
_EXACT_JOIN = " LEFT JOIN message_text_exact e ON e.blob_sha256 = t.blob_sha256"


def _exact_condition(field: TextField, dialect: str) -> str:
    """An " AND ..." clause: the exact text holds the key with its diacritics. Texts from before
    migration 0014 have no exact text and pass on the folded match alone. A plain substring test
    (instr, strpos) is cheaper than LIKE over long texts."""
    find = "instr({}, :exact)" if dialect == "sqlite" else "strpos({}, :exact)"
    body = find.format("e.body") + " > 0"
    if field is TextField.BODY:
        return f" AND (e.blob_sha256 IS NULL OR {body})"
    headers = find.format("e.headers") + " > 0"
    return f" AND (e.blob_sha256 IS NULL OR {headers} OR {body})"


# By (field, with the exact-diacritics filter).
_INDEXED = {(f, e): _indexed(f, e) for f in TextField for e in (False, True)}
_SCAN = {(f, e): _scan(f, e) for f in TextField for e in (False, True)}
