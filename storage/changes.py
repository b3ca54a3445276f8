"""Change records emitted by mailbox operations, and the bus that carries them to IMAP sessions.

Operations append records to the session's change list while they run; the store publishes them
only after the transaction has committed (commit before broadcast), so a session never announces
a message that a rollback took away. In one process the bus is a table of callbacks; the worker
processes of one instance relay the same records to each other through their supervisor, and
several nodes on PostgreSQL would relay them over LISTEN/NOTIFY.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from sqlmodel import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageAdded:
    mailbox_id: int
    folder_id: int
    uid: int
    modseq: int
    flags: frozenset[str]


@dataclass(frozen=True)
class FlagsChanged:
    mailbox_id: int
    folder_id: int
    uid: int
    modseq: int
    flags: frozenset[str]


@dataclass(frozen=True)
class MessagesExpunged:
    mailbox_id: int
    folder_id: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class FolderChanged:
    """A folder was created, renamed or deleted."""

    mailbox_id: int
    folder_id: int
    kind: str  # "created" | "renamed" | "deleted"
    name: str


Change = MessageAdded | FlagsChanged | MessagesExpunged | FolderChanged

_CHANGES_KEY = "govmail.changes"


def record(session: Session, change: Change) -> None:
    """Note a change made in this session's transaction, to be published after commit."""
    session.info.setdefault(_CHANGES_KEY, []).append(change)


def take_recorded(session: Session) -> list[Change]:
    changes: list[Change] = session.info.pop(_CHANGES_KEY, [])
    return changes


@contextmanager
def atomic(session: Session) -> Iterator[None]:
    """A SAVEPOINT: on error its rows and its recorded changes are undone, the rest stays."""
    recorded: list[Change] = session.info.setdefault(_CHANGES_KEY, [])
    mark = len(recorded)
    savepoint = session.begin_nested()
    try:
        yield
        session.flush()
    except BaseException:
        savepoint.rollback()
        del recorded[mark:]
        raise
    savepoint.commit()


def in_pieces(
    changes: list[Change], per_piece: int = 500, uids_per_piece: int = 10_000
) -> list[list[Change]]:
    """``changes`` cut into lists of at most ``per_piece`` changes and ``uids_per_piece``
    expunged UIDs (an expunge of very many messages becomes several), to travel between
    processes in bounded messages; applying the pieces in order is the same as the whole."""
    pieces: list[list[Change]] = []
    piece: list[Change] = []
    uids = 0
    for change in changes:
        parts: list[Change] = [change]
        if isinstance(change, MessagesExpunged) and len(change.uids) > uids_per_piece:
            parts = [
                replace(change, uids=change.uids[start : start + uids_per_piece])
                for start in range(0, len(change.uids), uids_per_piece)
            ]
        for part in parts:
            size = len(part.uids) if isinstance(part, MessagesExpunged) else 0
            if piece and (len(piece) >= per_piece or uids + size > uids_per_piece):
                pieces.append(piece)
                piece, uids = [], 0
            piece.append(part)
            uids += size
    if piece:
        pieces.append(piece)
    return pieces


Listener = Callable[[Change], None]


@dataclass
class ChangeBus:
    """Delivers committed changes to the listeners of the mailbox (account) they concern.

    ``relay``, when set, also receives every change published here, to carry it to the other
    processes of the instance (``mailserver.supervisor``); what they relay back comes in
    through ``publish_relayed``, which only delivers locally.
    """

    _listeners: dict[int, set[Listener]] = field(default_factory=lambda: defaultdict(set))
    relay: Callable[[list[Change]], None] | None = None

    def subscribe(self, mailbox_id: int, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns the function that unregisters it."""
        self._listeners[mailbox_id].add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(mailbox_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[mailbox_id]

        return unsubscribe

    def publish(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        self.publish_relayed(changes)
        if self.relay is not None and changes:
            try:
                self.relay(changes)
            except Exception:  # the local listeners have them; never fail a commit's caller
                log.exception("event=change_relay_failed changes=%d", len(changes))

    def publish_relayed(self, changes: Iterable[Change]) -> None:
        """Deliver to this process's listeners only."""
        for change in changes:
            for listener in list(self._listeners.get(change.mailbox_id, ())):
                try:
                    listener(change)
                except Exception:  # one broken listener must not starve the others
                    log.exception("event=change_listener_failed mailbox=%s", change.mailbox_id)
