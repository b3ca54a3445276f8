"""Aliases and groups (distribution lists) administration within a scope.

An alias forwards to targets (newline-separated addresses) and may have an owner mailbox that
can also send as it; a group has members and a send policy saying who may write to it.
Delivery through them is :mod:`storage.recipients`; this module only creates and changes rows,
auditing each change in the caller's transaction. Objects outside the scope raise
:class:`DirectoryNotFound`, the same as missing ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from storage.accounts import audit, normalise_address
from storage.admin_scope import (
    Scope,
    address_taken,
    effective_agency_id,
    may_use_address,
    owned_condition,
)
from storage.listing import Page, PageRequest, contains_pattern, fetch_page
from storage.mailbox_ops import MailboxError
from storage.models import Alias, Domain, GroupMember, GroupSendPolicy, Mailbox, MailGroup

MAX_ALIAS_TARGETS = 1000
MAX_GROUP_MEMBERS = 10_000

ALIAS_SORTS = {"id": Alias.id, "address": Alias.address, "created_at": Alias.created_at}
GROUP_SORTS = {
    "id": MailGroup.id,
    "address": MailGroup.address,
    "display_name": MailGroup.display_name,
    "created_at": MailGroup.created_at,
}


class DirectoryNotFound(MailboxError):
    pass


class AddressUnavailable(MailboxError):
    """The address is taken, or outside the caller's domains; the two are not told apart."""


@dataclass(frozen=True)
class DirectoryFilter:
    q: str = ""  # part of the address
    agency_id: int | None = None


def _domain_for(session: Session, address: str) -> Domain:
    domain = session.exec(select(Domain).where(Domain.name == address.rpartition("@")[2])).first()
    if domain is None:
        raise AddressUnavailable(f"{address} is not available")
    return domain


def _claim_address(
    session: Session, scope: Scope, address: str, agency_id: int | None
) -> tuple[str, Domain, int]:
    """Normalise a new address and check the scope may create it: (address, domain, agency)."""
    try:
        normalised = normalise_address(address)
    except ValueError as exc:
        raise AddressUnavailable(str(exc)) from exc
    domain = _domain_for(session, normalised)
    owner = agency_id if agency_id is not None else domain.agency_id
    if not may_use_address(session, scope, normalised, owner) or address_taken(session, normalised):
        # One message for both: an agency admin learns nothing about other agencies' names.
        raise AddressUnavailable(f"{normalised} is not available")
    return normalised, domain, owner


def parse_targets(targets: Sequence[str]) -> list[str]:
    """Normalised, de-duplicated target addresses in the order given."""
    result: list[str] = []
    for target in targets:
        try:
            normalised = normalise_address(target)
        except ValueError as exc:
            raise MailboxError(str(exc)) from exc
        if normalised not in result:
            result.append(normalised)
    if len(result) > MAX_ALIAS_TARGETS:
        raise MailboxError(f"an alias has at most {MAX_ALIAS_TARGETS} targets")
    return result


def alias_targets(alias: Alias) -> list[str]:
    return [line for line in alias.targets.split("\n") if line]


def _alias_audit(alias: Alias) -> dict[str, Any]:
    return {
        "address": alias.address,
        "targets": alias_targets(alias),
        "owner_mailbox_id": alias.owner_mailbox_id,
        "agency_id": alias.agency_id,
    }


def _check_owner(session: Session, scope: Scope, owner_mailbox_id: int | None) -> None:
    if owner_mailbox_id is None:
        return
    found = session.exec(
        select(Mailbox.id).where(
            col(Mailbox.id) == owner_mailbox_id,
            owned_condition(scope, Mailbox.agency_id, Mailbox.domain_id),
        )
    ).first()
    if found is None:
        raise DirectoryNotFound(f"no mailbox {owner_mailbox_id}")


# ---------------------------------------------------------------- aliases


def get_alias(session: Session, scope: Scope, alias_id: int) -> Alias:
    alias = session.exec(
        select(Alias).where(
            col(Alias.id) == alias_id, owned_condition(scope, Alias.agency_id, Alias.domain_id)
        )
    ).first()
    if alias is None:
        raise DirectoryNotFound(f"no alias {alias_id}")
    return alias


