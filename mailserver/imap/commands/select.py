"""SELECT, EXAMINE (RFC 9051 6.3.2-6.3.3, RFC 7162 CONDSTORE/QRESYNC), CLOSE, UNSELECT.

SELECT reads a snapshot of the folder's UIDs while the session buffers changes committed in
the meantime; changes already in the snapshot are recognised and not announced twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import BadCommand, CommandFailed
from mailserver.imap.selected import SelectedFolder, flags_responses
from storage.mailbox_ops import expunge
from storage.message_queries import (
    FolderSnapshot,
    changed_since,
    find_folder,
    folder_snapshot,
    message_rows,
    vanished_since,
)
from storage.recent import claim_recent, first_recent_uid

if TYPE_CHECKING:
    from mailserver.imap.session import Session


async def _unselect(session: Session, *, expunge_deleted: bool) -> None:
    selected = session.selected
    if selected is None:
        return
    if expunge_deleted and not selected.read_only:
        folder_id = selected.folder_id
        # RFC 3501 6.4.2: CLOSE expunges silently: no EXPUNGE responses are sent.
        await session.store.write(lambda s: expunge(s, folder_id))
    session.finish_select(None)


async def select(session: Session, command: p.Select) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    if command.qresync is not None and not session.qresync:
        # RFC 7162 3.2.5: QRESYNC parameters need ENABLE QRESYNC first.
        raise BadCommand("QRESYNC is not enabled")
    if session.selected is not None:
        await _unselect(session, expunge_deleted=False)
        if session.qresync or session.rev2:
            # RFC 7162 3.2.11, RFC 9051 7.1: tell the client where one mailbox's responses end.
            session.send(r.untagged_ok("Previous mailbox is now closed", r.ResponseCode("CLOSED")))
    if command.condstore:
        session.enabled.add("CONDSTORE")

    def load(s: DBSession) -> tuple[FolderSnapshot, int] | None:
        folder = find_folder(s, account.mailbox_id, name)
        if folder is None:
            return None
        snapshot = folder_snapshot(s, folder.id)
        return (snapshot, first_recent_uid(s, folder.id)) if snapshot is not None else None

    session.begin_select()
    recent: set[int] = set()
    try:
        loaded = await session.store.read(load)
        if loaded is not None:
            recent = await _recent_uids(session, command.read_only, *loaded)
    except BaseException:
        session.finish_select(None)
        raise
    if loaded is None:
        session.finish_select(None)
        raise CommandFailed(f"No mailbox named {command.mailbox}", "NONEXISTENT")
    snapshot = loaded[0]
    folder = snapshot.folder
    selected = SelectedFolder(
        folder,
        command.read_only,
        list(snapshot.uids),
        folder.highestmodseq,
        keywords=set(snapshot.keywords),
        recent=recent,
        tells_recent=not session.rev2,
    )
    session.finish_select(selected)

    for line in flags_responses(selected.keywords, command.read_only):
        session.send(line)
    session.send(r.untagged(r.number(selected.exists), b"EXISTS"))
    if not session.rev2:
        # RFC 9051 removed \Recent and the UNSEEN response code; IMAP4rev1 wants both.
        session.send(r.untagged(r.number(len(selected.recent)), b"RECENT"))
    if snapshot.first_unseen_uid is not None and not session.rev2:
        seq = selected.seq_of(snapshot.first_unseen_uid)
        if seq is not None:
            session.send(r.untagged_ok("First unseen", r.ResponseCode("UNSEEN", (seq,))))
    session.send(r.untagged_ok("UIDs valid", r.ResponseCode("UIDVALIDITY", (folder.uidvalidity,))))
    session.send(r.untagged_ok("Predicted next UID", r.ResponseCode("UIDNEXT", (folder.uidnext,))))
    if session.condstore:
        session.send(
            r.untagged_ok("Highest", r.ResponseCode("HIGHESTMODSEQ", (folder.highestmodseq,)))
        )
    if command.qresync is not None and command.qresync.uidvalidity == folder.uidvalidity:
        await _qresync(session, selected, command.qresync)
    access = "READ-ONLY" if command.read_only else "READ-WRITE"
    return Done(f"{command.name} completed", r.ResponseCode(access))


async def _recent_uids(
    session: Session, read_only: bool, snapshot: FolderSnapshot, first_recent: int
) -> set[int]:
    """This session's \\Recent messages (storage.recent): SELECT claims the unclaimed ones,
    EXAMINE only shows them (as Dovecot does), IMAP4rev2 has none."""
    if session.rev2:
        return set()
    folder_id, uidnext = snapshot.folder.id, snapshot.folder.uidnext
    if not read_only and first_recent < uidnext:
        first_recent = await session.store.write(lambda s: claim_recent(s, folder_id, uidnext))
    return {uid for uid in snapshot.uids if first_recent <= uid < uidnext}


async def _qresync(session: Session, selected: SelectedFolder, params: p.QResyncParams) -> None:
    """RFC 7162 3.2.5.2: VANISHED (EARLIER) and FETCH for what changed since the client's MODSEQ."""
    folder_id = selected.folder_id
    since = params.modseq

    def load(s: DBSession) -> tuple[list[int], list[int]]:
        return vanished_since(s, folder_id, since), changed_since(s, folder_id, since)

    vanished, changed = await session.store.read(load)
    known = params.known_uids.resolve(selected.largest_uid) if params.known_uids else None
    if known is not None:
        vanished = [uid for uid in vanished if uid in known]
    if vanished:
        session.send(r.untagged(b"VANISHED", b"(EARLIER)", r.sequence_set(vanished)))
    rows = await session.store.read(lambda s: message_rows(s, folder_id, changed, False))
    for row in rows:
        seq = selected.seq_of(row.uid)
        if seq is None:
            continue
        items = [
            b"UID",
            r.number(row.uid),
            b"FLAGS",
            r.flag_list(sorted(row.flags)),
            b"MODSEQ",
            r.paren_list([r.number(row.modseq)]),
        ]
        session.send(r.untagged(r.number(seq), b"FETCH", r.paren_list(items)))


async def close(session: Session, command: p.Close) -> Done:
    await _unselect(session, expunge_deleted=True)
    return Done("CLOSE completed")


async def unselect(session: Session, command: p.Unselect) -> Done:
    await _unselect(session, expunge_deleted=False)
    return Done("UNSELECT completed")
