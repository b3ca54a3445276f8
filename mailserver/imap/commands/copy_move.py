"""COPY, MOVE and their UID forms (RFC 9051 6.4.7-6.4.8, RFC 6851, RFC 4315 COPYUID).

MOVE is one transaction in storage (copy, then expunge the originals); its EXPUNGE responses
reach this session through the change bus, and RFC 6851 section 4.3 wants COPYUID sent before
them, in an untagged OK.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession
from sqlmodel import col, select

from filters.training import lesson_for_move
from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from mailserver.imap.sequence import resolve_uids
from storage.mailbox_ops import (
    FolderNotFound,
    copy_messages,
    get_folder,
    lock_folder,
    move_messages,
)
from storage.models import Message

if TYPE_CHECKING:
    from mailserver.imap.session import Session

log = logging.getLogger(__name__)
# Training tasks in flight (kept referenced so they are not collected before they finish).
_TRAINING: set[asyncio.Task[object]] = set()


@dataclass(frozen=True)
class Transferred:
    uidvalidity: int
    pairs: list[tuple[int, int]]
    source_use: str | None
    target_use: str | None
    digests: list[str]  # blob digests of the transferred messages, for Junk training


async def _transfer(session: Session, command: p.Copy | p.Move, move: bool) -> Done:
    selected = session.require_selected()
    account = session.require_account()
    if move and selected.read_only:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    target_name = session.mailbox_name_in(command.mailbox)
    uids = resolve_uids(selected, command.sequence_set, command.uid, session.saved_search)
    verb = ("UID " if command.uid else "") + ("MOVE" if move else "COPY")
    source_id = selected.folder_id

    def job(s: DBSession) -> Transferred:
        try:
            target = get_folder(s, account.mailbox_id, target_name)
        except FolderNotFound as exc:
            # RFC 9051 6.4.7: TRYCREATE tells the client the target could be created.
            raise CommandFailed(f"No mailbox named {command.mailbox}", "TRYCREATE") from exc
        source = lock_folder(s, source_id)
        digests: list[str] = []
        if lesson_for_move(source.special_use, target.special_use) is not None:
            digests = list(
                s.exec(
                    select(Message.blob_sha256).where(
                        Message.folder_id == source_id, col(Message.uid).in_(uids)
                    )
                )
            )
        if move:
            pairs = move_messages(s, source, target, uids)
        else:
            pairs = copy_messages(s, source, target, uids)
        return Transferred(
            target.uidvalidity, pairs, source.special_use, target.special_use, digests
        )

    if not uids:
        return Done(f"{verb} completed (no messages)")
    done = await session.store.write(job)
    uidvalidity, pairs = done.uidvalidity, done.pairs
    _train_in_background(session, done)
    if not pairs:
        return Done(f"{verb} completed (no messages)")
    code = r.ResponseCode(
        "COPYUID",
        (
            uidvalidity,
            r.sequence_set([old for old, _ in pairs]),
            r.sequence_set([new for _, new in pairs]),
        ),
    )
    if move:
        session.send(r.untagged_ok("Moved", code))
        return Done(f"{verb} completed")
    return Done(f"{verb} completed", code)


def _train_in_background(session: Session, done: Transferred) -> None:
    """Moving into or out of Junk teaches spamd (SPAMC TELL), after the commit, off the reply."""
    trainer = session.instance.junk_trainer
    if trainer is None or not done.digests or not done.pairs:
        return
    task: asyncio.Task[object] = asyncio.create_task(
        trainer.note_transfer(session.store, done.digests, done.source_use, done.target_use)
    )
    _TRAINING.add(task)

    def finished(task: asyncio.Task[object]) -> None:
        _TRAINING.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("event=junk_training_failed error=%r", task.exception())

    task.add_done_callback(finished)


async def copy(session: Session, command: p.Copy) -> Done:
    return await _transfer(session, command, move=False)


async def move(session: Session, command: p.Move) -> Done:
    return await _transfer(session, command, move=True)
