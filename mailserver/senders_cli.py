"""`govmail senders`: a mailbox's allow and block lists of senders (the sender_lists filter).

  govmail senders list ADDRESS
  govmail senders allow|block ADDRESS PATTERN
  govmail senders remove ADDRESS PATTERN
A pattern is a full address or "@domain" (that domain and its subdomains).
"""

from __future__ import annotations

from typing import Literal

import typer

from mailserver.cli import CLI_ACTOR, ConfigOption, fail, opened, say_empty

senders_app: typer.Typer = typer.Typer(
    help="Per-mailbox allow and block lists of senders.", no_args_is_help=True
)


def _set(address: str, pattern: str, kind: Literal["allow", "block"], config: ConfigOption) -> None:
    from storage.mailbox_ops import MailboxError
    from storage.models import SenderRuleKind
    from storage.sender_rules import set_sender_rule

    with opened(config) as instance:
        try:
            with instance.db.write_session() as session:
                rule = set_sender_rule(session, CLI_ACTOR, address, pattern, SenderRuleKind(kind))
                shown = rule.pattern
        except (MailboxError, ValueError) as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"{kind} {shown} for {address.lower()}")


@senders_app.command("allow")
def senders_allow(address: str, pattern: str, config: ConfigOption = None) -> None:
    """Never put mail from PATTERN in this mailbox's Junk."""
    _set(address, pattern, "allow", config)


@senders_app.command("block")
def senders_block(address: str, pattern: str, config: ConfigOption = None) -> None:
    """Put mail from PATTERN in Junk (refused when every recipient blocks it)."""
    _set(address, pattern, "block", config)


@senders_app.command("remove")
def senders_remove(address: str, pattern: str, config: ConfigOption = None) -> None:
    """Forget this mailbox's rule for PATTERN."""
    from storage.mailbox_ops import MailboxError
    from storage.sender_rules import remove_sender_rule

    with opened(config) as instance:
        try:
            with instance.db.write_session() as session:
                removed = remove_sender_rule(session, CLI_ACTOR, address, pattern)
        except (MailboxError, ValueError) as exc:
            raise fail(str(exc)) from exc
    if not removed:
        raise fail(f"{address.lower()} has no rule for {pattern}")
    typer.echo(f"removed {pattern.lower()} for {address.lower()}")


@senders_app.command("list")
def senders_list(address: str, config: ConfigOption = None) -> None:
    """The mailbox's rules: kind and pattern, tab-separated."""
    from sqlmodel import Session, col, select

    from storage.accounts import require_mailbox
    from storage.mailbox_ops import MailboxError
    from storage.models import SenderRule

    def rules(session: Session) -> list[tuple[str, str]]:
        mailbox = require_mailbox(session, address)
        query = (
            select(SenderRule)
            .where(SenderRule.mailbox_id == mailbox.id)
            .order_by(col(SenderRule.kind), col(SenderRule.pattern))
        )
        return [(r.kind, r.pattern) for r in session.exec(query)]

    with opened(config) as instance:
        try:
            with instance.db.read_session() as session:
                found = rules(session)
        except MailboxError as exc:
            raise fail(str(exc)) from exc
    if not found:
        say_empty(f"sender rules for {address.lower()}")
    for kind, pattern in found:
        typer.echo(f"{kind}\t{pattern}")
