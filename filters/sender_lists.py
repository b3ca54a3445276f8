"""The ``sender_lists`` check: each recipient's own allow and block lists of senders.

The sender is matched by its envelope address (MAIL FROM) and its From addresses. A block puts
that recipient's copy in Junk, an allow keeps it out of Junk (a spam score above the reject
threshold, a virus or a blocked attachment still refuse the message for everyone). When every
recipient blocks the sender the message is refused: 550 5.7.1, nothing is bounced.
"""

from __future__ import annotations

from sqlmodel import Session

from filters.message_headers import from_addresses
from filters.pipeline import Action, MessageContext, Verdict
from storage.accounts import find_mailbox
from storage.models import SenderRuleKind
from storage.sender_rules import matching_kind, rules_for
from storage.store import MailStore


def recipient_rules(
    session: Session, recipients: tuple[str, ...], senders: list[str]
) -> dict[str, SenderRuleKind]:
    """The rule kind that applies for each recipient with a matching rule."""
    mailboxes = {r.lower(): find_mailbox(session, r) for r in recipients}
    ids = [m.id for m in mailboxes.values() if m is not None and m.id is not None]
    rules = rules_for(session, ids)
    kinds: dict[str, SenderRuleKind] = {}
    for recipient, mailbox in mailboxes.items():
        if mailbox is None:
            continue
        kind = matching_kind([r for r in rules if r.mailbox_id == mailbox.id], senders)
        if kind is not None:
            kinds[recipient] = kind
    return kinds


class SenderListCheck:
    name = "sender_lists"

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        senders = [context.mail_from.lower()] if context.mail_from else []
        senders += [a for a in from_addresses(message) if a not in senders]
        if not senders or not context.recipients:
            return Verdict(self.name)
        recipients = context.recipients
        kinds = await self.store.read(lambda s: recipient_rules(s, recipients, senders))
        if not kinds:
            return Verdict(self.name)
        blocked = sorted(r for r, k in kinds.items() if k is SenderRuleKind.BLOCK)
        if len(blocked) == len({r.lower() for r in recipients}):
            return Verdict(
                self.name,
                Action.REJECT,
                "550 5.7.1 Message refused: the recipient does not accept mail from this sender",
                detail="blocked by every recipient",
            )
        placement = tuple(
            (r, Action.JUNK if k is SenderRuleKind.BLOCK else Action.ACCEPT)
            for r, k in sorted(kinds.items())
        )
        detail = " ".join(f"{r}={k}" for r, k in sorted(kinds.items()))
        return Verdict(self.name, recipient_actions=placement, detail=detail)
