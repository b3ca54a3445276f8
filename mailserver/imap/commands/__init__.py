"""The command table: parsed command class -> handler, allowed states and update rules.

This table and ``state.py`` are the one dispatch gate: a command missing here is answered
"not supported", one outside its states BAD, before any handler runs.
"""

from __future__ import annotations

from mailserver.imap import protocol as p
from mailserver.imap.commands import auth, basic, fetch, select
from mailserver.imap.commands.base import CommandSpec, Done, never, only_uid_form
from mailserver.imap.state import (
    ANY_STATE,
    AUTHENTICATED_OR_SELECTED,
    NOT_AUTHENTICATED_ONLY,
    SELECTED_ONLY,
)

COMMANDS: dict[type[p.Command], CommandSpec] = {
    p.Capability: CommandSpec(basic.capability, ANY_STATE),
    p.Noop: CommandSpec(basic.noop, ANY_STATE),
    p.Logout: CommandSpec(basic.logout, ANY_STATE, sends_updates=False),
    p.Id: CommandSpec(basic.id_command, ANY_STATE),
    p.StartTls: CommandSpec(auth.starttls, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    p.Login: CommandSpec(auth.login, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    p.Authenticate: CommandSpec(auth.authenticate, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    p.Enable: CommandSpec(basic.enable, AUTHENTICATED_OR_SELECTED),
    p.Namespace: CommandSpec(basic.namespace, AUTHENTICATED_OR_SELECTED),
    p.Select: CommandSpec(select.select, AUTHENTICATED_OR_SELECTED, sends_updates=False),
    p.Examine: CommandSpec(select.select, AUTHENTICATED_OR_SELECTED, sends_updates=False),
    p.Check: CommandSpec(basic.check, SELECTED_ONLY),
    p.Close: CommandSpec(select.close, SELECTED_ONLY, sends_updates=False),
    p.Unselect: CommandSpec(select.unselect, SELECTED_ONLY, sends_updates=False),
    p.Fetch: CommandSpec(fetch.fetch, SELECTED_ONLY, expunge_allowed=only_uid_form),
}

__all__ = ["COMMANDS", "CommandSpec", "Done", "never"]
