"""Mailbox administration within a scope: list/search, update, states, leavers, send-as.

Creation, passwords, state changes and deletion themselves are :mod:`storage.accounts`; this
module finds the mailbox inside the caller's scope (a mailbox outside it raises
:class:`AccountNotFound`, the same as a missing one) and adds the admin operations around them.

Leavers (provincial rule): a leaver is blocked at once and the account with its data deleted
after the retention period (3 months). :func:`retire_mailbox` disables the account and says
when it may go; :func:`purge_retired` deletes those whose time has come.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, text
from sqlmodel import Session, col, select

from storage.accounts import (
    audit,
    auditable_mailbox,
    delete_mailbox,
    mailbox_agency_id,
    normalise_address,
    set_password,
    set_state,
)
from storage.admin_scope import Scope, address_in_scope, owned_condition
from storage.listing import Page, PageRequest, contains_pattern, fetch_page
from storage.mailbox_ops import AccountNotFound, MailboxError
from storage.models import Agency, Domain, Mailbox, MailboxState, SendAsGrant
from storage.text_fold import fold_query

MAILBOX_SORTS = {
    "id": Mailbox.id,
    "address": Mailbox.address,
    "display_name": Mailbox.display_name,
    "created_at": Mailbox.created_at,
    "last_login_at": Mailbox.last_login_at,
    "used_bytes": Mailbox.used_bytes,
    "quota_bytes": Mailbox.quota_bytes,
    "state": Mailbox.state,
}
MIN_QUOTA_BYTES = 1024 * 1024
TRIGRAM = 3


@dataclass(frozen=True)
class MailboxFilter:
    q: str = ""  # part of the address or the name, accents and case ignored
    state: str | None = None
    agency_id: int | None = None  # exactly this agency (own or by domain)
    domain: str | None = None
    never_logged_in: bool | None = None


@dataclass(frozen=True)
class MailboxChanges:
    """Fields to change; None leaves a field as it is."""

    display_name: str | None = None
    position: str | None = None
    quota_bytes: int | None = None
    must_change_password: bool | None = None
    agency_id: int | None = None


def mailbox_in_scope(scope: Scope) -> ColumnElement[bool]:
    return owned_condition(scope, Mailbox.agency_id, Mailbox.domain_id)


def get_mailbox(session: Session, scope: Scope, mailbox_id: int) -> Mailbox:
    mailbox = session.exec(
        select(Mailbox).where(col(Mailbox.id) == mailbox_id, mailbox_in_scope(scope))
    ).first()
    if mailbox is None:
        raise AccountNotFound(f"no mailbox {mailbox_id}")
    return mailbox


def find_mailbox_in_scope(session: Session, scope: Scope, address: str) -> Mailbox:
    try:
        normalised = normalise_address(address)
    except ValueError as exc:
        raise AccountNotFound(f"no mailbox {address}") from exc
    mailbox = session.exec(
        select(Mailbox).where(col(Mailbox.address) == normalised, mailbox_in_scope(scope))
    ).first()
    if mailbox is None:
        raise AccountNotFound(f"no mailbox {address}")
    return mailbox


def search_condition(session: Session, q: str) -> ColumnElement[bool]:
    """Part of the folded name or address. SQLite answers from the FTS5 trigram table kept by
    migration 0007, PostgreSQL from its pg_trgm index on the same LIKE; needles shorter than a
    trigram are a scan of the column (still no message data)."""
    needle = fold_query(q)
    pattern = col(Mailbox.search_text).like(contains_pattern(needle), escape="\\")
    if len(needle) < TRIGRAM or session.get_bind().dialect.name != "sqlite":
        return pattern
    phrase = '"' + needle.replace('"', '""') + '"'  # an FTS5 string (sqlite.org/fts5.html 3.1)
    matching = text("SELECT rowid FROM mailbox_fts WHERE mailbox_fts MATCH :phrase")
    return col(Mailbox.id).in_(matching.bindparams(phrase=phrase).columns(rowid=Integer))


def list_mailbox_page(
    session: Session, scope: Scope, filters: MailboxFilter, page: PageRequest
) -> Page[Mailbox]:
    query = select(Mailbox).where(mailbox_in_scope(scope))
    if filters.q:
        query = query.where(search_condition(session, filters.q))
    if filters.state:
        query = query.where(col(Mailbox.state) == filters.state)
    if filters.agency_id is not None:
        one_agency = Scope(frozenset({filters.agency_id}))
        query = query.where(owned_condition(one_agency, Mailbox.agency_id, Mailbox.domain_id))
    if filters.domain:
        domain_ids = select(col(Domain.id)).where(col(Domain.name) == filters.domain.lower())
        query = query.where(col(Mailbox.domain_id).in_(domain_ids))
    if filters.never_logged_in is not None:
        login = col(Mailbox.last_login_at)
        query = query.where(login.is_(None) if filters.never_logged_in else login.is_not(None))
    return fetch_page(session, query, Mailbox.id, page, MAILBOX_SORTS, "address")


def update_mailbox(
    session: Session, scope: Scope, actor: str, mailbox_id: int, changes: MailboxChanges
) -> Mailbox:
    mailbox = get_mailbox(session, scope, mailbox_id)
    before = auditable_mailbox(mailbox)
    if changes.display_name is not None:
        mailbox.display_name = changes.display_name.strip()
    if changes.position is not None:
        mailbox.position = changes.position.strip()
    if changes.quota_bytes is not None:
        if changes.quota_bytes < MIN_QUOTA_BYTES:
            raise MailboxError(f"quota must be at least {MIN_QUOTA_BYTES} bytes")
        mailbox.quota_bytes = changes.quota_bytes
    if changes.must_change_password is not None:
        mailbox.must_change_password = changes.must_change_password
    if changes.agency_id is not None:
        if not scope.covers(changes.agency_id) or session.get(Agency, changes.agency_id) is None:
            raise AccountNotFound(f"no agency {changes.agency_id}")
        mailbox.agency_id = changes.agency_id
    session.add(mailbox)
    session.flush()
    audit(
        session,
        actor,
        "mailbox.update",
        "mailbox",
        mailbox.address,
        before,
        auditable_mailbox(mailbox),
        agency_id=mailbox_agency_id(session, mailbox),
    )
    return mailbox


def change_state(
    session: Session, scope: Scope, actor: str, mailbox_id: int, state: MailboxState
) -> Mailbox:
    """Lock, unlock (active) or disable; a locked mailbox still receives mail."""
    mailbox = get_mailbox(session, scope, mailbox_id)
    set_state(session, actor, mailbox.address, state)
    return mailbox


def reset_password(
    session: Session,
    scope: Scope,
    actor: str,
    mailbox_id: int,
    password_hash: str,
    must_change: bool,
) -> Mailbox:
    mailbox = get_mailbox(session, scope, mailbox_id)
    set_password(session, actor, mailbox.address, password_hash, must_change)
    return mailbox


def delete_after(mailbox: Mailbox, retention: timedelta) -> datetime | None:
    """When a disabled mailbox may be deleted with its data; None if it is not disabled."""
    if mailbox.state != MailboxState.DISABLED or mailbox.disabled_at is None:
        return None
    return mailbox.disabled_at + retention


def retire_mailbox(
    session: Session, scope: Scope, actor: str, mailbox_id: int, retention: timedelta
) -> Mailbox:
    """A leaver: blocked at once (disabled: no login, no mail), deleted after ``retention``."""
    mailbox = get_mailbox(session, scope, mailbox_id)
    if mailbox.state != MailboxState.DISABLED:
        set_state(session, actor, mailbox.address, MailboxState.DISABLED)
    return mailbox


def purge_retired(
    session: Session, scope: Scope, actor: str, now: datetime, retention: timedelta
) -> list[str]:
    """Delete every disabled mailbox in scope whose retention period has ended."""
    due = session.exec(
        select(Mailbox)
        .where(
            mailbox_in_scope(scope),
            col(Mailbox.state) == MailboxState.DISABLED,
            col(Mailbox.disabled_at) <= now - retention,
        )
        .order_by(col(Mailbox.address))
    ).all()
    for mailbox in due:
        delete_mailbox(session, actor, mailbox.address)
    return [mailbox.address for mailbox in due]


# ---------------------------------------------------------------- send-as delegation


def list_send_as(session: Session, scope: Scope, mailbox_id: int) -> list[SendAsGrant]:
    get_mailbox(session, scope, mailbox_id)
    query = select(SendAsGrant).where(col(SendAsGrant.mailbox_id) == mailbox_id)
    return list(session.exec(query.order_by(col(SendAsGrant.address))))


def grant_send_as(
    session: Session, scope: Scope, actor: str, mailbox_id: int, address: str
) -> SendAsGrant:
    """Let the mailbox send as ``address`` (an address its scope may administer)."""
    mailbox = get_mailbox(session, scope, mailbox_id)
    normalised = normalise_address(address)
    if not address_in_scope(session, scope, normalised):
        raise AccountNotFound(f"no address {normalised} to delegate")
    existing = session.exec(
        select(SendAsGrant).where(
            col(SendAsGrant.mailbox_id) == mailbox_id, col(SendAsGrant.address) == normalised
        )
    ).first()
    if existing is not None:
        return existing
    grant = SendAsGrant(mailbox_id=mailbox_id, address=normalised)
    session.add(grant)
    session.flush()
    audit(
        session,
        actor,
        "mailbox.send_as.grant",
        "mailbox",
        mailbox.address,
        after={"send_as": normalised},
        agency_id=mailbox_agency_id(session, mailbox),
    )
    return grant


def revoke_send_as(
    session: Session, scope: Scope, actor: str, mailbox_id: int, address: str
) -> None:
    mailbox = get_mailbox(session, scope, mailbox_id)
    try:
        normalised = normalise_address(address)
    except ValueError as exc:
        raise AccountNotFound(f"no delegation to {address}") from exc
    grant = session.exec(
        select(SendAsGrant).where(
            col(SendAsGrant.mailbox_id) == mailbox_id, col(SendAsGrant.address) == normalised
        )
    ).first()
    if grant is None:
        raise AccountNotFound(f"no delegation to {normalised}")
    session.delete(grant)
    audit(
        session,
        actor,
        "mailbox.send_as.revoke",
        "mailbox",
        mailbox.address,
        before={"send_as": normalised},
        agency_id=mailbox_agency_id(session, mailbox),
    )
