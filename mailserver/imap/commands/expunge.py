"""EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, RFC 4315 2.1).

The removal is committed first; the EXPUNGE (or VANISHED) responses then come from the change
bus like anyone else's, so this session's view and every other session's follow one path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailserver.imap import protocol as p
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from mailserver.imap.sequence import resolve_uids
from storage.mailbox_ops import expunge as expunge_messages

if TYPE_CHECKING:
    from mailserver.imap.session import Session


async def expunge(session: Session, command: p.Expunge) -> Done:
    selected = session.require_selected()
    if selected.read_only:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    uids: list[int] | None = None
    if command.uid_set is not None:
        uids = resolve_uids(selected, command.uid_set, True, session.saved_search)
        if not uids:
            return Done("UID EXPUNGE completed")
    folder_id = selected.folder_id
    await session.store.write(lambda s: expunge_messages(s, folder_id, uids))
    # The session flushes the resulting EXPUNGE responses before the tagged OK.
    return Done(f"{'UID ' if command.uid else ''}EXPUNGE completed")
