"""Per-mailbox allow and block lists of senders (the ``sender_lists`` filter reads them).

A pattern is a full address ("a@b.gov.vn") or a domain written "@b.gov.vn" (that domain and its
subdomains). Changes are audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from storage.accounts import audit, normalise_address, require_mailbox
from storage.models import SenderRule, SenderRuleKind


def normalise_pattern(pattern: str) -> str:
    """ "@Domain.VN" -> "@domain.vn"; "User@Domain.VN" -> "user@domain.vn"; ValueError if bad."""
    pattern = pattern.strip()
    if pattern.startswith("@"):
        return "@" + normalise_address(f"x{pattern}").partition("@")[2]
    return normalise_address(pattern)


def set_sender_rule(
    session: Session, actor: str, mailbox_address: str, pattern: str, kind: SenderRuleKind
) -> SenderRule:
    """Add or change the mailbox's rule for ``pattern``."""
    mailbox = require_mailbox(session, mailbox_address)
    assert mailbox.id is not None
    pattern = normalise_pattern(pattern)
    rule = session.exec(
        select(SenderRule).where(SenderRule.mailbox_id == mailbox.id, SenderRule.pattern == pattern)
    ).first()
    if rule is None:
        rule = SenderRule(mailbox_id=mailbox.id, pattern=pattern, kind=kind)
    rule.kind = kind
    session.add(rule)
    session.flush()
    audit(session, actor, "sender_rule.set", "mailbox", mailbox.address, after={pattern: kind})
    return rule


def remove_sender_rule(session: Session, actor: str, mailbox_address: str, pattern: str) -> bool:
    mailbox = require_mailbox(session, mailbox_address)
    pattern = normalise_pattern(pattern)
    rule = session.exec(
        select(SenderRule).where(SenderRule.mailbox_id == mailbox.id, SenderRule.pattern == pattern)
    ).first()
    if rule is None:
        return False
    session.delete(rule)
    before = {pattern: rule.kind}
    audit(session, actor, "sender_rule.remove", "mailbox", mailbox.address, before=before)
    return True


def rules_for(session: Session, mailbox_ids: Sequence[int]) -> list[SenderRule]:
    if not mailbox_ids:
        return []
    return list(
        session.exec(select(SenderRule).where(col(SenderRule.mailbox_id).in_(list(mailbox_ids))))
    )


def matching_kind(rules: Sequence[SenderRule], senders: Sequence[str]) -> SenderRuleKind | None:
    """The kind of the most specific rule matching any sender; a block beats an allow on a tie.

    Specificity: an exact address beats a domain, a longer domain beats a shorter one.
    """
    best: tuple[int, int, SenderRuleKind] | None = None
    for sender in senders:
        sender = sender.lower()
        domain = sender.rpartition("@")[2]
        for rule in rules:
            if rule.pattern == sender:
                rank = 10_000
            elif rule.pattern.startswith("@") and (
                domain == rule.pattern[1:] or domain.endswith("." + rule.pattern[1:])
            ):
                rank = len(rule.pattern)
            else:
                continue
            kind = SenderRuleKind(rule.kind)
            key = (rank, 1 if kind is SenderRuleKind.BLOCK else 0, kind)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None
