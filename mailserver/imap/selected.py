"""The selected mailbox as this session sees it, and the untagged updates that keep it true.

The view maps message sequence numbers to UIDs. It changes only when the session tells its
client: committed changes from the bus wait in ``pending`` until the session may announce them,
then ``take_updates`` turns them into ``EXISTS``, ``EXPUNGE`` (or ``VANISHED``) and
``FETCH (FLAGS ...)`` lines and applies them to the view, in commit order.

RFC 3501 section 7.4.1: "An EXPUNGE response MUST NOT be sent when no command is in progress,
nor while responding to a FETCH, STORE, or SEARCH command" (the UID forms are exempt, RFC 3501
section 6.4.8), because sequence numbers would shift under the client. When expunges may not
be sent, processing stops at the first one, so what follows it waits too and the order (and so
the numbering the client sees) stays exact.

A keyword that comes into use while the folder is selected (by this session's STORE or APPEND,
or by another session) is announced with new FLAGS and PERMANENTFLAGS responses before the
first FETCH or EXISTS that carries it (RFC 3501 7.2.6: FLAGS lists the flags in use).

``recent`` holds the UIDs that are \\Recent in this session (IMAP4rev1 only, storage.recent);
with ``tells_recent`` every EXISTS is followed by RECENT when their number changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from mailserver.imap.response import (
    ResponseCode,
    flag_list,
    number,
    paren_list,
    sequence_set,
    untagged,
    untagged_ok,
)
from storage.changes import Change, FlagsChanged, FolderChanged, MessageAdded, MessagesExpunged
from storage.message_queries import FolderInfo

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flags_responses(keywords: Iterable[str], read_only: bool) -> list[bytes]:
    """FLAGS and OK [PERMANENTFLAGS] for a folder whose messages use ``keywords``."""
    in_use = [*SYSTEM_FLAGS, *sorted(keywords)]
    permanent = [] if read_only else [*in_use, "\\*"]
    return [
        untagged(b"FLAGS", flag_list(in_use)),
        untagged_ok("Flags permitted", ResponseCode("PERMANENTFLAGS", (flag_list(permanent),))),
    ]


def keywords_of(flags: Iterable[str]) -> set[str]:
    return {flag for flag in flags if not flag.startswith("\\")}


class SelectedFolderGone(Exception):
    """The selected folder was deleted by another session."""


@dataclass
class SelectedFolder:
    """Sequence-number view of one folder, with the changes not yet told to the client."""

    folder: FolderInfo
    read_only: bool
    uids: list[int]
    highestmodseq: int
    keywords: set[str] = field(default_factory=set)  # announced in FLAGS
    recent: set[int] = field(default_factory=set)  # \\Recent in this session
    tells_recent: bool = False  # IMAP4rev1: RECENT responses, \\Recent in FLAGS
    pending: list[Change] = field(default_factory=list)
    # The newest MODSEQ of each message whose flags the client was sent: a change no newer
    # (another process's, relayed late) is not sent after it.
    told_modseq: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.announced_recent = len(self.recent)

    @property
    def claims_recent(self) -> bool:
        """New messages become \\Recent here if no other session saw them first."""
        return self.tells_recent and not self.read_only

    def added_uids(self) -> list[int]:
        """UIDs of the pending new messages (to claim as \\Recent before announcing them)."""
        return [c.uid for c in self.pending if isinstance(c, MessageAdded)]

    def flags_with_recent(self, uid: int, flags: Iterable[str]) -> list[str]:
        """A message's flags as this session shows them: \\Recent added when it is."""
        shown = sorted(flags)
        if uid in self.recent:
            shown.insert(0, "\\Recent")
        return shown

    @property
    def folder_id(self) -> int:
        return self.folder.id

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def largest_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        """The sequence number of ``uid``, or None if the view does not hold it."""
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def seqs_of(self, uids: list[int]) -> list[int | None]:
        """``seq_of`` of each of ``uids``: one walk of the view when they are ascending."""
        view = self.uids
        result: list[int | None] = []
        index = 0
        previous = -1
        for uid in uids:
            index = bisect.bisect_left(view, uid, index if uid > previous else 0)
            previous = uid
            if index < len(view) and view[index] == uid:
                result.append(index + 1)
            else:
                result.append(None)
        return result

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def note(self, change: Change) -> bool:
        """Keep a committed change of this folder for later; False if it is not ours."""
        if change.folder_id != self.folder.id:
            return False
        self.pending.append(change)
        return True

    def announce_keywords(self, flags: Iterable[str]) -> list[bytes]:
        """FLAGS/PERMANENTFLAGS lines if ``flags`` hold a keyword not yet announced, else []."""
        new = keywords_of(flags) - self.keywords
        if not new:
            return []
        self.keywords |= new
        return flags_responses(self.keywords, self.read_only)

    def forget_flag_changes(
        self, states: Iterable[tuple[int, int, frozenset[str]]], told: bool = True
    ) -> None:
        """The current command knows these (uid, modseq, flags) states, newer than or equal to
        any pending change of those messages: pending flag changes they supersede go.

        ``told``: the client was sent these states (a FETCH or a STORE without .SILENT). If not
        (.SILENT), an older pending change of another session is replaced by the state, so the
        client still ends on the newest flags. Without this a FETCH of an older change could
        follow the newer state, and the client would see MODSEQ (and flags) go back.
        """
        newest = {uid: (modseq, flags) for uid, modseq, flags in states}
        if not newest:
            return
        if told:
            for uid, (modseq, _) in newest.items():
                self._note_told(uid, modseq)
        kept: list[Change] = []
        replaced: set[int] = set()
        for change in self.pending:
            if isinstance(change, FlagsChanged) and change.uid in newest:
                modseq, flags = newest[change.uid]
                if change.modseq <= modseq:
                    if not told and change.modseq < modseq and change.uid not in replaced:
                        replaced.add(change.uid)
                        kept.append(replace(change, modseq=modseq, flags=frozenset(flags)))
                    continue
            kept.append(change)
        self.pending = kept

    def take_updates(
        self, *, allow_expunge: bool, with_modseq: bool, vanished: bool
    ) -> list[bytes]:
        """Apply pending changes to the view and return the untagged lines that announce them.

        ``with_modseq``: CONDSTORE is on, so FETCH updates carry MODSEQ (RFC 7162 3.1.4.1).
        ``vanished``: QRESYNC is on, so expunges are announced as VANISHED (RFC 7162 3.2.10).
        """
        lines: list[bytes] = []
        announced_exists = self.exists
        processed = 0

        def announce_exists() -> None:
            nonlocal announced_exists
            if self.exists != announced_exists:
                lines.append(untagged(number(self.exists), b"EXISTS"))
                announced_exists = self.exists
                if self.tells_recent and len(self.recent) != self.announced_recent:
                    self.announced_recent = len(self.recent)
                    lines.append(untagged(number(self.announced_recent), b"RECENT"))

        # Only the last pending flag change of a message is sent: the earlier ones are stale.
        last_flags = {c.uid: c.modseq for c in self.pending if isinstance(c, FlagsChanged)}
        for change in self.pending:
            if isinstance(change, FlagsChanged) and (
                change.modseq < last_flags[change.uid]
                or change.modseq <= self.told_modseq.get(change.uid, 0)
            ):
                self.highestmodseq = max(self.highestmodseq, change.modseq)
                processed += 1
                continue
            if isinstance(change, MessageAdded):
                lines.extend(self.announce_keywords(change.flags))
                self._add(change.uid)
            elif isinstance(change, FlagsChanged):
                seq = self.seq_of(change.uid)
                if seq is not None:
                    announce_exists()
                    lines.extend(self.announce_keywords(change.flags))
                    lines.append(self._flags_line(seq, change, with_modseq))
                    self._note_told(change.uid, change.modseq)
            elif isinstance(change, MessagesExpunged):
                if not allow_expunge:
                    break
                if self._touches_unannounced(change.uids, announced_exists):
                    # The client must know a message before it may be told it is gone.
                    announce_exists()
                before = self.exists
                lines.extend(self._expunge(change.uids, vanished))
                # Expunged messages were all announced: the client's count drops with ours,
                # and messages added after them are announced after the EXPUNGEs (a MOVE
                # into the selected folder: RFC 6851 4.3's EXPUNGE, then EXISTS).
                announced_exists -= before - self.exists
            elif isinstance(change, FolderChanged) and change.kind == "deleted":
                # A rename keeps the folder's id, UIDs and UIDVALIDITY: the view stays valid.
                raise SelectedFolderGone(change.kind)
            self.highestmodseq = max(self.highestmodseq, getattr(change, "modseq", 0))
            processed += 1
        del self.pending[:processed]
        announce_exists()
        return lines

    def _note_told(self, uid: int, modseq: int) -> None:
        if modseq > self.told_modseq.get(uid, 0):
            self.told_modseq[uid] = modseq

    def _touches_unannounced(self, uids: Iterable[int], announced: int) -> bool:
        """Whether any of ``uids`` sits past the first ``announced`` messages of the view."""
        return any((seq or 0) > announced for seq in self.seqs_of(sorted(uids)))

    def _add(self, uid: int) -> None:
        if not self.uids or uid > self.uids[-1]:
            self.uids.append(uid)
        elif self.seq_of(uid) is None:
            # Two writers (PostgreSQL) may publish out of UID order; a message the client has
            # not been told about yet can still take its place.
            bisect.insort(self.uids, uid)

    def _flags_line(self, seq: int, change: FlagsChanged, with_modseq: bool) -> bytes:
        flags = self.flags_with_recent(change.uid, change.flags)
        items = [b"FLAGS", flag_list(flags), b"UID", number(change.uid)]
        if with_modseq:
            items += [b"MODSEQ", paren_list([number(change.modseq)])]
        return untagged(number(seq), b"FETCH", paren_list(items))

    def _expunge(self, uids: Iterable[int], vanished: bool) -> list[bytes]:
        removed: list[int] = []
        lines: list[bytes] = []
        # Highest first, so each EXPUNGE's number is still valid when the client reads it
        # (RFC 3501 7.4.1: every EXPUNGE renumbers the messages after it).
        for uid in sorted(uids, reverse=True):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            del self.uids[seq - 1]
            self.told_modseq.pop(uid, None)
            if uid in self.recent:  # the client's count of recent messages drops with it
                self.recent.discard(uid)
                self.announced_recent -= 1
            removed.append(uid)
            if not vanished:
                lines.append(untagged(number(seq), b"EXPUNGE"))
        if vanished and removed:
            lines.append(untagged(b"VANISHED", sequence_set(removed)))
        return lines
