"""The agency tree: list, update, move and merge agencies (province mergers), within a scope.

Creation is :func:`storage.accounts.create_agency`; this module adds what administration needs
around it. Each change writes an audit event in the caller's transaction. An agency outside the
caller's scope raises :class:`AgencyNotFound`, exactly as a missing one does.

Merging (the 2025 province mergers: 63 provinces became 34) moves everything of the source
agency to the target: its sub-agencies, its domains (kept as *legacy* domains, so mail to the
old addresses still arrives), its mailboxes, aliases and groups. API tokens scoped to the
source are revoked rather than moved, since moving them would silently widen what they reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.abbreviations import abbreviation_owner, suffix_taken_by_others
from storage.accounts import audit, create_agency
from storage.admin_scope import Scope, agency_condition, subtree_ids
from storage.agency_code import AgencyCodeError, parse_agency_code
from storage.listing import BadListRequest, Page, PageRequest, contains_pattern, fetch_page
from storage.mailbox_ops import MailboxError
from storage.models import Agency, Alias, ApiToken, Domain, DomainKind, Mailbox, MailGroup, utcnow
from storage.text_fold import fold_for_search

AGENCY_SORTS = {
    "id": Agency.id,
    "name": Agency.name,
    "abbreviation": Agency.abbreviation,
    "code": Agency.code,
    "created_at": Agency.created_at,
}


class AgencyNotFound(MailboxError):
    pass


class AgencyConflict(MailboxError):
    """A duplicate code, a move into its own subtree, a merge with itself, a non-empty delete."""


@dataclass(frozen=True)
class AgencyFilter:
    parent_id: int | None = None
    q: str = ""  # part of the name or abbreviation
    code_prefix: str = ""  # an agency code (either form): it and everything below


@dataclass(frozen=True)
class MergeResult:
    children: int
    domains: int
    mailboxes: int
    aliases: int
    groups: int
    tokens_revoked: int


def canonical_code(text: str | None) -> str | None:
    """The stored (QĐ 20) form of an agency code written in either form; '' or None: none."""
    if not text:
        return None
    try:
        return parse_agency_code(text).qd20()
    except AgencyCodeError as exc:
        raise AgencyConflict(str(exc)) from exc


def qcvn102_or_none(code: str | None) -> str | None:
    """The QCVN 102:2016 form of a stored code, or None when it does not fit that form."""
    if code is None:
        return None
    try:
        return parse_agency_code(code).qcvn102()
    except AgencyCodeError:
        return None


def get_agency(session: Session, scope: Scope, agency_id: int) -> Agency:
    agency = session.get(Agency, agency_id)
    if agency is None or agency.id is None or not scope.covers(agency.id):
        raise AgencyNotFound(f"no agency {agency_id}")
    return agency


def list_agencies(
    session: Session, scope: Scope, filters: AgencyFilter, page: PageRequest
) -> Page[Agency]:
    query = select(Agency).where(agency_condition(scope, Agency.id))
    if filters.parent_id is not None:
        query = query.where(col(Agency.parent_id) == filters.parent_id)
    if filters.q:
        pattern = contains_pattern(filters.q.lower())
        query = query.where(
            col(Agency.name).ilike(pattern, escape="\\")
            | col(Agency.abbreviation).ilike(pattern, escape="\\")
        )
    if filters.code_prefix:
        try:
            code = parse_agency_code(filters.code_prefix).qd20()
        except AgencyCodeError as exc:
            raise BadListRequest(str(exc)) from exc
        query = query.where(
            (col(Agency.code) == code) | col(Agency.code).startswith(code + ".", autoescape=True)
        )
    return fetch_page(session, query, Agency.id, page, AGENCY_SORTS, "name")


def _check_code_free(session: Session, code: str | None, agency_id: int | None) -> None:
    if code is None:
        return
    existing = session.exec(select(Agency.id).where(Agency.code == code)).first()
    if existing is not None and existing != agency_id:
        raise AgencyConflict(f"agency code {code} is already used")


def add_agency(
    session: Session,
    scope: Scope,
    actor: str,
    abbreviation: str,
    name: str,
    parent_id: int | None,
    code: str | None = None,
) -> Agency:
    """A new agency under ``parent_id`` (None: a new root, for the whole-tree scope only)."""
    if parent_id is None:
        if not scope.is_everything:
            raise AgencyNotFound("an agency admin can only add agencies inside its own tree")
    else:
        get_agency(session, scope, parent_id)
    stored = canonical_code(code)
    _check_code_free(session, stored, None)
    _check_abbreviation(session, abbreviation, None, parent_id)
    return create_agency(session, actor, abbreviation.strip(), name.strip(), parent_id, stored)


def _check_abbreviation(
    session: Session, abbreviation: str, agency_id: int | None, parent_id: int | None
) -> None:
    """Not empty, and unique where it forms addresses (storage.abbreviations)."""
    if not fold_for_search(abbreviation).strip():
        raise AgencyConflict("abbreviation must not be empty")
    if abbreviation_owner(session, abbreviation, agency_id) is not None:
        raise AgencyConflict(f"abbreviation {abbreviation.strip()!r} is already used")
    if suffix_taken_by_others(session, abbreviation, agency_id, parent_id) is not None:
        raise AgencyConflict(
            f"abbreviation {abbreviation.strip()!r} already ends addresses of another agency"
        )


def update_agency(
    session: Session, scope: Scope, actor: str, agency_id: int, changes: dict[str, Any]
) -> Agency:
    """Change ``name``, ``abbreviation`` or ``code`` (a dict of the fields given)."""
    agency = get_agency(session, scope, agency_id)
    before = agency.model_dump()
    if "code" in changes:
        code = canonical_code(changes["code"])
        _check_code_free(session, code, agency.id)
        agency.code = code
    if changes.get("name") is not None:
        agency.name = str(changes["name"]).strip()
    if changes.get("abbreviation") is not None:
        _check_abbreviation(session, changes["abbreviation"], agency.id, agency.parent_id)
        agency.abbreviation = str(changes["abbreviation"]).strip()
    session.add(agency)
    audit(
        session,
        actor,
        "agency.update",
        "agency",
        str(agency.id),
        before,
        agency.model_dump(),
        agency_id=agency.id,
    )
    return agency


def move_agency(
    session: Session, scope: Scope, actor: str, agency_id: int, new_parent_id: int | None
) -> Agency:
    """Re-attach an agency (with its subtree) under another parent; never into itself."""
    agency = get_agency(session, scope, agency_id)
    if new_parent_id is not None:
        get_agency(session, scope, new_parent_id)
        if new_parent_id in subtree_ids(session, agency_id):
            raise AgencyConflict("an agency cannot move below itself")
    elif not scope.is_everything:
        raise AgencyNotFound("an agency admin cannot make a root agency")
    before = {"parent_id": agency.parent_id}
    agency.parent_id = new_parent_id
    session.add(agency)
    audit(
        session,
        actor,
        "agency.move",
        "agency",
        str(agency.id),
        before,
        {"parent_id": new_parent_id},
        agency_id=agency.id,
    )
    return agency


def merge_agency(
    session: Session, scope: Scope, actor: str, source_id: int, target_id: int
) -> MergeResult:
    """Move everything of ``source`` into ``target`` and delete ``source``."""
    source = get_agency(session, scope, source_id)
    target = get_agency(session, scope, target_id)
    if source_id == target_id:
        raise AgencyConflict("an agency cannot merge with itself")
    if target_id in subtree_ids(session, source_id):
        raise AgencyConflict("an agency cannot merge into one of its own sub-agencies")

    def repoint(model: Any, column: Any, **extra: Any) -> int:
        values = {column.key: target_id, **extra}
        result = session.execute(update(model).where(column == source_id).values(**values))
        return int(result.rowcount)  # type: ignore[attr-defined]

    result = MergeResult(
        children=repoint(Agency, col(Agency.parent_id)),
        domains=repoint(Domain, col(Domain.agency_id), kind=DomainKind.LEGACY),
        mailboxes=repoint(Mailbox, col(Mailbox.agency_id)),
        aliases=repoint(Alias, col(Alias.agency_id)),
        groups=repoint(MailGroup, col(MailGroup.agency_id)),
        tokens_revoked=int(
            session.execute(  # type: ignore[attr-defined]
                update(ApiToken)
                .where(col(ApiToken.agency_id) == source_id, col(ApiToken.revoked_at).is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        ),
    )
    # Revoked tokens keep pointing at an agency id that no longer exists: detach them.
    session.execute(
        update(ApiToken).where(col(ApiToken.agency_id) == source_id).values(agency_id=target_id)
    )
    session.expire_all()
    audit(
        session,
        actor,
        "agency.merge",
        "agency",
        str(source_id),
        source.model_dump(),
        {"merged_into": target.id, **result.__dict__},
        agency_id=target_id,
    )
    session.delete(session.get(Agency, source_id))
    return result


def delete_agency(session: Session, scope: Scope, actor: str, agency_id: int) -> None:
    """Delete an agency that holds nothing: no sub-agency, domain, mailbox, alias or group."""
    agency = get_agency(session, scope, agency_id)
    if scope.root_agency_id == agency_id:
        raise AgencyConflict("an agency admin cannot delete its own agency")
    for model, column in (
        (Agency, Agency.parent_id),
        (Domain, Domain.agency_id),
        (Mailbox, Mailbox.agency_id),
        (Alias, Alias.agency_id),
        (MailGroup, MailGroup.agency_id),
    ):
        if session.exec(select(model).where(column == agency_id).limit(1)).first() is not None:
            raise AgencyConflict(f"agency {agency_id} still holds a {model.__tablename__}")
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.agency_id) == agency_id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.agency_id) == agency_id)
        .values(agency_id=agency.parent_id)
    )
    audit(
        session,
        actor,
        "agency.delete",
        "agency",
        str(agency_id),
        agency.model_dump(),
        agency_id=agency.parent_id,
    )
    session.delete(agency)
