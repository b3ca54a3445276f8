"""Who an address reaches: local mailboxes, aliases, groups with their send policy, plus-tags.

``resolve_local`` turns one recipient address of a local domain into the mailboxes that receive
it and the outside addresses it forwards to, or the reason it is refused. ``sender_addresses``
lists the addresses a mailbox may send as (its own, aliases it owns, send-as grants).

Pure lookups inside the caller's ``Session``; nothing here knows SMTP reply syntax: the SMTP
layer maps a :class:`Refusal` to its reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from storage.fast_sql import Prepared
from storage.models import (
    Alias,
    Domain,
    GroupMember,
    GroupSendPolicy,
    Mailbox,
    MailboxState,
    MailGroup,
    SendAsGrant,
)

# Aliases and groups may nest; deeper chains are refused as a loop (RFC 5321 6.3 warns of them).
MAX_EXPANSION_DEPTH = 8
MAX_EXPANDED_MAILBOXES = 10_000


class Refusal(StrEnum):
    UNKNOWN = "unknown"  # no such address
    DISABLED = "disabled"  # the account neither logs in nor receives
    OVER_QUOTA = "over_quota"
    GROUP_POLICY = "group_policy"  # the sender may not write to this group
    LOOP = "loop"  # alias/group chain too deep or too wide


@dataclass(frozen=True)
class Sender:
    """Who is sending, as far as group policies care."""

    address: str  # envelope sender, lower-case; "" for the null path
    authenticated_mailbox_id: int | None = None


@dataclass
class Expansion:
    """Where one recipient address leads."""

    mailbox_ids: list[int] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)  # outside addresses (forwards, group members)
    dropped: list[str] = field(default_factory=list)  # forwards refused by the forwarding rule

    def add_mailbox(self, mailbox_id: int) -> None:
        if mailbox_id not in self.mailbox_ids:
            self.mailbox_ids.append(mailbox_id)

    def add_remote(self, address: str) -> None:
        if address not in self.remote:
            self.remote.append(address)


class _Loop(Exception):
    pass


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain


_DOMAIN = Domain.__table__  # type: ignore[attr-defined]
_MAILBOX = Mailbox.__table__  # type: ignore[attr-defined]
# Asked for every recipient of every message: prepared (storage.fast_sql), no ORM objects.
_DOMAIN_ID = Prepared(
    lambda _dialect: core_select(_DOMAIN.c.id).where(_DOMAIN.c.name == bindparam("name"))
)
_MAILBOX_FOR_DELIVERY = Prepared(
    lambda _dialect: core_select(
        _MAILBOX.c.id, _MAILBOX.c.state, _MAILBOX.c.used_bytes, _MAILBOX.c.quota_bytes
    ).where(_MAILBOX.c.address == bindparam("address"))
)


def is_local_domain(session: Session, domain: str) -> bool:
    return _DOMAIN_ID.first(session, {"name": domain}) is not None


def resolve_local(
    session: Session,
    address: str,
    sender: Sender,
    may_forward_to: Iterable[str] = (),
) -> Expansion | Refusal:
    """Resolve ``address`` (lower-case local@a-label-domain, domain local) for ``sender``.

    Lookup order: mailbox, alias, group, then the same three for the address with its
    ``+tag`` removed. ``may_forward_to`` lists domain suffixes (``gov.vn``) that aliases may
    forward to besides local domains; other outside targets are dropped, never forwarded.
    A locked mailbox still receives; a disabled one is refused. Quota is judged only for a
    directly addressed mailbox: members of a list are not refused because one of them is full.
    """
    for candidate in _candidates(address):
        mailbox = _MAILBOX_FOR_DELIVERY.first(session, {"address": candidate})
        if mailbox is not None:
            mailbox_id, state, used_bytes, quota_bytes = mailbox
            if state == MailboxState.DISABLED:
                return Refusal.DISABLED
            if used_bytes >= quota_bytes:
                return Refusal.OVER_QUOTA
            return Expansion(mailbox_ids=[mailbox_id])
        group = session.exec(select(MailGroup).where(MailGroup.address == candidate)).first()
        if group is not None and not may_send_to_group(session, group, sender):
            return Refusal.GROUP_POLICY
        alias = session.exec(select(Alias).where(Alias.address == candidate)).first()
        if alias is None and group is None:
            continue
        expansion = Expansion()
        try:
            _expand(session, candidate, expansion, tuple(may_forward_to), depth=0, seen=set())
        except _Loop:
            return Refusal.LOOP
        return expansion
    return Refusal.UNKNOWN


def _candidates(address: str) -> list[str]:
    local, domain = split_address(address)
    base, plus, _tag = local.partition("+")
    if plus and base:
        return [address, f"{base}@{domain}"]
    return [address]


def _expand(
    session: Session,
    address: str,
    into: Expansion,
    may_forward_to: tuple[str, ...],
    depth: int,
    seen: set[str],
) -> None:
    if depth > MAX_EXPANSION_DEPTH or len(into.mailbox_ids) > MAX_EXPANDED_MAILBOXES:
        raise _Loop(address)
    if address in seen:
        return  # a list that contains itself: each member once
    seen.add(address)
    mailbox = session.exec(select(Mailbox).where(Mailbox.address == address)).first()
    if mailbox is not None and mailbox.id is not None:
        if mailbox.state != MailboxState.DISABLED:
            into.add_mailbox(mailbox.id)
        return
    targets: list[str] = []
    alias = session.exec(select(Alias).where(Alias.address == address)).first()
    if alias is not None:
        targets.extend(t.strip().lower() for t in alias.targets.splitlines() if t.strip())
    group = session.exec(select(MailGroup).where(MailGroup.address == address)).first()
    if group is not None and group.id is not None:
        targets.extend(group_members(session, group.id))
    if alias is None and group is None:
        _, domain = split_address(address)
        if is_local_domain(session, domain):
            return  # a stale member of a local domain: nothing to deliver to
        if _may_forward(domain, may_forward_to):
            into.add_remote(address)
        else:
            into.dropped.append(address)
        return
    for target in targets:
        _expand(session, target, into, may_forward_to, depth + 1, seen)


def _may_forward(domain: str, suffixes: tuple[str, ...]) -> bool:
    """No automatic forwarding outside government domains (provincial rule)."""
    domain = domain.lower()
    for suffix in suffixes:
        suffix = suffix.lower().lstrip(".")
        if domain == suffix or domain.endswith("." + suffix):
            return True
    return False


def group_members(session: Session, group_id: int) -> list[str]:
    rows = session.exec(
        select(GroupMember.address)
        .where(GroupMember.group_id == group_id)
        .order_by(col(GroupMember.address))
    )
    return [row.lower() for row in rows]


def may_send_to_group(session: Session, group: MailGroup, sender: Sender) -> bool:
    """The group's send policy applied to ``sender``.

    ``members``: the sender (the authenticated account's addresses, else the envelope sender)
    is a direct member. ``same_agency``: an authenticated account of a domain of the group's
    agency. ``authenticated``: any authenticated account. A forged envelope sender on MX is the
    filters' business (SPF/DMARC), not this check's.
    """
    policy = group.send_policy
    if policy == GroupSendPolicy.ANYONE:
        return True
    if policy == GroupSendPolicy.AUTHENTICATED:
        return sender.authenticated_mailbox_id is not None
    if policy == GroupSendPolicy.SAME_AGENCY:
        if sender.authenticated_mailbox_id is None:
            return False
        return _agency_of_mailbox(session, sender.authenticated_mailbox_id) == _agency_of_domain(
            session, group.domain_id
        )
    # members (also the default for an unknown policy value: the strictest sensible reading)
    assert group.id is not None
    members = set(group_members(session, group.id))
    if sender.authenticated_mailbox_id is not None:
        return bool(members & set(sender_addresses(session, sender.authenticated_mailbox_id)))
    return bool(sender.address) and sender.address in members


def _agency_of_domain(session: Session, domain_id: int) -> int | None:
    domain = session.get(Domain, domain_id)
    return domain.agency_id if domain else None


def _agency_of_mailbox(session: Session, mailbox_id: int) -> int | None:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        return None
    own = getattr(mailbox, "agency_id", None)  # a person's agency, where recorded
    return own if isinstance(own, int) else _agency_of_domain(session, mailbox.domain_id)


def sender_addresses(session: Session, mailbox_id: int) -> list[str]:
    """Addresses ``mailbox_id`` may use as envelope sender and in From: own, owned aliases,
    send-as grants (lower-case)."""
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        return []
    addresses = [mailbox.address]
    owned = session.exec(select(Alias.address).where(Alias.owner_mailbox_id == mailbox_id))
    addresses.extend(a.lower() for a in owned)
    granted = session.exec(select(SendAsGrant.address).where(SendAsGrant.mailbox_id == mailbox_id))
    addresses.extend(a.lower() for a in granted)
    return list(dict.fromkeys(addresses))
