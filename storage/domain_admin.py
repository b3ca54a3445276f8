"""Domains of agencies within a scope: list, add, change kind, delete.

An agency has one primary domain and may keep legacy ones (after a province merger mail to the
old domain still arrives). Creation is :func:`storage.accounts.create_domain`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from storage.abbreviations import ancestor_ids
from storage.accounts import audit, create_domain
from storage.admin_scope import Scope, agency_condition
from storage.listing import Page, PageRequest, contains_pattern, fetch_page
from storage.mailbox_ops import MailboxError
from storage.models import Agency, Alias, DkimKey, Domain, DomainKind, Mailbox, MailGroup

DOMAIN_SORTS = {"id": Domain.id, "name": Domain.name, "created_at": Domain.created_at}


class DomainMissing(MailboxError):
    pass


class DomainUnavailable(MailboxError):
    """The name is under a domain of an agency the caller does not administer."""


@dataclass(frozen=True)
class DomainFilter:
    q: str = ""
    agency_id: int | None = None
    kind: str | None = None


def get_domain(session: Session, scope: Scope, domain_id: int) -> Domain:
    domain = session.exec(
        select(Domain).where(col(Domain.id) == domain_id, agency_condition(scope, Domain.agency_id))
    ).first()
    if domain is None:
        raise DomainMissing(f"no domain {domain_id}")
    return domain


def list_domain_page(
    session: Session, scope: Scope, filters: DomainFilter, page: PageRequest
) -> Page[Domain]:
    query = select(Domain).where(agency_condition(scope, Domain.agency_id))
    if filters.q:
        query = query.where(col(Domain.name).like(contains_pattern(filters.q.lower()), escape="\\"))
    if filters.agency_id is not None:
        query = query.where(col(Domain.agency_id) == filters.agency_id)
    if filters.kind:
        query = query.where(col(Domain.kind) == filters.kind)
    return fetch_page(session, query, Domain.id, page, DOMAIN_SORTS, "name")


def add_domain(
    session: Session, scope: Scope, actor: str, name: str, agency_id: int, kind: DomainKind
) -> Domain:
    if not scope.covers(agency_id) or session.get(Agency, agency_id) is None:
        raise DomainMissing(f"no agency {agency_id}")
    if not _may_name_under(session, scope, name.strip().lower().rstrip("."), agency_id):
        raise DomainUnavailable(f"{name.strip()} is not available")
    try:
        return create_domain(session, actor, name, agency_id, kind)
    except ValueError as exc:
        raise MailboxError(str(exc)) from exc


def _may_name_under(session: Session, scope: Scope, name: str, agency_id: int) -> bool:
    """A new domain may lie under a domain of the caller's tree or of the agency's ancestors
    (a department's ``stc.hanoi.gov.vn`` under the province's), never under another's."""
    ancestors = set(ancestor_ids(session, agency_id))
    for parent in session.exec(select(Domain)):
        if name.endswith("." + parent.name) and not (
            scope.covers(parent.agency_id) or parent.agency_id in ancestors
        ):
            return False
    return True


def set_domain_kind(
    session: Session, scope: Scope, actor: str, domain_id: int, kind: DomainKind
) -> Domain:
    domain = get_domain(session, scope, domain_id)
    before = {"kind": domain.kind}
    domain.kind = kind
    session.add(domain)
    audit(
        session,
        actor,
        "domain.update",
        "domain",
        domain.name,
        before,
        {"kind": kind},
        agency_id=domain.agency_id,
    )
    return domain


def delete_domain(session: Session, scope: Scope, actor: str, domain_id: int) -> None:
    """Delete a domain that holds no mailbox, alias or group; its DKIM key rows go with it.

    The private key files stay in the DKIM key directory (mode 0600) until an admin removes
    them: a transaction cannot take back a file deletion.
    """
    domain = get_domain(session, scope, domain_id)
    for model in (Mailbox, Alias, MailGroup):
        if session.exec(select(model).where(model.domain_id == domain_id).limit(1)).first():
            raise MailboxError(f"domain {domain.name} still holds a {model.__tablename__}")
    for key in session.exec(select(DkimKey).where(DkimKey.domain_id == domain_id)):
        session.delete(key)
    session.flush()
    audit(
        session,
        actor,
        "domain.delete",
        "domain",
        domain.name,
        before=domain.model_dump(),
        agency_id=domain.agency_id,
    )
    session.delete(domain)
