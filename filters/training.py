"""Junk training: a user moving a message into or out of Junk teaches spamd (SPAMC TELL).

The IMAP MOVE/COPY code calls ``JunkTrainer.note_transfer`` after the move is committed, with
the moved messages' blob digests and the special-use attributes (RFC 6154) of the two folders,
so renamed folders still count; ``note_move`` does the same for one message already in hand.
Into \\Junk teaches "spam"; out of \\Junk into anything but \\Trash teaches "ham" (a message
deleted from Junk is not thereby good mail). Training never fails the IMAP command:
errors are logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

from filters.metrics import count
from filters.spam import SpamdClient
from storage.store import MailStore

log = logging.getLogger(__name__)

JUNK_USE = "\\Junk"
TRASH_USE = "\\Trash"


class Lesson(StrEnum):
    SPAM = "spam"
    HAM = "ham"


def lesson_for_move(
    source_special_use: str | None, target_special_use: str | None
) -> Lesson | None:
    """What moving a message between folders with these special-use attributes teaches."""
    source_junk, target_junk = source_special_use == JUNK_USE, target_special_use == JUNK_USE
    if target_junk and not source_junk:
        return Lesson.SPAM
    if source_junk and not target_junk and target_special_use != TRASH_USE:
        return Lesson.HAM
    return None


class JunkTrainer:
    def __init__(self, client: SpamdClient) -> None:
        self.client = client

    async def note_move(
        self, message: bytes, source_special_use: str | None, target_special_use: str | None
    ) -> str:
        """Teach spamd what a move means; returns what happened (for logs and tests)."""
        lesson = lesson_for_move(source_special_use, target_special_use)
        if lesson is None:
            return "nothing to learn"
        try:
            outcome = await self.client.tell(message, lesson is Lesson.SPAM)
        except Exception as exc:  # the user's move has happened; only the lesson is lost
            count("spamd.tell_failed")
            log.warning("event=spamd_tell_failed lesson=%s error=%r", lesson, exc)
            return "failed"
        count(f"spamd.tell_{lesson}")
        log.info("event=spamd_tell lesson=%s outcome=%s", lesson, outcome)
        return f"{lesson}: {outcome}"

    async def note_transfer(
        self,
        store: MailStore,
        blob_digests: Sequence[str],
        source_special_use: str | None,
        target_special_use: str | None,
    ) -> list[str]:
        """Teach spamd about each moved message (bytes read from the blob store off the loop).

        Cheap when the move teaches nothing: no blob is read. Messages are taught one after
        another, so a large move does not flood spamd; callers run this as a background task.
        """
        if lesson_for_move(source_special_use, target_special_use) is None:
            return []
        outcomes = []
        for digest in blob_digests:
            raw = await store.offload(store.blobs.read, digest)
            outcomes.append(await self.note_move(raw, source_special_use, target_special_use))
        return outcomes
