"""STORE and UID STORE (RFC 9051 6.4.6, RFC 7162 3.1.3 UNCHANGEDSINCE).

Without .SILENT the new flags of every addressed message are returned as FETCH responses; with
CONDSTORE on, they carry MODSEQ. Messages refused by UNCHANGEDSINCE are named in
``[MODIFIED set]`` (UIDs for UID STORE, sequence numbers otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from mailserver.imap.sequence import resolve_uids
from storage.mailbox_ops import FlagMode, store_flags

if TYPE_CHECKING:
    from mailserver.imap.session import Session

_MODES = {
    p.StoreMode.REPLACE: FlagMode.REPLACE,
    p.StoreMode.ADD: FlagMode.ADD,
    p.StoreMode.REMOVE: FlagMode.REMOVE,
}


async def store(session: Session, command: p.Store) -> Done:
    selected = session.require_selected()
    if selected.read_only:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    if command.unchanged_since is not None:
        session.enable_condstore()
    uids = resolve_uids(selected, command.sequence_set, command.uid, session.saved_search)
    folder_id = selected.folder_id
    flags = [f for f in command.flags if f != "\\Recent"]
    result = await session.store.write(
        lambda s: store_flags(
            s, folder_id, uids, flags, _MODES[command.mode], command.unchanged_since
        )
    )
    # The flags as this store left them supersede older pending changes of other sessions.
    selected.forget_flag_changes(result.current, told=not command.silent)
    for _, _, flags_now in result.updated:
        for line in selected.announce_keywords(flags_now):
            session.send(line)
    changed = {uid for uid, _, _ in result.updated}
    if not command.silent or (session.condstore and changed):
        # The flags as this store left them (read in its own transaction).
        for uid, modseq, flags_now in result.current:
            seq = selected.seq_of(uid)
            # RFC 7162 3.1.3: .SILENT still reports MODSEQ of the messages it changed.
            if seq is None or (command.silent and uid not in changed):
                continue
            items: list[bytes] = []
            if not command.silent:
                items += [b"FLAGS", r.flag_list(selected.flags_with_recent(uid, flags_now))]
            if command.uid:
                items += [b"UID", r.number(uid)]
            if session.condstore:
                items += [b"MODSEQ", r.paren_list([r.number(modseq)])]
            session.send(r.untagged(r.number(seq), b"FETCH", r.paren_list(items)))
    if result.modified:
        if command.uid:
            numbers = result.modified
        else:
            numbers = [s for s in (selected.seq_of(u) for u in result.modified) if s is not None]
        code = r.ResponseCode("MODIFIED", (r.sequence_set(numbers),))
        return Done("Conditional STORE failed for some messages", code)
    return Done(f"{'UID ' if command.uid else ''}STORE completed")
