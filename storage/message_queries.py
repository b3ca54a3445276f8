"""Read-only queries the IMAP server needs: folder views, message rows, status counts.

Nothing here changes state (that is storage.mailbox_ops' job). Every function takes an open
``Session`` and returns plain objects (no ORM instances), so results can cross from the store's
reader threads to the event loop without dragging ORM objects (and their lazy loads) along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, bindparam, func
from sqlalchemy import select as sql_select
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from storage.fast_sql import Prepared
from storage.mailbox_ops import parse_flags
from storage.models import ExpungedMessage, Folder, Mailbox, Message
from storage.uid_ranges import uid_ranges


@dataclass(frozen=True)
class FolderInfo:
    """A folder's identity and counters (RFC 3501 2.3.1.1, RFC 7162 3.1.1)."""

    id: int
    mailbox_id: int
    name: str
    special_use: str | None
    subscribed: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True)
class FolderSnapshot:
    """What SELECT needs: the folder, its UIDs in order, and the keywords in use."""

    folder: FolderInfo
    uids: list[int]
    first_unseen_uid: int | None
    keywords: frozenset[str]


@dataclass(frozen=True)
class FolderCounts:
    """STATUS data of one folder."""

    folder: FolderInfo
    messages: int
    unseen: int
    deleted: int
    size: int


class _StoredFlagsAndDate:
    """A message row's common columns; flags and internal date as the database returned them,
    parsed on first use."""

    __slots__ = ("_date", "_flags", "_raw_date", "blob_sha256", "modseq", "size", "uid")

    def __init__(
        self,
        uid: int,
        modseq: int,
        flags: frozenset[str] | str,
        size: int,
        internal_date: datetime | str,
        blob_sha256: str,
    ) -> None:
        self.uid = uid
        self.modseq = modseq
        self._flags = flags
        self.size = size
        self._raw_date = internal_date
        self._date: datetime | None = None
        self.blob_sha256 = blob_sha256

    @property
    def flags(self) -> frozenset[str]:
        flags = self._flags
        if isinstance(flags, str):
            flags = self._flags = parse_flags(flags)
        return flags

    @property
    def internal_date(self) -> datetime:
        if self._date is None:
            self._date = utc_datetime(self._raw_date)
        return self._date


class MessageRow(_StoredFlagsAndDate):
    """One message as FETCH and SEARCH see it; ``summary`` only when asked for.

    Flags and the internal date are kept as the database returned them and parsed on first
    use: FETCH 1:* (UID FLAGS) of a large folder never needs the date.
    """

    __slots__ = ("summary",)

    def __init__(
        self,
        uid: int,
        modseq: int,
        flags: frozenset[str] | str,
        size: int,
        internal_date: datetime | str,
        blob_sha256: str,
        summary: bytes | None = None,
    ) -> None:
        super().__init__(uid, modseq, flags, size, internal_date, blob_sha256)
        self.summary = summary

    def flags_key(self) -> str | frozenset[str]:
        """The flags as stored (text) or as given: a cheap key to cache their encoding by."""
        return self._flags

    def __repr__(self) -> str:
        return f"MessageRow(uid={self.uid}, modseq={self.modseq}, flags={sorted(self.flags)!r})"


class SearchRow(_StoredFlagsAndDate):
    """The indexed columns SEARCH evaluates (header fields already folded for search).

    Flags and dates are parsed on first use, as in MessageRow.
    """

    __slots__ = ("_raw_sent", "_sent", "cc_addr", "from_addr", "subject", "to_addr")

    def __init__(
        self,
        uid: int,
        modseq: int,
        flags: frozenset[str] | str,
        size: int,
        internal_date: datetime | str,
        sent_date: datetime | str | None,
        subject: str,
        from_addr: str,
        to_addr: str,
        cc_addr: str,
        blob_sha256: str,
    ) -> None:
        super().__init__(uid, modseq, flags, size, internal_date, blob_sha256)
        self._raw_sent = sent_date
        self._sent: datetime | None = None
        self.subject = subject
        self.from_addr = from_addr
        self.to_addr = to_addr
        self.cc_addr = cc_addr

    @property
    def sent_date(self) -> datetime | None:
        if self._sent is None and self._raw_sent is not None:
            self._sent = utc_datetime(self._raw_sent)
        return self._sent

    def __repr__(self) -> str:
        return f"SearchRow(uid={self.uid}, modseq={self.modseq})"


@dataclass(frozen=True)
class QuotaUsage:
    """Storage used and allowed for one account, in octets."""

    used_bytes: int
    quota_bytes: int


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the models store UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_SQLITE_DATETIME = DateTime().result_processor(sqlite.dialect(), None)


