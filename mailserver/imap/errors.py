"""The errors a command handler raises, mapped to responses in one place (session.py).

- ``BadCommand``: the command is not acceptable as sent (wrong state, bad arguments) -> BAD.
- ``CommandFailed``: the command was understood but could not be done -> NO [CODE].
- ``CloseConnection``: the session must end now -> ``* BYE text`` and close.

Storage's ``MailboxError`` subclasses are mapped to NO with a response code by the session
too; anything else is a server fault: logged with its stack, answered NO [SERVERBUG].
"""

from __future__ import annotations


class CommandError(Exception):
    """Base: a response to the command's tag, with an optional response code."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class BadCommand(CommandError):
    """Answer ``TAG BAD [code] text``."""


class CommandFailed(CommandError):
    """Answer ``TAG NO [code] text``."""


class CloseConnection(Exception):
    """Send ``* BYE text`` and close the connection."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
