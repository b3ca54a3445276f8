"""The one API that changes mailbox state: folders, append, flags, expunge, copy, move, quota.

SMTP delivery, IMAP, the admin API, restore and the CLI all call these functions; none writes
message or folder rows of its own. Each function runs inside the caller's write transaction
(a ``Session``), records its changes with ``storage.changes.record`` for publication after commit,
and raises a ``MailboxError`` subclass for anything the caller should report to its client.

Invariants (RFC 3501 2.3.1.1, RFC 7162 3.1): UIDs in a folder strictly increase and are never
reused (UIDNEXT only grows, also across expunge); every change to a message gets a new MODSEQ
above the folder's HIGHESTMODSEQ; a recreated folder gets a new UIDVALIDITY.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from storage.blobs import StoredBlob
from storage.changes import (
    FlagsChanged,
    FolderChanged,
    MessageAdded,
    MessagesExpunged,
    record,
)
from storage.fast_sql import Prepared, PreparedRows
from storage.inline_blobs import insert_inline
from storage.message_index import IndexedMessage
from storage.models import Blob, ExpungedMessage, Folder, Mailbox, Message, utcnow
from storage.search_index import add_texts
from storage.uid_ranges import uid_ranges

HIERARCHY_SEPARATOR = "/"
INBOX = "INBOX"
# Created for every mailbox (RFC 6154 special-use attributes).
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
SPECIAL_USES = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
MAX_FOLDER_NAME = 1000
MAX_FLAGS_PER_MESSAGE = 100


class MailboxError(Exception):
    """A request that cannot be done; its text is fit to show a client."""


class FolderNotFound(MailboxError):
    pass


class FolderExists(MailboxError):
    pass


class FolderNameInvalid(MailboxError):
    pass


class QuotaExceeded(MailboxError):
    pass


class AccountNotFound(MailboxError):
    pass


class FlagMode(StrEnum):
    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


# ---------------------------------------------------------------- flags


def canonical_flag(flag: str) -> str:
    """System flags in their canonical case; keywords kept as given (IMAP keywords are atoms)."""
    for system in SYSTEM_FLAGS:
        if flag.lower() == system.lower():
            return system
    return flag


def parse_flags(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def format_flags(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def normalise_flags(flags: Iterable[str]) -> frozenset[str]:
    result = frozenset(canonical_flag(f) for f in flags if f and f != "\\Recent")
    if len(result) > MAX_FLAGS_PER_MESSAGE:
        raise MailboxError("too many flags on one message")
    return result


# ---------------------------------------------------------------- folders


def normalise_folder_name(name: str) -> str:
    """NFC, no empty levels, INBOX case-insensitive (RFC 3501 5.1)."""
    name = unicodedata.normalize("NFC", name).strip(HIERARCHY_SEPARATOR)
    if not name:
        raise FolderNameInvalid("empty folder name")
    if len(name) > MAX_FOLDER_NAME:
        raise FolderNameInvalid("folder name too long")
    levels = name.split(HIERARCHY_SEPARATOR)
    if any(not level for level in levels):
        raise FolderNameInvalid("empty level in folder name")
    if any(ch in name for ch in "*%\r\n\x00") or any(unicodedata.category(c) == "Cc" for c in name):
        raise FolderNameInvalid("folder name has a forbidden character")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return HIERARCHY_SEPARATOR.join(levels)


def get_folder(session: Session, mailbox_id: int, name: str, for_update: bool = False) -> Folder:
    query = select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name == name)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    folder = session.exec(query).first()
    if folder is None:
        raise FolderNotFound(f"no folder named {name}")
    return folder


def lock_folder(session: Session, folder_id: int) -> Folder:
    """The folder row, locked for this transaction (PostgreSQL; SQLite serialises writers)."""
    # populate_existing: a Folder loaded earlier in this session must be re-read under the lock,
    # or its UIDNEXT/HIGHESTMODSEQ would be stale when another writer got there first.
    query = (
        select(Folder)
        .where(Folder.id == folder_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    folder = session.exec(query).first()
    if folder is None:
        raise FolderNotFound("the folder no longer exists")
    return folder


def list_folders(session: Session, mailbox_id: int) -> list[Folder]:
    query = select(Folder).where(Folder.mailbox_id == mailbox_id).order_by(col(Folder.name))
    return list(session.exec(query))


def _take_uidvalidity(session: Session, mailbox_id: int) -> int:
    mailbox = session.exec(
        select(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if mailbox is None:
        raise AccountNotFound("no such mailbox")
    value = mailbox.next_uidvalidity
    mailbox.next_uidvalidity = value + 1
    session.add(mailbox)
    return value


def create_folder(
    session: Session,
    mailbox_id: int,
    name: str,
    special_use: str | None = None,
    subscribed: bool = True,
) -> Folder:
    """Create ``name`` and any missing parent levels (RFC 3501 6.3.3); ``subscribed``: whether
    they start subscribed (IMAP CREATE leaves that to the client's SUBSCRIBE, as Dovecot does)."""
    name = normalise_folder_name(name)
    if special_use is not None and special_use not in SPECIAL_USES:
        raise MailboxError(f"unknown special-use attribute {special_use}")
    existing = session.exec(select(Folder.name).where(Folder.mailbox_id == mailbox_id)).all()
    taken = set(existing)
    if name in taken:
        raise FolderExists(f"folder {name} already exists")
    levels = name.split(HIERARCHY_SEPARATOR)
    created: Folder | None = None
    for depth in range(1, len(levels) + 1):
        path = HIERARCHY_SEPARATOR.join(levels[:depth])
        if path in taken:
            continue
        folder = Folder(
            mailbox_id=mailbox_id,
            name=path,
            special_use=special_use if path == name else None,
            subscribed=subscribed,
            uidvalidity=_take_uidvalidity(session, mailbox_id),
        )
        session.add(folder)
        session.flush()
        assert folder.id is not None
        record(session, FolderChanged(mailbox_id, folder.id, "created", path))
        created = folder
    assert created is not None
    return created


def create_default_folders(session: Session, mailbox_id: int) -> None:
    """The default folders of an account created in this transaction (it has none yet).

    One insert for all of them, with consecutive UIDVALIDITY values: bulk provisioning creates
    thousands of accounts, and folder-by-folder creation was most of its cost.
    """
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise AccountNotFound("no such mailbox")
    first = mailbox.next_uidvalidity
    mailbox.next_uidvalidity = first + len(DEFAULT_FOLDERS)
    session.add(mailbox)
    folders = [
        Folder(mailbox_id=mailbox_id, name=name, special_use=special_use, uidvalidity=first + i)
        for i, (name, special_use) in enumerate(DEFAULT_FOLDERS)
    ]
    session.add_all(folders)
    session.flush()
    for folder in folders:
        assert folder.id is not None
        record(session, FolderChanged(mailbox_id, folder.id, "created", folder.name))


def rename_folder(session: Session, mailbox_id: int, old: str, new: str) -> None:
    """Rename a folder and its children (RFC 3501 6.3.5), INBOX by moving its messages."""
    old = normalise_folder_name(old)
    new = normalise_folder_name(new)
    source = get_folder(session, mailbox_id, old, for_update=True)
    if session.exec(
        select(Folder.id).where(Folder.mailbox_id == mailbox_id, Folder.name == new)
    ).first():
        raise FolderExists(f"folder {new} already exists")
    if new == old or new.startswith(old + HIERARCHY_SEPARATOR):
        raise FolderNameInvalid("cannot rename a folder into itself")
    if old == INBOX:
        # Renaming INBOX moves its messages to the new folder and leaves INBOX empty.
        target = create_folder(session, mailbox_id, new)
        uids = [m.uid for m in _messages(session, source.id or 0, None)]
        move_messages(session, source, target, uids)
        return
    parent = new.rpartition(HIERARCHY_SEPARATOR)[0]
    if (
        parent
        and not session.exec(
            select(Folder.id).where(Folder.mailbox_id == mailbox_id, Folder.name == parent)
        ).first()
    ):
        create_folder(session, mailbox_id, parent)
    children = session.exec(
        select(Folder).where(
            Folder.mailbox_id == mailbox_id,
            col(Folder.name).startswith(old + HIERARCHY_SEPARATOR, autoescape=True),
        )
    ).all()
    for folder in [source, *children]:
        folder.name = new + folder.name[len(old) :]
        session.add(folder)
        assert folder.id is not None
        record(session, FolderChanged(mailbox_id, folder.id, "renamed", folder.name))


def set_subscribed(session: Session, mailbox_id: int, name: str, subscribed: bool) -> None:
    """IMAP SUBSCRIBE/UNSUBSCRIBE (RFC 3501 6.3.6-6.3.7) of an existing folder."""
    folder = get_folder(session, mailbox_id, normalise_folder_name(name), for_update=True)
    folder.subscribed = subscribed
    session.add(folder)


def delete_folder(session: Session, mailbox_id: int, name: str) -> None:
    """Delete a folder with its messages (RFC 3501 6.3.4; INBOX cannot be deleted).

    A folder with children cannot be deleted here (we do not keep \\Noselect placeholders).
    """
    name = normalise_folder_name(name)
    if name == INBOX:
        raise MailboxError("INBOX cannot be deleted")
    folder = get_folder(session, mailbox_id, name, for_update=True)
    has_children = session.exec(
        select(Folder.id).where(
            Folder.mailbox_id == mailbox_id,
            col(Folder.name).startswith(name + HIERARCHY_SEPARATOR, autoescape=True),
        )
    ).first()
    if has_children:
        raise MailboxError(f"folder {name} has subfolders; delete them first")
    drop_folder(session, folder)


def drop_folder(session: Session, folder: Folder) -> None:
    """Remove a folder row with its messages and tombstones, releasing quota and blobs."""
    assert folder.id is not None
    _release(session, folder.mailbox_id, _messages(session, folder.id, None))
    session.execute(delete(ExpungedMessage).where(col(ExpungedMessage.folder_id) == folder.id))
    session.execute(delete(Message).where(col(Message.folder_id) == folder.id))
    session.delete(folder)
    record(session, FolderChanged(folder.mailbox_id, folder.id, "deleted", folder.name))


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Appended:
    folder_id: int
    uidvalidity: int
    uid: int
    modseq: int


def _insert_for(dialect: str) -> Any:
    """The INSERT of ``dialect`` that has ON CONFLICT."""
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


_MAILBOX = Mailbox.__table__  # type: ignore[attr-defined]
_FOLDER = Folder.__table__  # type: ignore[attr-defined]
_BLOB = Blob.__table__  # type: ignore[attr-defined]
_MESSAGE = Message.__table__  # type: ignore[attr-defined]
_EXPUNGED = ExpungedMessage.__table__  # type: ignore[attr-defined]

_CHARGE = Prepared(
    lambda _dialect: (
        update(_MAILBOX)
        .where(_MAILBOX.c.id == bindparam("mailbox_id"))
        .values(used_bytes=_MAILBOX.c.used_bytes + bindparam("size"))
    )
)
_CHARGE_WITHIN_QUOTA = Prepared(
    lambda _dialect: (
        update(_MAILBOX)
        .where(
            _MAILBOX.c.id == bindparam("mailbox_id"),
            _MAILBOX.c.used_bytes + bindparam("size") <= _MAILBOX.c.quota_bytes,
        )
        .values(used_bytes=_MAILBOX.c.used_bytes + bindparam("size"))
    )
)
_MAILBOX_EXISTS = Prepared(
    lambda _dialect: core_select(_MAILBOX.c.id).where(_MAILBOX.c.id == bindparam("mailbox_id"))
)
# The folder's next ``count`` UIDs and MODSEQs in one statement. The UPDATE takes the row lock
# on PostgreSQL (concurrent appends to one folder queue here) and SQLite has a single writer,
# so two messages can never get the same UID.
_ALLOCATE_UIDS = Prepared(
    lambda _dialect: (
        update(_FOLDER)
        .where(_FOLDER.c.id == bindparam("folder_id"))
        .values(
            uidnext=_FOLDER.c.uidnext + bindparam("count"),
            highestmodseq=_FOLDER.c.highestmodseq + bindparam("count"),
        )
        .returning(
            _FOLDER.c.mailbox_id, _FOLDER.c.uidvalidity, _FOLDER.c.uidnext, _FOLDER.c.highestmodseq
        )
    )
)
_MESSAGE_COLUMNS = (
    "folder_id",
    "uid",
    "modseq",
    "flags",
    "internal_date",
    "size",
    "blob_sha256",
    "summary",
    "subject",
    "from_addr",
    "to_addr",
    "cc_addr",
    "sent_date",
    "message_id",
)
_INSERT_MESSAGES = PreparedRows(_MESSAGE, _MESSAGE_COLUMNS)
# Concurrent first references to one content must not collide: an upsert.
_REFERENCE_BLOBS = PreparedRows(
    _BLOB,
    ("sha256", "size", "refcount", "created_at"),
    lambda _dialect, statement: statement.on_conflict_do_update(
        index_elements=["sha256"],
        set_={"refcount": _BLOB.c.refcount + statement.excluded.refcount},
    ),
)
_FOLDER_ID = Prepared(
    lambda _dialect: core_select(_FOLDER.c.id).where(
        _FOLDER.c.mailbox_id == bindparam("mailbox_id"), _FOLDER.c.name == bindparam("name")
    )
)


def _charge_quota(session: Session, mailbox_id: int, size: int, enforce: bool) -> None:
    """Add ``size`` bytes to the mailbox's usage, refusing if it would pass the quota."""
    statement = _CHARGE_WITHIN_QUOTA if enforce else _CHARGE
    if statement.rowcount(session, {"mailbox_id": mailbox_id, "size": size}) == 1:
        return
    if _MAILBOX_EXISTS.first(session, {"mailbox_id": mailbox_id}) is None:
        raise AccountNotFound("no such mailbox")
    raise QuotaExceeded("mailbox is over quota")


def _reference_blobs(session: Session, counts: dict[str, tuple[StoredBlob, int]]) -> None:
    """Count more references: sha256 -> (blob, how many more), in ascending sha256 order; the
    bytes of inline blobs are committed with them (storage.inline_blobs)."""
    now = utcnow()
    ordered = sorted(counts.items())
    _REFERENCE_BLOBS.execute(
        session,
        [
            {"sha256": sha, "size": blob.size, "refcount": count, "created_at": now}
            for sha, (blob, count) in ordered
        ],
    )
    insert_inline(session, [blob for _, (blob, _) in ordered if blob.inline is not None])


def _reference_blob(session: Session, blob: StoredBlob, count: int = 1) -> None:
    """Count ``count`` more references to ``blob``."""
    _reference_blobs(session, {blob.sha256: (blob, count)})


def folder_id_by_name(session: Session, mailbox_id: int, name: str) -> int:
    """The id of ``name`` in the account (the delivery path: no Folder object needed)."""
    row = _FOLDER_ID.first(session, {"mailbox_id": mailbox_id, "name": name})
    if row is None:
        raise FolderNotFound(f"no folder named {name}")
    return int(row[0])


def append_message(
    session: Session,
    folder: Folder,
    blob: StoredBlob,
    indexed: IndexedMessage,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    enforce_quota: bool = True,
) -> Appended:
    """Add one message to ``folder`` and charge its quota."""
    assert folder.id is not None
    return append_to_folder(
        session, folder.mailbox_id, folder.id, blob, indexed, flags, internal_date, enforce_quota
    )


def append_to_folder(
    session: Session,
    mailbox_id: int,
    folder_id: int,
    blob: StoredBlob,
    indexed: IndexedMessage,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    enforce_quota: bool = True,
) -> Appended:
    """Add one message to a folder and charge its quota (``append_many`` of one copy)."""
    copy = NewCopy(mailbox_id, folder_id, blob, indexed, normalise_flags(flags), internal_date)
    return append_many(session, [copy], enforce_quota)[0]


@dataclass(frozen=True)
class NewCopy:
    """One message for one folder (``append_many``)."""

    mailbox_id: int
    folder_id: int
    blob: StoredBlob
    indexed: IndexedMessage
    flags: frozenset[str] = frozenset()  # already normalised
    internal_date: datetime | None = None  # None: now


def append_many(
    session: Session, copies: Sequence[NewCopy], enforce_quota: bool = False
) -> list[Appended]:
    """Append messages and charge their quota: the hot path of every delivery and APPEND.

    A few statements however many copies (prepared on the DBAPI cursor, storage.fast_sql):
    the quota of each mailbox, one UID range per folder (UIDs in the order of ``copies``),
    then one multi-row statement per table. Mailboxes, folders and blobs are touched in
    ascending order, so concurrent transactions on PostgreSQL take their row locks in one
    order. ``enforce_quota`` refuses the whole lot if a mailbox would pass its quota
    (deliveries don't: their quota was judged at RCPT). Returns one ``Appended`` per copy.
    """
    if not copies:
        return []
    session.flush()  # pending ORM changes first, so nothing below is overwritten by a late flush
    sizes: dict[int, int] = {}
    references: dict[str, tuple[StoredBlob, int]] = {}
    texts: dict[str, IndexedMessage] = {}
    by_folder: dict[int, list[int]] = {}
    for index, copy in enumerate(copies):
        sizes[copy.mailbox_id] = sizes.get(copy.mailbox_id, 0) + copy.blob.size
        _, count = references.get(copy.blob.sha256, (copy.blob, 0))
        references[copy.blob.sha256] = (copy.blob, count + 1)
        texts.setdefault(copy.blob.sha256, copy.indexed)
        by_folder.setdefault(copy.folder_id, []).append(index)
    for mailbox_id in sorted(sizes):
        _charge_quota(session, mailbox_id, sizes[mailbox_id], enforce_quota)
    results: list[Appended | None] = [None] * len(copies)
    message_rows: list[dict[str, object]] = []
    now = utcnow()
    for folder_id in sorted(by_folder):
        indexes = by_folder[folder_id]
        row = _ALLOCATE_UIDS.first(session, {"folder_id": folder_id, "count": len(indexes)})
        if row is None:
            raise FolderNotFound("the folder no longer exists")
        mailbox_id, uidvalidity, uidnext, highestmodseq = row
        first_uid, first_modseq = uidnext - len(indexes), highestmodseq - len(indexes) + 1
        for offset, index in enumerate(indexes):
            copy = copies[index]
            uid, modseq = first_uid + offset, first_modseq + offset
            message_rows.append(
                _message_values(
                    folder_id,
                    uid,
                    modseq,
                    copy.flags,
                    copy.blob,
                    copy.indexed,
                    copy.internal_date or now,
                )
            )
            results[index] = Appended(folder_id, uidvalidity, uid, modseq)
            record(session, MessageAdded(mailbox_id, folder_id, uid, modseq, copy.flags))
        _expire_folder(session, folder_id)
    _reference_blobs(session, references)
    add_texts(session, [(sha, indexed.text) for sha, indexed in sorted(texts.items())])
    _INSERT_MESSAGES.execute(session, message_rows)
    return [result for result in results if result is not None]


def _message_values(
    folder_id: int,
    uid: int,
    modseq: int,
    flags: frozenset[str],
    blob: StoredBlob,
    indexed: IndexedMessage,
    internal_date: datetime | None,
) -> dict[str, object]:
    return {
        "folder_id": folder_id,
        "uid": uid,
        "modseq": modseq,
        "flags": format_flags(flags),
        "internal_date": internal_date or utcnow(),
        "size": blob.size,
        "blob_sha256": blob.sha256,
        "summary": indexed.summary,
        "subject": indexed.subject,
        "from_addr": indexed.from_addr,
        "to_addr": indexed.to_addr,
        "cc_addr": indexed.cc_addr,
        "sent_date": indexed.sent_date,
        "message_id": indexed.message_id,
    }


# Message rows as the flag, expunge, copy and move operations need them: plain tuples read by
# prepared statements (storage.fast_sql). Loading ORM objects for a 1,000-message folder to
# touch one of them was most of an EXPUNGE's cost.
class _Row(NamedTuple):
    id: int
    uid: int
    modseq: int
    flags: str
    size: int
    blob_sha256: str


def _row_select() -> Any:
    m = _MESSAGE.c
    return core_select(m.id, m.uid, m.modseq, m.flags, m.size, m.blob_sha256)


def _contains_text(dialect: str, column: Any, needle: Any) -> Any:
    """Exact, case-sensitive substring test (LIKE would treat ``\\`` and ``_`` specially)."""
    position = (
        func.strpos(column, needle) if dialect == "postgresql" else func.instr(column, needle)
    )
    return position > 0


_FOLDER_ROWS = Prepared(
    lambda _dialect: (
        _row_select().where(_MESSAGE.c.folder_id == bindparam("folder_id")).order_by(_MESSAGE.c.uid)
    )
)
_RANGE_ROWS = Prepared(
    lambda _dialect: (
        _row_select()
        .where(
            _MESSAGE.c.folder_id == bindparam("folder_id"),
            _MESSAGE.c.uid >= bindparam("low"),
            _MESSAGE.c.uid <= bindparam("high"),
        )
        .order_by(_MESSAGE.c.uid)
    )
)
# Rows whose flags text contains the flag: a superset (``\Deleted`` is also in ``\DeletedX``),
# checked exactly in Python.
_FLAGGED_ROWS = Prepared(
    lambda dialect: (
        _row_select()
        .where(
            _MESSAGE.c.folder_id == bindparam("folder_id"),
            _contains_text(dialect, _MESSAGE.c.flags, bindparam("flag", type_=String)),
        )
        .order_by(_MESSAGE.c.uid)
    )
)
_LOCK_FOLDER = Prepared(
    lambda _dialect: (
        core_select(_FOLDER.c.mailbox_id, _FOLDER.c.highestmodseq)
        .where(_FOLDER.c.id == bindparam("folder_id"))
        .with_for_update()
    )
)
_SET_HIGHESTMODSEQ = Prepared(
    lambda _dialect: (
        update(_FOLDER)
        .where(_FOLDER.c.id == bindparam("folder_id"))
        .values(highestmodseq=bindparam("modseq", type_=BigInteger))
    )
)
_UPDATE_FLAGS = Prepared(
    lambda _dialect: (
        update(_MESSAGE)
        .where(_MESSAGE.c.id == bindparam("message_id"))
        .values(
            flags=bindparam("flags", type_=String), modseq=bindparam("modseq", type_=BigInteger)
        )
    )
)
_DELETE_MESSAGE = Prepared(
    lambda _dialect: delete(_MESSAGE).where(_MESSAGE.c.id == bindparam("message_id"))
)
_INSERT_TOMBSTONE = Prepared(
    lambda _dialect: insert(_EXPUNGED).values(
        folder_id=bindparam("folder_id", type_=Integer),
        uid=bindparam("uid", type_=BigInteger),
        modseq=bindparam("modseq", type_=BigInteger),
    )
)
_RELEASE_QUOTA = Prepared(
    lambda _dialect: (
        update(_MAILBOX)
        .where(_MAILBOX.c.id == bindparam("mailbox_id"))
        .values(
            used_bytes=case(
                (_MAILBOX.c.used_bytes - bindparam("size", type_=BigInteger) < 0, 0),
                else_=_MAILBOX.c.used_bytes - bindparam("size", type_=BigInteger),
            )
        )
    )
)
_UNREFERENCE_BLOB = Prepared(
    lambda _dialect: (
        update(_BLOB)
        .where(_BLOB.c.sha256 == bindparam("sha256"))
        .values(refcount=_BLOB.c.refcount - bindparam("count", type_=Integer))
    )
)
# A copy is the source row with a new folder, UID and MODSEQ, copied inside the database.
_COPIED_COLUMNS = tuple(c for c in _MESSAGE_COLUMNS if c not in ("folder_id", "uid", "modseq"))
_COPY_MESSAGE = Prepared(
    lambda _dialect: insert(_MESSAGE).from_select(
        ["folder_id", "uid", "modseq", *_COPIED_COLUMNS],
        core_select(
            cast(bindparam("target_id", type_=Integer), Integer),
            cast(bindparam("uid", type_=BigInteger), BigInteger),
            cast(bindparam("modseq", type_=BigInteger), BigInteger),
            *(_MESSAGE.c[name] for name in _COPIED_COLUMNS),
        ).where(_MESSAGE.c.id == bindparam("message_id")),
    )
)


def _messages(session: Session, folder_id: int, uids: Iterable[int] | None) -> list[_Row]:
    """The folder's rows (only those of ``uids`` if given), in UID order."""
    if uids is None:
        return [_Row(*row) for row in _FOLDER_ROWS.all(session, {"folder_id": folder_id})]
    wanted = set(uids)
    rows: list[_Row] = []
    for low, high in uid_ranges(wanted):
        for row in _RANGE_ROWS.all(session, {"folder_id": folder_id, "low": low, "high": high}):
            if row[1] in wanted:
                rows.append(_Row(*row))
    return rows


class _LockedFolder:
    """A folder's row, locked for this transaction (PostgreSQL), and its MODSEQ counter."""

    def __init__(self, session: Session, folder_id: int) -> None:
        # Pending ORM changes first: the statements below bypass the unit of work.
        session.flush()
        row = _LOCK_FOLDER.first(session, {"folder_id": folder_id})
        if row is None:
            raise FolderNotFound("the folder no longer exists")
        self.id = folder_id
        self.mailbox_id: int = row[0]
        self.highestmodseq: int = row[1]
        self._taken = False

    def next_modseq(self) -> int:
        self.highestmodseq += 1
        self._taken = True
        return self.highestmodseq

    def save(self, session: Session) -> None:
        if self._taken:
            _SET_HIGHESTMODSEQ.execute(
                session, {"folder_id": self.id, "modseq": self.highestmodseq}
            ).close()
            _expire_folder(session, self.id)


def _expire_folder(session: Session, folder_id: int) -> None:
    """A Folder object loaded earlier in this session holds counters changed behind its back."""
    loaded = session.identity_map.get(identity_key(Folder, folder_id))
    if loaded is not None:
        session.expire(loaded)


@dataclass(frozen=True)
class FlagResult:
    updated: list[tuple[int, int, frozenset[str]]]  # (uid, modseq, flags)
    modified: list[int]  # UIDs refused by UNCHANGEDSINCE (RFC 7162 3.1.3)
    # (uid, modseq, flags) after the store of every addressed message not refused, in UID order
    current: list[tuple[int, int, frozenset[str]]] = field(default_factory=list)


def store_flags(
    session: Session,
    folder_id: int,
    uids: Sequence[int],
    flags: Iterable[str],
    mode: FlagMode,
    unchanged_since: int | None = None,
) -> FlagResult:
    """Replace, add or remove flags; only messages whose flags really change get a new MODSEQ."""
    folder = _LockedFolder(session, folder_id)
    wanted = normalise_flags(flags)
    updated: list[tuple[int, int, frozenset[str]]] = []
    modified: list[int] = []
    writes: list[dict[str, object]] = []
    after: list[tuple[int, int, frozenset[str]]] = []
    for row in _messages(session, folder_id, uids):
        if unchanged_since is not None and row.modseq > unchanged_since:
            modified.append(row.uid)
            continue
        current = parse_flags(row.flags)
        if mode is FlagMode.REPLACE:
            new = wanted
        elif mode is FlagMode.ADD:
            new = current | wanted
        else:
            new = current - wanted
        if new == current:
            after.append((row.uid, row.modseq, current))
            continue
        normalise_flags(new)
        modseq = folder.next_modseq()
        writes.append({"message_id": row.id, "flags": format_flags(new), "modseq": modseq})
        updated.append((row.uid, modseq, new))
        after.append((row.uid, modseq, new))
        record(session, FlagsChanged(folder.mailbox_id, folder_id, row.uid, modseq, new))
    _UPDATE_FLAGS.execute_many(session, writes)
    folder.save(session)
    return FlagResult(updated, modified, after)


def _release(session: Session, mailbox_id: int, rows: Sequence[_Row]) -> None:
    """Give back the quota and blob references held by ``rows`` (being removed)."""
    if not rows:
        return
    total = sum(row.size for row in rows)
    _RELEASE_QUOTA.execute(session, {"mailbox_id": mailbox_id, "size": total}).close()
    per_blob: dict[str, int] = {}
    for row in rows:
        per_blob[row.blob_sha256] = per_blob.get(row.blob_sha256, 0) + 1
    _UNREFERENCE_BLOB.execute_many(
        session, [{"sha256": sha256, "count": count} for sha256, count in per_blob.items()]
    )


def expunge(session: Session, folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
    """Remove messages flagged \\Deleted (limited to ``uids`` for UID EXPUNGE, RFC 4315)."""
    folder = _LockedFolder(session, folder_id)
    limit = set(uids) if uids is not None else None
    doomed = [
        _Row(*row)
        for row in _FLAGGED_ROWS.all(session, {"folder_id": folder_id, "flag": "\\Deleted"})
        if (limit is None or row[1] in limit) and "\\Deleted" in parse_flags(row[3])
    ]
    return _remove(session, folder, doomed)


def _remove(session: Session, folder: _LockedFolder, doomed: Sequence[_Row]) -> list[int]:
    if not doomed:
        return []
    modseq = folder.next_modseq()
    _release(session, folder.mailbox_id, doomed)
    removed = [row.uid for row in doomed]
    _DELETE_MESSAGE.execute_many(session, [{"message_id": row.id} for row in doomed])
    _INSERT_TOMBSTONE.execute_many(
        session, [{"folder_id": folder.id, "uid": uid, "modseq": modseq} for uid in removed]
    )
    folder.save(session)
    record(session, MessagesExpunged(folder.mailbox_id, folder.id, tuple(removed), modseq))
    return removed


def _copy_rows(
    session: Session, rows: Sequence[_Row], target_id: int, enforce_quota: bool
) -> list[tuple[int, int]]:
    """Insert copies of ``rows`` into the target folder (new UIDs and MODSEQs, same blobs)."""
    if not rows:
        return []
    session.flush()
    target = session.get(Folder, target_id)
    if target is None:
        raise FolderNotFound("the folder no longer exists")
    _charge_quota(session, target.mailbox_id, sum(row.size for row in rows), enforce_quota)
    allocated = _ALLOCATE_UIDS.first(session, {"folder_id": target_id, "count": len(rows)})
    if allocated is None:
        raise FolderNotFound("the folder no longer exists")
    _expire_folder(session, target_id)
    mailbox_id, _uidvalidity, uidnext, highestmodseq = allocated
    first_uid = uidnext - len(rows)
    first_modseq = highestmodseq - len(rows) + 1
    pairs: list[tuple[int, int]] = []
    inserts: list[dict[str, object]] = []
    per_blob: dict[str, tuple[int, int]] = {}
    for index, row in enumerate(rows):
        new_uid = first_uid + index
        modseq = first_modseq + index
        inserts.append(
            {"target_id": target_id, "uid": new_uid, "modseq": modseq, "message_id": row.id}
        )
        count = per_blob.get(row.blob_sha256, (row.size, 0))[1]
        per_blob[row.blob_sha256] = (row.size, count + 1)
        pairs.append((row.uid, new_uid))
        record(
            session, MessageAdded(mailbox_id, target_id, new_uid, modseq, parse_flags(row.flags))
        )
    _COPY_MESSAGE.execute_many(session, inserts)
    for sha256, (size, count) in per_blob.items():
        _reference_blob(session, StoredBlob(sha256, size), count)
    return pairs


def copy_messages(
    session: Session,
    source: Folder,
    target: Folder,
    uids: Sequence[int],
    enforce_quota: bool = True,
) -> list[tuple[int, int]]:
    """Copy messages (same blobs, new UIDs, flags kept); returns (source UID, new UID) pairs."""
    assert source.id is not None and target.id is not None
    session.flush()
    return _copy_rows(session, _messages(session, source.id, uids), target.id, enforce_quota)


def move_messages(
    session: Session, source: Folder, target: Folder, uids: Sequence[int]
) -> list[tuple[int, int]]:
    """MOVE (RFC 6851): copy then expunge the originals, in one transaction."""
    assert source.id is not None and target.id is not None
    _LockedFolder(session, source.id)
    rows = _messages(session, source.id, uids)
    # Within one account a move frees what it takes, so it cannot push the quota over.
    same_account = source.mailbox_id == target.mailbox_id
    pairs = _copy_rows(session, rows, target.id, enforce_quota=not same_account)
    # Read again after the copy: a move into the same folder has just raised its MODSEQ.
    _remove(session, _LockedFolder(session, source.id), rows)
    return pairs