def utc_datetime(value: datetime | str) -> datetime:
    """A timestamp as the DBAPI returned it, as an aware UTC datetime (as UTCDateTime does)."""
    if isinstance(value, str):  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" text, in UTC
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            assert _SQLITE_DATETIME is not None
            parsed = _SQLITE_DATETIME(value)
            assert isinstance(parsed, datetime)
            value = parsed
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _info(folder: Folder) -> FolderInfo:
    assert folder.id is not None
    return FolderInfo(
        id=folder.id,
        mailbox_id=folder.mailbox_id,
        name=folder.name,
        special_use=folder.special_use,
        subscribed=folder.subscribed,
        uidvalidity=folder.uidvalidity,
        uidnext=folder.uidnext,
        highestmodseq=folder.highestmodseq,
    )


# The statements every IMAP session runs (SELECT, FETCH, STORE, SEARCH) are prepared
# (storage.fast_sql): plain tuples, dates and flags parsed only when used.
_FOLDER = Folder.__table__  # type: ignore[attr-defined]
_MESSAGE = Message.__table__  # type: ignore[attr-defined]


def _folder_select() -> Any:
    f = _FOLDER.c
    return sql_select(
        f.id,
        f.mailbox_id,
        f.name,
        f.special_use,
        f.subscribed,
        f.uidvalidity,
        f.uidnext,
        f.highestmodseq,
    )


