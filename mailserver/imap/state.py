"""Session states (RFC 9051 section 3) and the sets of states each command is allowed in."""

from __future__ import annotations

from enum import Enum, auto


class SessionState(Enum):
    NOT_AUTHENTICATED = auto()
    AUTHENTICATED = auto()
    SELECTED = auto()
    LOGOUT = auto()


# RFC 9051 section 6.1: CAPABILITY, NOOP and LOGOUT are valid in any state.
ANY_STATE = frozenset(
    {SessionState.NOT_AUTHENTICATED, SessionState.AUTHENTICATED, SessionState.SELECTED}
)
# Section 6.2: STARTTLS, AUTHENTICATE, LOGIN.
NOT_AUTHENTICATED_ONLY = frozenset({SessionState.NOT_AUTHENTICATED})
# Section 6.3: commands on mailboxes, valid once authenticated (also with one selected).
AUTHENTICATED_OR_SELECTED = frozenset({SessionState.AUTHENTICATED, SessionState.SELECTED})
# Section 6.4: commands on the selected mailbox's messages.
SELECTED_ONLY = frozenset({SessionState.SELECTED})
