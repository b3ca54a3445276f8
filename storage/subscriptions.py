"""IMAP subscriptions that outlive their folder (RFC 3501 6.3.6, RFC 5258 \\NonExistent).

A subscription of an existing folder is ``Folder.subscribed``. Deleting a subscribed folder
over IMAP keeps its name in ``kept_subscription``, listed until UNSUBSCRIBE; a CREATE of that
name makes the new folder subscribed and drops the kept row (as if the name had stayed).
"""

from __future__ import annotations

from sqlmodel import Session, delete, select

from storage.mailbox_ops import (
    FolderNotFound,
    create_folder,
    delete_folder,
    get_folder,
    normalise_folder_name,
)
from storage.models import Folder, KeptSubscription


def _kept(session: Session, mailbox_id: int, name: str) -> KeptSubscription | None:
    query = select(KeptSubscription).where(
        KeptSubscription.mailbox_id == mailbox_id, KeptSubscription.name == name
    )
    return session.exec(query).first()


def kept_subscriptions(session: Session, mailbox_id: int) -> list[str]:
    """Subscribed names without a folder, sorted."""
    query = select(KeptSubscription.name).where(KeptSubscription.mailbox_id == mailbox_id)
    return sorted(session.exec(query).all())


def delete_keeping_subscription(session: Session, mailbox_id: int, name: str) -> None:
    """IMAP DELETE: the folder goes, its subscription stays (RFC 3501 6.3.6)."""
    name = normalise_folder_name(name)
    subscribed = get_folder(session, mailbox_id, name).subscribed
    delete_folder(session, mailbox_id, name)
    if subscribed and _kept(session, mailbox_id, name) is None:
        session.add(KeptSubscription(mailbox_id=mailbox_id, name=name))


def create_taking_subscription(
    session: Session, mailbox_id: int, name: str, special_use: str | None
) -> Folder:
    """IMAP CREATE: not subscribed, unless the name's subscription was kept."""
    folder = create_folder(session, mailbox_id, name, special_use, subscribed=False)
    kept = _kept(session, mailbox_id, folder.name)
    if kept is not None:
        folder.subscribed = True
        session.add(folder)
        session.delete(kept)
    return folder


def set_subscription(session: Session, mailbox_id: int, name: str, subscribed: bool) -> None:
    """IMAP SUBSCRIBE/UNSUBSCRIBE: of a folder, or (UNSUBSCRIBE, or SUBSCRIBE again) of a
    kept name. SUBSCRIBE of a name that never existed is refused (FolderNotFound)."""
    name = normalise_folder_name(name)
    try:
        folder = get_folder(session, mailbox_id, name, for_update=True)
    except FolderNotFound:
        if _kept(session, mailbox_id, name) is None:
            raise
        if not subscribed:
            session.execute(
                delete(KeptSubscription).where(
                    KeptSubscription.mailbox_id == mailbox_id,  # type: ignore[arg-type]
                    KeptSubscription.name == name,  # type: ignore[arg-type]
                )
            )
        return
    folder.subscribed = subscribed
    session.add(folder)
