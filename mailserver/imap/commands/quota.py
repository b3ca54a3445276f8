"""GETQUOTA and GETQUOTAROOT (RFC 9208): one quota root per account, "".

SETQUOTA is refused: quotas are an administrator's decision (admin API / CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from storage.message_queries import find_folder, message_count, quota_usage

if TYPE_CHECKING:
    from mailserver.imap.session import Session

ROOT = ""


async def _quota_line(session: Session) -> bytes:
    account = session.require_account()

    def load(s: DBSession) -> tuple[int, int, int]:
        usage = quota_usage(s, account.mailbox_id)
        if usage is None:
            raise CommandFailed("Account not found", "UNAVAILABLE")
        return usage.used_bytes, usage.quota_bytes, message_count(s, account.mailbox_id)

    used, limit, _count = await session.store.read(load)
    # RFC 9208 5.1: STORAGE is in units of 1024 octets.
    storage = [b"STORAGE", r.number((used + 1023) // 1024), r.number(limit // 1024)]
    return r.untagged(b"QUOTA", r.quoted(ROOT), r.paren_list(storage))


async def getquota(session: Session, command: p.GetQuota) -> Done:
    if command.root != ROOT:
        raise CommandFailed("No such quota root", "NONEXISTENT")
    session.send(await _quota_line(session))
    return Done("GETQUOTA completed")


async def getquotaroot(session: Session, command: p.GetQuotaRoot) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    folder = await session.store.read(lambda s: find_folder(s, account.mailbox_id, name))
    if folder is None:
        raise CommandFailed(f"No mailbox named {command.mailbox}", "NONEXISTENT")
    session.send(r.untagged(b"QUOTAROOT", session.mailbox_name_out(name), r.quoted(ROOT)))
    session.send(await _quota_line(session))
    return Done("GETQUOTAROOT completed")


async def setquota(session: Session, command: p.SetQuota) -> Done:
    raise CommandFailed("Quotas are set by the administrator", "NOPERM")
