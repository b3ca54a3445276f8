"""Admin API bearer tokens: issued once in clear, stored as sha256, checked by hash.

Roles: a system admin sees and changes everything; an agency admin only its agency's subtree;
an auditor reads (everything, or one subtree when the token names an agency). Tokens expire
and can be revoked; neither is ever undone.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from storage.accounts import audit
from storage.admin_scope import Scope, agency_condition
from storage.listing import Page, PageRequest, fetch_page
from storage.mailbox_ops import MailboxError
from storage.models import ApiToken, utcnow

TOKEN_PREFIX = "gm_"
TOKEN_SORTS = {"id": ApiToken.id, "name": ApiToken.name, "created_at": ApiToken.created_at}


class ApiRole(StrEnum):
    SYSTEM_ADMIN = "system_admin"
    AGENCY_ADMIN = "agency_admin"
    AUDITOR = "auditor"


class TokenNotFound(MailboxError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    actor: str,
    name: str,
    role: str,
    agency_id: int | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Create a token and return it in clear; this is the only time it is visible."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_sha256=hash_token(token),
        role=role,
        agency_id=agency_id,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        actor,
        "token.issue",
        "api_token",
        str(row.id),
        after={"name": name, "role": role, "agency_id": agency_id, "expires_at": expires_at},
        agency_id=agency_id,
    )
    return token


def find_valid_token(session: Session, token: str) -> ApiToken | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


def get_token(session: Session, scope: Scope, token_id: int) -> ApiToken:
    row = session.exec(
        select(ApiToken).where(
            col(ApiToken.id) == token_id, agency_condition(scope, ApiToken.agency_id)
        )
    ).first()
    if row is None:
        raise TokenNotFound(f"no token {token_id}")
    return row


def list_token_page(session: Session, scope: Scope, page: PageRequest) -> Page[ApiToken]:
    query = select(ApiToken).where(agency_condition(scope, ApiToken.agency_id))
    return fetch_page(session, query, ApiToken.id, page, TOKEN_SORTS, "id")


def revoke_token(session: Session, scope: Scope, actor: str, token_id: int) -> ApiToken:
    """Revoke a token now (idempotent: revoking twice keeps the first time)."""
    row = get_token(session, scope, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        audit(
            session,
            actor,
            "token.revoke",
            "api_token",
            str(row.id),
            after={"revoked_at": row.revoked_at},
            agency_id=row.agency_id,
        )
    return row
