"""What part of the agency tree an administrator may see: a scope, and the SQL that enforces it.

A :class:`Scope` is either everything (the system admin, the CLI) or the set of agency ids of one
agency's subtree (an agency admin, a scoped auditor). Every admin query over agencies, domains,
mailboxes, aliases, groups, tokens and the audit log adds the condition built here, so an object
outside the scope is indistinguishable from one that does not exist.

Mailboxes, aliases and groups belong to their own ``agency_id`` when set (a person of Sở KH&CN
with an address on the shared province domain), else to their domain's agency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, true
from sqlmodel import Session, col, select

from storage.address_convention import normalise_agency_abbreviation
from storage.models import Agency, Alias, Domain, Mailbox, MailGroup


@dataclass(frozen=True)
class Scope:
    """``agency_ids`` None: the whole tree; else only these agencies (a subtree)."""

    agency_ids: frozenset[int] | None = None
    root_agency_id: int | None = None

    @property
    def is_everything(self) -> bool:
        return self.agency_ids is None

    def covers(self, agency_id: int | None) -> bool:
        """True if the scope includes ``agency_id`` (None, a system-wide object: only all)."""
        if self.agency_ids is None:
            return True
        return agency_id is not None and agency_id in self.agency_ids


EVERYTHING = Scope()


def subtree_ids(session: Session, agency_id: int) -> frozenset[int]:
    """The agency and every agency below it (a recursive query; the tree may be any depth)."""
    tree = (
        select(col(Agency.id).label("id"))
        .where(col(Agency.id) == agency_id)
        .cte("subtree", recursive=True)
    )
    tree = tree.union_all(select(col(Agency.id)).where(col(Agency.parent_id) == tree.c.id))
    return frozenset(session.exec(select(tree.c.id)).all())


def scope_of_agency(session: Session, agency_id: int) -> Scope:
    return Scope(subtree_ids(session, agency_id), agency_id)


def agency_condition(scope: Scope, agency_column: Any) -> ColumnElement[bool]:
    """``agency_column IN scope`` (always true for everything)."""
    if scope.agency_ids is None:
        return true()
    if not scope.agency_ids:
        return false()
    return col(agency_column).in_(sorted(scope.agency_ids))


def owned_condition(scope: Scope, agency_column: Any, domain_column: Any) -> ColumnElement[bool]:
    """For rows with their own ``agency_id`` that falls back to their domain's agency."""
    if scope.agency_ids is None:
        return true()
    ids = sorted(scope.agency_ids)
    domains_in_scope = select(col(Domain.id)).where(col(Domain.agency_id).in_(ids))
    return or_(
        col(agency_column).in_(ids),
        and_(col(agency_column).is_(None), col(domain_column).in_(domains_in_scope)),
    )


def effective_agency_id(session: Session, agency_id: int | None, domain_id: int) -> int:
    """The agency an object with this own ``agency_id`` and ``domain_id`` belongs to."""
    if agency_id is not None:
        return agency_id
    domain = session.get(Domain, domain_id)
    assert domain is not None
    return domain.agency_id


def may_use_address(session: Session, scope: Scope, address: str, agency_id: int) -> bool:
    """May this scope create ``address`` (already normalised) for an agency of its subtree?

    Yes when the domain belongs to the scope, or when the domain belongs to an ancestor (the
    shared province domain) and the local part ends in ``.<abbreviation>`` of ``agency_id``
    (the provincial convention ``thanhnn.skhcn@province.gov.vn``), so one agency's admin can
    never take another agency's names on the shared domain.
    """
    if not scope.covers(agency_id):
        return False
    domain = session.exec(select(Domain).where(Domain.name == address.rpartition("@")[2])).first()
    if domain is None:
        return False
    if scope.covers(domain.agency_id):
        return True
    agency = session.get(Agency, agency_id)
    if agency is None or _abbreviation_shared(session, agency):
        return False
    try:
        suffix = "." + normalise_agency_abbreviation(agency.abbreviation)
    except ValueError:
        return False
    return address.rpartition("@")[0].endswith(suffix)


def _abbreviation_shared(session: Session, agency: Agency) -> bool:
    """Another agency with the same abbreviation (from before they had to be unique): the
    name is nobody's to take by the convention."""
    same = session.exec(
        select(Agency.id).where(
            func.lower(Agency.abbreviation) == agency.abbreviation.strip().lower(),
            col(Agency.id) != agency.id,
        )
    ).first()
    return same is not None


def address_taken(session: Session, address: str) -> bool:
    """Is ``address`` (normalised) already a mailbox, an alias or a group?"""
    return any(
        session.exec(select(model.id).where(model.address == address)).first() is not None
        for model in (Mailbox, Alias, MailGroup)
    )


def address_in_scope(session: Session, scope: Scope, address: str) -> bool:
    """Is ``address`` (normalised) a mailbox, alias or group that this scope administers?"""
    for model in (Mailbox, Alias, MailGroup):
        found = session.exec(
            select(model.id).where(
                model.address == address,
                owned_condition(scope, model.agency_id, model.domain_id),
            )
        ).first()
        if found is not None:
            return True
    return False
