"""What a command handler returns, and how the registry describes a command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailserver.imap.response import ResponseCode
from mailserver.imap.state import SessionState

if TYPE_CHECKING:
    from mailserver.imap.session import Session


@dataclass(frozen=True)
class Done:
    """A completed command: the text and code of its tagged OK.

    ``after`` runs once the OK is written (STARTTLS starts the handshake then; LOGOUT closes).
    """

    text: str
    code: ResponseCode | None = None
    after: Callable[[], Awaitable[None]] | None = None


Handler = Callable[["Session", Any], Awaitable[Done]]


def always(command: object) -> bool:
    return True


def never(command: object) -> bool:
    return False


def only_uid_form(command: object) -> bool:
    """RFC 3501 7.4.1: no EXPUNGE during FETCH, STORE or SEARCH; their UID forms are fine."""
    return bool(getattr(command, "uid", False))


@dataclass(frozen=True)
class CommandSpec:
    """One registry entry: the handler, the states it is allowed in, and its update rules.

    ``sends_updates``: pending untagged updates are flushed before the tagged OK.
    ``expunge_allowed(command)``: whether those updates may include EXPUNGE.
    """

    handler: Handler
    states: frozenset[SessionState]
    sends_updates: bool = True
    expunge_allowed: Callable[[Any], bool] = always
