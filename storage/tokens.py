"""Admin API bearer tokens: issued once in clear, stored as sha256, checked by hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlmodel import Session, select

from storage.accounts import audit
from storage.models import ApiToken, utcnow

TOKEN_PREFIX = "gm_"


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
        session, actor, "token.issue", "api_token", str(row.id), after={"name": name, "role": role}
    )
    return token


def find_valid_token(session: Session, token: str) -> ApiToken | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row
