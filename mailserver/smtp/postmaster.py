"""postmaster@ every local domain (RFC 5321 4.5.1: every domain must accept it).

A domain whose postmaster is not a mailbox, alias or group of its own gets a mailbox
``postmaster@<domain>`` the first time something is addressed to it (an RCPT at MX or
submission, or an alert of the server): mail to postmaster is never refused and never lost.
The mailbox has no password (as an account created with a set-password link): an admin reads
it after setting one through the admin API, or replaces it with an alias to the admins.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session as DBSession
from sqlmodel import select

from mailserver.instance import Instance
from storage.accounts import AccountExists, create_mailbox, find_mailbox
from storage.models import Alias, MailGroup

log = logging.getLogger(__name__)

POSTMASTER = "postmaster"
ACTOR = "system:postmaster"


def is_postmaster(local_part: str) -> bool:
    """RFC 5321 4.1.1.3: "Postmaster" in any case."""
    return local_part.lower() == POSTMASTER


def _exists(db: DBSession, address: str) -> bool:
    return (
        find_mailbox(db, address) is not None
        or db.exec(select(Alias.id).where(Alias.address == address)).first() is not None
        or db.exec(select(MailGroup.id).where(MailGroup.address == address)).first() is not None
    )


async def ensure_postmaster(instance: Instance, domain: str) -> None:
    """Create the mailbox ``postmaster@<domain>`` unless the address exists (``domain`` local,
    in its stored form)."""
    address = f"{POSTMASTER}@{domain}"
    store = instance.store
    if await store.read(lambda db: _exists(db, address)):
        return
    quota = instance.config.storage.default_quota_mb * 1024 * 1024

    def create(db: DBSession) -> bool:
        if _exists(db, address):
            return False
        create_mailbox(db, ACTOR, address, "", quota, display_name="Postmaster")
        return True

    try:
        created = await store.write(create)
    except (AccountExists, IntegrityError):
        return  # created at the same moment by another session
    if created:
        log.info("event=postmaster_created address=%s", address)