def list_alias_page(
    session: Session, scope: Scope, filters: DirectoryFilter, page: PageRequest
) -> Page[Alias]:
    query = select(Alias).where(owned_condition(scope, Alias.agency_id, Alias.domain_id))
    if filters.q:
        query = query.where(
            col(Alias.address).like(contains_pattern(filters.q.lower()), escape="\\")
        )
    if filters.agency_id is not None:
        one = Scope(frozenset({filters.agency_id}))
        query = query.where(owned_condition(one, Alias.agency_id, Alias.domain_id))
    return fetch_page(session, query, Alias.id, page, ALIAS_SORTS, "address")


def create_alias(
    session: Session,
    scope: Scope,
    actor: str,
    address: str,
    targets: Sequence[str],
    owner_mailbox_id: int | None = None,
    agency_id: int | None = None,
) -> Alias:
    normalised, domain, owner = _claim_address(session, scope, address, agency_id)
    _check_owner(session, scope, owner_mailbox_id)
    assert domain.id is not None
    alias = Alias(
        address=normalised,
        domain_id=domain.id,
        targets="\n".join(parse_targets(targets)),
        owner_mailbox_id=owner_mailbox_id,
        agency_id=agency_id,
    )
    session.add(alias)
    session.flush()
    audit(
        session,
        actor,
        "alias.create",
        "alias",
        normalised,
        after=_alias_audit(alias),
        agency_id=owner,
    )
    return alias


def update_alias(
    session: Session,
    scope: Scope,
    actor: str,
    alias_id: int,
    targets: Sequence[str] | None = None,
    owner_mailbox_id: int | None = None,
    clear_owner: bool = False,
) -> Alias:
    alias = get_alias(session, scope, alias_id)
    before = _alias_audit(alias)
    if targets is not None:
        alias.targets = "\n".join(parse_targets(targets))
    if clear_owner:
        alias.owner_mailbox_id = None
    elif owner_mailbox_id is not None:
        _check_owner(session, scope, owner_mailbox_id)
        alias.owner_mailbox_id = owner_mailbox_id
    session.add(alias)
    audit(
        session,
        actor,
        "alias.update",
        "alias",
        alias.address,
        before,
        _alias_audit(alias),
        agency_id=effective_agency_id(session, alias.agency_id, alias.domain_id),
    )
    return alias


def delete_alias(session: Session, scope: Scope, actor: str, alias_id: int) -> None:
    alias = get_alias(session, scope, alias_id)
    audit(
        session,
        actor,
        "alias.delete",
        "alias",
        alias.address,
        before=_alias_audit(alias),
        agency_id=effective_agency_id(session, alias.agency_id, alias.domain_id),
    )
    session.delete(alias)


# ---------------------------------------------------------------- groups


def get_group(session: Session, scope: Scope, group_id: int) -> MailGroup:
    group = session.exec(
        select(MailGroup).where(
            col(MailGroup.id) == group_id,
            owned_condition(scope, MailGroup.agency_id, MailGroup.domain_id),
        )
    ).first()
    if group is None:
        raise DirectoryNotFound(f"no group {group_id}")
    return group


def list_group_page(
    session: Session, scope: Scope, filters: DirectoryFilter, page: PageRequest
) -> Page[MailGroup]:
    query = select(MailGroup).where(
        owned_condition(scope, MailGroup.agency_id, MailGroup.domain_id)
    )
    if filters.q:
        pattern = contains_pattern(filters.q.lower())
        query = query.where(
            col(MailGroup.address).like(pattern, escape="\\")
            | col(MailGroup.display_name).ilike(pattern, escape="\\")
        )
    if filters.agency_id is not None:
        one = Scope(frozenset({filters.agency_id}))
        query = query.where(owned_condition(one, MailGroup.agency_id, MailGroup.domain_id))
    return fetch_page(session, query, MailGroup.id, page, GROUP_SORTS, "address")


def _policy(value: str) -> str:
    try:
        return GroupSendPolicy(value).value
    except ValueError as exc:
        choices = ", ".join(policy.value for policy in GroupSendPolicy)
        raise MailboxError(f"send policy must be one of {choices}") from exc


