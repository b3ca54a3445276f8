"""\\Recent (RFC 3501 2.3.2): which messages an IMAP4rev1 session is the first to see.

A folder keeps ``first_recent_uid``, the first UID that no session has claimed. A read-write
SELECT claims every UID below UIDNEXT, and a selected session claims the new messages it is
about to announce; a claim moves the mark up under the folder's row lock, so each message is
recent in exactly one session (like Dovecot's ``first_recent_uid`` index header). EXAMINE and
STATUS only look. IMAP4rev2 dropped \\Recent; its sessions never claim.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.mailbox_ops import lock_folder
from storage.models import Folder, Message


def claim_recent(session: Session, folder_id: int, below: int) -> int:
    """Claim the UIDs from the folder's mark up to ``below`` (exclusive); returns the old mark.

    The caller's recent messages are those with ``old mark <= uid < below``.
    """
    folder = lock_folder(session, folder_id)
    first = folder.first_recent_uid
    if below > first:
        folder.first_recent_uid = below
        session.add(folder)
    return first


def first_recent_uid(session: Session, folder_id: int) -> int:
    """The folder's mark: UIDs from it on are recent for the next session that claims them."""
    mark = session.exec(select(Folder.first_recent_uid).where(Folder.id == folder_id)).first()
    return mark if mark is not None else 1


def count_recent(session: Session, folder_id: int) -> int:
    """STATUS RECENT: messages no session has claimed yet."""
    mark = first_recent_uid(session, folder_id)
    query = select(func.count()).where(Message.folder_id == folder_id, col(Message.uid) >= mark)
    return int(session.exec(query).one())
