"""Reading the audit log: filters, paging, and the agency scope of the reader.

Events are written by :func:`storage.accounts.audit` in the same transaction as each change;
this module only reads them. An agency admin sees events about its subtree's objects; events
without an agency (system-wide) are for the system admin and whole-tree auditors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from storage.admin_scope import Scope, agency_condition
from storage.listing import Page, PageRequest, fetch_page
from storage.models import AuditEvent

AUDIT_SORTS = {"at": AuditEvent.at, "id": AuditEvent.id, "action": AuditEvent.action}


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("mailbox.")
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_audit_page(
    session: Session, scope: Scope, filters: AuditFilter, page: PageRequest
) -> Page[AuditEvent]:
    query = select(AuditEvent).where(agency_condition(scope, AuditEvent.agency_id))
    if filters.actor:
        query = query.where(col(AuditEvent.actor) == filters.actor)
    if filters.action:
        if filters.action.endswith("."):
            query = query.where(col(AuditEvent.action).startswith(filters.action, autoescape=True))
        else:
            query = query.where(col(AuditEvent.action) == filters.action)
    if filters.object_type:
        query = query.where(col(AuditEvent.object_type) == filters.object_type)
    if filters.object_id:
        query = query.where(col(AuditEvent.object_id) == filters.object_id)
    if filters.since:
        query = query.where(col(AuditEvent.at) >= filters.since)
    if filters.until:
        query = query.where(col(AuditEvent.at) < filters.until)
    return fetch_page(session, query, AuditEvent.id, page, AUDIT_SORTS, "-at")