def _folder_info(row: Any) -> FolderInfo:
    return FolderInfo(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


_FOLDER_BY_NAME = Prepared(
    lambda _dialect: _folder_select().where(
        _FOLDER.c.mailbox_id == bindparam("mailbox_id"), _FOLDER.c.name == bindparam("name")
    )
)
_FOLDER_BY_ID = Prepared(
    lambda _dialect: _folder_select().where(_FOLDER.c.id == bindparam("folder_id"))
)
_UIDS_AND_FLAGS = Prepared(
    lambda _dialect: (
        sql_select(_MESSAGE.c.uid, _MESSAGE.c.flags)
        .where(_MESSAGE.c.folder_id == bindparam("folder_id"))
        .order_by(_MESSAGE.c.uid)
    )
)
_ROW_COLUMNS = ("uid", "modseq", "flags", "size", "internal_date", "blob_sha256")


def _rows_in_range(columns: Sequence[str]) -> Prepared:
    return Prepared(
        lambda _dialect: (
            sql_select(*(_MESSAGE.c[name] for name in columns))
            .where(
                _MESSAGE.c.folder_id == bindparam("folder_id"),
                _MESSAGE.c.uid >= bindparam("low"),
                _MESSAGE.c.uid <= bindparam("high"),
            )
            .order_by(_MESSAGE.c.uid)
        )
    )


_MESSAGE_ROWS = _rows_in_range(_ROW_COLUMNS)
_MESSAGE_ROWS_WITH_SUMMARY = _rows_in_range((*_ROW_COLUMNS, "summary"))
_SEARCH_ROWS = Prepared(
    lambda _dialect: (
        sql_select(
            *(
                _MESSAGE.c[name]
                for name in (
                    "uid",
                    "modseq",
                    "flags",
                    "size",
                    "internal_date",
                    "sent_date",
                    "subject",
                    "from_addr",
                    "to_addr",
                    "cc_addr",
                    "blob_sha256",
                )
            )
        )
        .where(_MESSAGE.c.folder_id == bindparam("folder_id"))
        .order_by(_MESSAGE.c.uid)
    )
)


def _column_contains(column: str) -> Prepared:
    def build(dialect: str) -> Any:
        # Exact substring, as Python's ``in`` (LIKE would give "_" and "%" a meaning).
        value = _MESSAGE.c[column]
        needle = bindparam("needle", type_=String)
        found = func.strpos(value, needle) if dialect == "postgresql" else func.instr(value, needle)
        return sql_select(_MESSAGE.c.uid).where(
            _MESSAGE.c.folder_id == bindparam("folder_id"), found > 0
        )

    return Prepared(build)


# The folded search columns (storage.message_index), for SEARCH FROM/TO/CC/SUBJECT.
SEARCH_COLUMNS = ("subject", "from_addr", "to_addr", "cc_addr")
_COLUMN_CONTAINS = {column: _column_contains(column) for column in SEARCH_COLUMNS}


def find_folder(session: Session, mailbox_id: int, name: str) -> FolderInfo | None:
    """The folder called ``name`` (already normalised) in one account, or None."""
    row = _FOLDER_BY_NAME.first(session, {"mailbox_id": mailbox_id, "name": name})
    return _folder_info(row) if row is not None else None


def folder_by_id(session: Session, folder_id: int) -> FolderInfo | None:
    row = _FOLDER_BY_ID.first(session, {"folder_id": folder_id})
    return _folder_info(row) if row is not None else None


def all_folders(session: Session, mailbox_id: int) -> list[FolderInfo]:
    """Every folder of an account, sorted by name."""
    query = select(Folder).where(Folder.mailbox_id == mailbox_id).order_by(col(Folder.name))
    return [_info(folder) for folder in session.exec(query)]


def folder_snapshot(session: Session, folder_id: int) -> FolderSnapshot | None:
    """UIDs in ascending order, the first unseen UID and the keywords in use."""
    folder = folder_by_id(session, folder_id)
    if folder is None:
        return None
    uids: list[int] = []
    first_unseen: int | None = None
    keywords: set[str] = set()
    # A folder has few distinct flag texts ("", "\\Seen", ...): each is parsed once.
    seen_texts: dict[str, bool] = {}
    for uid, flags in _UIDS_AND_FLAGS.all(session, {"folder_id": folder_id}):
        uids.append(uid)
        seen = seen_texts.get(flags)
        if seen is None:
            flag_set = parse_flags(flags)
            seen = seen_texts[flags] = "\\Seen" in flag_set
            keywords.update(f for f in flag_set if not f.startswith("\\"))
        if first_unseen is None and not seen:
            first_unseen = uid
    return FolderSnapshot(folder, uids, first_unseen, frozenset(keywords))


def folder_counts(session: Session, folder_id: int) -> FolderCounts | None:
    """Messages, unseen, deleted and total size of one folder (for STATUS)."""
    folder = session.get(Folder, folder_id)
    if folder is None:
        return None
    rows = session.exec(
        select(Message.flags, Message.size).where(Message.folder_id == folder_id)
    ).all()
    unseen = deleted = size = 0
    for flags, message_size in rows:
        flag_set = parse_flags(flags)
        if "\\Seen" not in flag_set:
            unseen += 1
        if "\\Deleted" in flag_set:
            deleted += 1
        size += message_size
    return FolderCounts(_info(folder), len(rows), unseen, deleted, size)


def message_rows(
    session: Session, folder_id: int, uids: Sequence[int], with_summary: bool
) -> list[MessageRow]:
    """The rows of the given UIDs that still exist, in UID order."""
    statement = _MESSAGE_ROWS_WITH_SUMMARY if with_summary else _MESSAGE_ROWS
    wanted = set(uids)
    result: list[MessageRow] = []
    for low, high in uid_ranges(wanted):
        values = {"folder_id": folder_id, "low": low, "high": high}
        for row in statement.all(session, values):
            if row[0] in wanted:
                summary = row[6] if with_summary else None
                if summary is not None and not isinstance(summary, bytes):
                    summary = bytes(summary)
                result.append(MessageRow(row[0], row[1], row[2], row[3], row[4], row[5], summary))
    return result


def search_rows(session: Session, folder_id: int) -> list[SearchRow]:
    """Every message of a folder with the columns SEARCH evaluates, in UID order."""
    return [SearchRow(*row) for row in _SEARCH_ROWS.all(session, {"folder_id": folder_id})]


def uids_with_column_text(session: Session, folder_id: int, column: str, needle: str) -> set[int]:
    """UIDs of the folder whose folded ``column`` (one of SEARCH_COLUMNS) contains ``needle``."""
    values = {"folder_id": folder_id, "needle": needle}
    return {int(row[0]) for row in _COLUMN_CONTAINS[column].all(session, values)}


def changed_since(session: Session, folder_id: int, modseq: int) -> list[int]:
    """UIDs of messages whose MODSEQ is above ``modseq`` (RFC 7162 CHANGEDSINCE)."""
    query = (
        select(Message.uid)
        .where(col(Message.folder_id) == folder_id, col(Message.modseq) > modseq)
        .order_by(col(Message.uid))
    )
    return list(session.exec(query))


def vanished_since(session: Session, folder_id: int, modseq: int) -> list[int]:
    """UIDs expunged after ``modseq`` (RFC 7162 3.2.10 VANISHED (EARLIER))."""
    query = (
        select(ExpungedMessage.uid)
        .where(col(ExpungedMessage.folder_id) == folder_id, col(ExpungedMessage.modseq) > modseq)
        .order_by(col(ExpungedMessage.uid))
    )
    return sorted(set(session.exec(query)))


def quota_usage(session: Session, mailbox_id: int) -> QuotaUsage | None:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        return None
    return QuotaUsage(mailbox.used_bytes, mailbox.quota_bytes)


def message_count(session: Session, mailbox_id: int) -> int:
    """Messages in all folders of an account (RFC 9208 MESSAGE resource)."""
    query = (
        select(func.count())
        .select_from(Message)
        .join(Folder, col(Folder.id) == col(Message.folder_id))
        .where(Folder.mailbox_id == mailbox_id)
    )
    return int(session.exec(query).one())
