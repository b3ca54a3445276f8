"""Read-only queries the IMAP server needs: folder views, message rows, status counts.

Nothing here changes state (that is storage.mailbox_ops' job). Every function takes an open
``Session`` and returns plain frozen dataclasses, so results can cross from the store's reader
threads to the event loop without dragging ORM objects (and their lazy loads) along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from storage.mailbox_ops import parse_flags
from storage.models import ExpungedMessage, Folder, Mailbox, Message

# SQL "IN (...)" lists are cut into chunks of this many values (SQLite's default host
# parameter limit is 32766, PostgreSQL's 65535; smaller chunks keep each query cheap).
IN_CHUNK = 1000


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


@dataclass(frozen=True)
class MessageRow:
    """One message as FETCH and SEARCH see it; ``summary`` only when asked for."""

    uid: int
    modseq: int
    flags: frozenset[str]
    size: int
    internal_date: datetime
    blob_sha256: str
    summary: bytes | None = None


@dataclass(frozen=True)
class SearchRow:
    """The indexed columns SEARCH evaluates (header fields already folded for search)."""

    uid: int
    modseq: int
    flags: frozenset[str]
    size: int
    internal_date: datetime
    sent_date: datetime | None
    subject: str
    from_addr: str
    to_addr: str
    cc_addr: str
    blob_sha256: str


@dataclass(frozen=True)
class QuotaUsage:
    """Storage used and allowed for one account, in octets."""

    used_bytes: int
    quota_bytes: int


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the models store UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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


def _chunks(values: Sequence[int]) -> list[Sequence[int]]:
    return [values[i : i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def find_folder(session: Session, mailbox_id: int, name: str) -> FolderInfo | None:
    """The folder called ``name`` (already normalised) in one account, or None."""
    folder = session.exec(
        select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name == name)
    ).first()
    return _info(folder) if folder is not None else None


def folder_by_id(session: Session, folder_id: int) -> FolderInfo | None:
    folder = session.get(Folder, folder_id)
    return _info(folder) if folder is not None else None


def all_folders(session: Session, mailbox_id: int) -> list[FolderInfo]:
    """Every folder of an account, sorted by name."""
    query = select(Folder).where(Folder.mailbox_id == mailbox_id).order_by(col(Folder.name))
    return [_info(folder) for folder in session.exec(query)]


def folder_snapshot(session: Session, folder_id: int) -> FolderSnapshot | None:
    """UIDs in ascending order, the first unseen UID and the keywords in use."""
    folder = session.get(Folder, folder_id)
    if folder is None:
        return None
    rows = session.exec(
        select(Message.uid, Message.flags)
        .where(Message.folder_id == folder_id)
        .order_by(col(Message.uid))
    ).all()
    uids: list[int] = []
    first_unseen: int | None = None
    keywords: set[str] = set()
    for uid, flags in rows:
        uids.append(uid)
        flag_set = parse_flags(flags)
        if first_unseen is None and "\\Seen" not in flag_set:
            first_unseen = uid
        keywords.update(f for f in flag_set if not f.startswith("\\"))
    return FolderSnapshot(_info(folder), uids, first_unseen, frozenset(keywords))


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
    result: list[MessageRow] = []
    for chunk in _chunks(sorted(uids)):
        columns: list[Any] = [
            Message.uid,
            Message.modseq,
            Message.flags,
            Message.size,
            Message.internal_date,
            Message.blob_sha256,
        ]
        if with_summary:
            columns.append(Message.summary)
        query = sql_select(*columns).where(
            col(Message.folder_id) == folder_id, col(Message.uid).in_(list(chunk))
        )
        for row in session.execute(query.order_by(col(Message.uid))):
            result.append(
                MessageRow(
                    uid=row[0],
                    modseq=row[1],
                    flags=parse_flags(row[2]),
                    size=row[3],
                    internal_date=as_utc(row[4]),
                    blob_sha256=row[5],
                    summary=row[6] if with_summary else None,
                )
            )
    return result


def search_rows(session: Session, folder_id: int) -> list[SearchRow]:
    """Every message of a folder with the columns SEARCH evaluates, in UID order."""
    columns: list[Any] = [
        Message.uid,
        Message.modseq,
        Message.flags,
        Message.size,
        Message.internal_date,
        Message.sent_date,
        Message.subject,
        Message.from_addr,
        Message.to_addr,
        Message.cc_addr,
        Message.blob_sha256,
    ]
    query = (
        sql_select(*columns).where(col(Message.folder_id) == folder_id).order_by(col(Message.uid))
    )
    return [
        SearchRow(
            uid=row[0],
            modseq=row[1],
            flags=parse_flags(row[2]),
            size=row[3],
            internal_date=as_utc(row[4]),
            sent_date=as_utc(row[5]) if row[5] is not None else None,
            subject=row[6],
            from_addr=row[7],
            to_addr=row[8],
            cc_addr=row[9],
            blob_sha256=row[10],
        )
        for row in session.execute(query)
    ]


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
