"""Who is calling: the bearer token, its role and the part of the agency tree it reaches.

Tokens are looked up by hash (:mod:`storage.tokens`); unknown, expired and revoked tokens all
get the same 401. Roles: ``system_admin`` (everything), ``agency_admin`` (its agency's subtree,
read and write), ``auditor`` (read only; the whole tree, or one subtree if the token names an
agency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from admin_api.runtime import store_of
from storage.admin_scope import EVERYTHING, Scope, scope_of_agency
from storage.tokens import ApiRole, find_valid_token

_bearer = HTTPBearer(auto_error=False, description="An admin API token (gm_...)")
MAX_TOKEN_LENGTH = 200
PRINCIPAL_STATE = "principal"  # request.state attribute of an already checked token


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: ApiRole
    agency_id: int | None
    scope: Scope

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"token:{self.token_id}:{self.name}"

    @property
    def may_write(self) -> bool:
        return self.role in (ApiRole.SYSTEM_ADMIN, ApiRole.AGENCY_ADMIN)


async def principal_of_token(request: Request, token: str) -> Principal | None:
    """The caller a bearer token names, or None for an unknown, expired or revoked one."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None

    def load(session: Session) -> Principal | None:
        row = find_valid_token(session, token)
        if row is None or row.id is None:
            return None
        try:
            role = ApiRole(row.role)
        except ValueError:
            return None
        if role == ApiRole.SYSTEM_ADMIN:
            scope = EVERYTHING
        elif row.agency_id is not None:
            scope = scope_of_agency(session, row.agency_id)
        elif role == ApiRole.AUDITOR:
            scope = EVERYTHING
        else:  # an agency admin of no agency reaches nothing
            scope = Scope(frozenset())
        return Principal(row.id, row.name, role, row.agency_id, scope)

    return await store_of(request).read(load)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The body limit middleware (admin_api.body_limit) may have checked the token already.
    checked = getattr(request.state, PRINCIPAL_STATE, None)
    if isinstance(checked, Principal):
        return checked
    principal = None
    if credentials is not None:
        principal = await principal_of_token(request, credentials.credentials)
    if principal is None:
        raise HTTPException(401, "a valid bearer token is required")
    return principal


async def writer(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """A caller that may change things (not an auditor)."""
    if not principal.may_write:
        raise HTTPException(403, "this token is read-only")
    return principal


async def system_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != ApiRole.SYSTEM_ADMIN:
        raise HTTPException(403, "only a system admin may do this")
    return principal


Reader = Annotated[Principal, Depends(authenticate)]
Writer = Annotated[Principal, Depends(writer)]
SystemAdmin = Annotated[Principal, Depends(system_admin)]