def _group_audit(group: MailGroup) -> dict[str, Any]:
    return {
        "address": group.address,
        "display_name": group.display_name,
        "send_policy": group.send_policy,
        "agency_id": group.agency_id,
    }


def create_group(
    session: Session,
    scope: Scope,
    actor: str,
    address: str,
    display_name: str = "",
    send_policy: str = GroupSendPolicy.MEMBERS,
    members: Sequence[str] = (),
    agency_id: int | None = None,
) -> MailGroup:
    normalised, domain, owner = _claim_address(session, scope, address, agency_id)
    assert domain.id is not None
    group = MailGroup(
        address=normalised,
        domain_id=domain.id,
        display_name=display_name.strip(),
        send_policy=_policy(send_policy),
        agency_id=agency_id,
    )
    session.add(group)
    session.flush()
    assert group.id is not None
    for member in parse_targets(members)[:MAX_GROUP_MEMBERS]:
        session.add(GroupMember(group_id=group.id, address=member))
    audit(
        session,
        actor,
        "group.create",
        "group",
        normalised,
        after={**_group_audit(group), "members": list(members)},
        agency_id=owner,
    )
    return group


def update_group(
    session: Session,
    scope: Scope,
    actor: str,
    group_id: int,
    display_name: str | None = None,
    send_policy: str | None = None,
) -> MailGroup:
    group = get_group(session, scope, group_id)
    before = _group_audit(group)
    if display_name is not None:
        group.display_name = display_name.strip()
    if send_policy is not None:
        group.send_policy = _policy(send_policy)
    session.add(group)
    audit(
        session,
        actor,
        "group.update",
        "group",
        group.address,
        before,
        _group_audit(group),
        agency_id=effective_agency_id(session, group.agency_id, group.domain_id),
    )
    return group


def delete_group(session: Session, scope: Scope, actor: str, group_id: int) -> None:
    group = get_group(session, scope, group_id)
    members = group_member_addresses(session, group_id)
    for row in session.exec(select(GroupMember).where(col(GroupMember.group_id) == group_id)):
        session.delete(row)
    audit(
        session,
        actor,
        "group.delete",
        "group",
        group.address,
        before={**_group_audit(group), "members": members},
        agency_id=effective_agency_id(session, group.agency_id, group.domain_id),
    )
    session.delete(group)


def group_member_addresses(session: Session, group_id: int) -> list[str]:
    query = select(GroupMember.address).where(col(GroupMember.group_id) == group_id)
    return list(session.exec(query.order_by(col(GroupMember.address))))


def list_group_members(session: Session, scope: Scope, group_id: int) -> list[str]:
    get_group(session, scope, group_id)
    return group_member_addresses(session, group_id)


def add_group_members(
    session: Session, scope: Scope, actor: str, group_id: int, addresses: Sequence[str]
) -> list[str]:
    """Add members (already present ones are kept once); returns the ones added."""
    group = get_group(session, scope, group_id)
    present = set(group_member_addresses(session, group_id))
    added = [address for address in parse_targets(addresses) if address not in present]
    if len(present) + len(added) > MAX_GROUP_MEMBERS:
        raise MailboxError(f"a group has at most {MAX_GROUP_MEMBERS} members")
    for address in added:
        session.add(GroupMember(group_id=group_id, address=address))
    if added:
        audit(
            session,
            actor,
            "group.members.add",
            "group",
            group.address,
            after={"added": added},
            agency_id=effective_agency_id(session, group.agency_id, group.domain_id),
        )
    return added


def remove_group_member(
    session: Session, scope: Scope, actor: str, group_id: int, address: str
) -> None:
    group = get_group(session, scope, group_id)
    try:
        normalised = normalise_address(address)
    except ValueError as exc:
        raise DirectoryNotFound(f"{address} is not a member") from exc
    row = session.exec(
        select(GroupMember).where(
            col(GroupMember.group_id) == group_id, col(GroupMember.address) == normalised
        )
    ).first()
    if row is None:
        raise DirectoryNotFound(f"{normalised} is not a member")
    session.delete(row)
    audit(
        session,
        actor,
        "group.members.remove",
        "group",
        group.address,
        before={"removed": normalised},
        agency_id=effective_agency_id(session, group.agency_id, group.domain_id),
    )
