"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 9051 6.3.4-6.3.8, RFC 6154 CREATE USE).

Names arrive in modified UTF-7 (or UTF-8 once UTF8=ACCEPT is enabled) and are stored as NFC
Unicode with "/" as the hierarchy separator; all changes go through storage.mailbox_ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailserver.imap import protocol as p
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from storage.mailbox_ops import INBOX, SPECIAL_USES, rename_folder
from storage.subscriptions import (
    create_taking_subscription,
    delete_keeping_subscription,
    set_subscription,
)

if TYPE_CHECKING:
    from mailserver.imap.session import Session


async def create(session: Session, command: p.Create) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    if name == INBOX:
        raise CommandFailed("INBOX always exists", "ALREADYEXISTS")
    if len(command.special_use) > 1:
        raise CommandFailed("Only one special-use attribute per folder", "USEATTR")
    special_use = command.special_use[0] if command.special_use else None
    if special_use is not None and special_use not in SPECIAL_USES:
        raise CommandFailed(f"Unsupported special-use attribute {special_use}", "USEATTR")
    # Not subscribed: RFC 3501 6.3.6 leaves subscriptions to the client (Thunderbird and
    # Roundcube SUBSCRIBE after CREATE), and LSUB then lists only what the user chose; a
    # subscription kept from a deleted folder of that name applies again.
    await session.store.write(
        lambda s: create_taking_subscription(s, account.mailbox_id, name, special_use)
    )
    return Done("CREATE completed")


async def delete(session: Session, command: p.Delete) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    if session.selected is not None and session.selected.folder.name == name:
        session.finish_select(None)
    await session.store.write(lambda s: delete_keeping_subscription(s, account.mailbox_id, name))
    return Done("DELETE completed")


async def rename(session: Session, command: p.Rename) -> Done:
    account = session.require_account()
    old = session.mailbox_name_in(command.mailbox)
    new = session.mailbox_name_in(command.new_name)
    await session.store.write(lambda s: rename_folder(s, account.mailbox_id, old, new))
    return Done("RENAME completed")


async def subscribe(session: Session, command: p.Subscribe) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    await session.store.write(lambda s: set_subscription(s, account.mailbox_id, name, True))
    return Done("SUBSCRIBE completed")


async def unsubscribe(session: Session, command: p.Unsubscribe) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    await session.store.write(lambda s: set_subscription(s, account.mailbox_id, name, False))
    return Done("UNSUBSCRIBE completed")
