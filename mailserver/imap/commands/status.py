"""STATUS (RFC 9051 6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 7889 APPENDLIMIT).

``status_line`` is shared with LIST-STATUS (RFC 5819), which sends the same response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from storage.message_queries import FolderCounts, find_folder, folder_counts
from storage.recent import count_recent

if TYPE_CHECKING:
    from mailserver.imap.session import Session


def status_line(
    session: Session,
    name: str,
    counts: FolderCounts,
    items: tuple[p.StatusItem, ...],
    recent: int = 0,
) -> bytes:
    """`* STATUS name (ITEM value ...)` for one folder; ``recent``: its unclaimed messages."""
    folder = counts.folder
    values = {
        p.StatusItem.MESSAGES: counts.messages,
        p.StatusItem.RECENT: recent,
        p.StatusItem.UIDNEXT: folder.uidnext,
        p.StatusItem.UIDVALIDITY: folder.uidvalidity,
        p.StatusItem.UNSEEN: counts.unseen,
        p.StatusItem.DELETED: counts.deleted,
        p.StatusItem.SIZE: counts.size,
        p.StatusItem.HIGHESTMODSEQ: folder.highestmodseq,
        p.StatusItem.APPENDLIMIT: session.instance.config.imap.max_literal_size,
    }
    data: list[bytes] = []
    for item in dict.fromkeys(items):
        data += [item.value.encode("ascii"), r.number(values[item])]
    return r.untagged(b"STATUS", session.mailbox_name_out(name), r.paren_list(data))


async def status(session: Session, command: p.Status) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    if p.StatusItem.HIGHESTMODSEQ in command.items:
        session.enabled.add("CONDSTORE")

    wants_recent = p.StatusItem.RECENT in command.items

    def load(s: DBSession) -> tuple[FolderCounts, int] | None:
        folder = find_folder(s, account.mailbox_id, name)
        if folder is None:
            return None
        # RECENT: the messages no session has seen yet (storage.recent).
        counts = folder_counts(s, folder.id)
        if counts is None:
            return None
        return counts, count_recent(s, folder.id) if wants_recent else 0

    loaded = await session.store.read(load)
    if loaded is None:
        raise CommandFailed(f"No mailbox named {command.mailbox}", "NONEXISTENT")
    session.send(status_line(session, name, loaded[0], command.items, loaded[1]))
    return Done("STATUS completed")
