"""The command table: parsed command class -> handler, allowed states and update rules.

This table and ``state.py`` are the one dispatch gate: a command missing here is answered
"not supported", one outside its states BAD, before any handler runs.
"""

from __future__ import annotations

from mailserver.imap import protocol as p
from mailserver.imap.commands import (
    append,
    auth,
    basic,
    copy_move,
    expunge,
    fetch,
    idle,
    listing,
    mailboxes,
    quota,
    search,
    select,
    status,
    store,
)
from mailserver.imap.commands.base import CommandSpec, Done, only_uid_form
from mailserver.imap.state import (
    ANY_STATE,
    AUTHENTICATED_OR_SELECTED,
    NOT_AUTHENTICATED_ONLY,
    SELECTED_ONLY,
)

_AUTH = AUTHENTICATED_OR_SELECTED

COMMANDS: dict[type[p.Command], CommandSpec] = {
    # RFC 9051 6.1: any state.
    p.Capability: CommandSpec(basic.capability, ANY_STATE),
    p.Noop: CommandSpec(basic.noop, ANY_STATE),
    p.Logout: CommandSpec(basic.logout, ANY_STATE, sends_updates=False),
    p.Id: CommandSpec(basic.id_command, ANY_STATE),
    # 6.2: not authenticated.
    p.StartTls: CommandSpec(auth.starttls, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    p.Login: CommandSpec(auth.login, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    p.Authenticate: CommandSpec(auth.authenticate, NOT_AUTHENTICATED_ONLY, sends_updates=False),
    # 6.3: authenticated (or selected).
    p.Enable: CommandSpec(basic.enable, _AUTH),
    p.Namespace: CommandSpec(basic.namespace, _AUTH),
    p.Select: CommandSpec(select.select, _AUTH, sends_updates=False),
    p.Examine: CommandSpec(select.select, _AUTH, sends_updates=False),
    p.Create: CommandSpec(mailboxes.create, _AUTH),
    p.Delete: CommandSpec(mailboxes.delete, _AUTH),
    p.Rename: CommandSpec(mailboxes.rename, _AUTH),
    p.Subscribe: CommandSpec(mailboxes.subscribe, _AUTH),
    p.Unsubscribe: CommandSpec(mailboxes.unsubscribe, _AUTH),
    p.List: CommandSpec(listing.list_command, _AUTH),
    p.Lsub: CommandSpec(listing.lsub, _AUTH),
    p.Status: CommandSpec(status.status, _AUTH),
    p.Append: CommandSpec(append.append, _AUTH),
    p.Idle: CommandSpec(idle.idle, _AUTH),
    p.GetQuota: CommandSpec(quota.getquota, _AUTH),
    p.GetQuotaRoot: CommandSpec(quota.getquotaroot, _AUTH),
    p.SetQuota: CommandSpec(quota.setquota, _AUTH),
    # 6.4: selected.
    p.Check: CommandSpec(basic.check, SELECTED_ONLY),
    p.Close: CommandSpec(select.close, SELECTED_ONLY, sends_updates=False),
    p.Unselect: CommandSpec(select.unselect, SELECTED_ONLY, sends_updates=False),
    p.Expunge: CommandSpec(expunge.expunge, SELECTED_ONLY),
    p.Search: CommandSpec(search.search, SELECTED_ONLY, expunge_allowed=only_uid_form),
    p.Fetch: CommandSpec(fetch.fetch, SELECTED_ONLY, expunge_allowed=only_uid_form),
    p.Store: CommandSpec(store.store, SELECTED_ONLY, expunge_allowed=only_uid_form),
    p.Copy: CommandSpec(copy_move.copy, SELECTED_ONLY),
    p.Move: CommandSpec(copy_move.move, SELECTED_ONLY),
}

__all__ = ["COMMANDS", "CommandSpec", "Done"]
