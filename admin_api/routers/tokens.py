"""/v1/tokens: API tokens (issued once in clear, stored hashed), expiry and revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlmodel import Session

from admin_api.actions import read, write
from admin_api.paging import PageOut, Paging, page_out
from admin_api.principal import Reader, Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import PathId, TokenIn, TokenIssued, TokenOut
from storage.agency_tree import get_agency
from storage.models import ApiToken, utcnow
from storage.tokens import (
    ApiRole,
    find_valid_token,
    get_token,
    issue_token,
    list_token_page,
    revoke_token,
)

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=PageOut[TokenOut])
async def list_tokens_route(request: Request, who: Reader, page: Paging) -> dict[str, Any]:
    result = await read(request, lambda s: list_token_page(s, who.scope, page))
    return page_out(result, TokenOut.model_validate)


@router.get("/me", response_model=TokenOut)
async def my_token_route(request: Request, who: Reader) -> TokenOut:
    """The token making this request."""
    row = await read(request, lambda s: s.get(ApiToken, who.token_id))
    return TokenOut.model_validate(row)


@router.post("", response_model=TokenIssued, status_code=201)
async def issue_token_route(request: Request, who: Writer, body: TokenIn) -> TokenIssued:
    """A system admin issues any token; an agency admin only agency-admin or auditor tokens
    for its own subtree."""
    role = ApiRole(body.role)
    agency_id = body.agency_id
    if who.role != ApiRole.SYSTEM_ADMIN:
        if role == ApiRole.SYSTEM_ADMIN:
            raise HTTPException(403, "only a system admin may issue system admin tokens")
        agency_id = agency_id if agency_id is not None else who.agency_id
    if role == ApiRole.AGENCY_ADMIN and agency_id is None:
        raise HTTPException(422, "an agency admin token needs agency_id")
    if role == ApiRole.SYSTEM_ADMIN:
        agency_id = None
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None

    def issue(session: Session) -> tuple[str, ApiToken]:
        if agency_id is not None:
            get_agency(session, who.scope, agency_id)
        token = issue_token(session, who.actor, body.name, role, agency_id, expires)
        row = find_valid_token(session, token)
        assert row is not None
        return token, row

    token, row = await write(request, issue)
    return TokenIssued(token=token, info=TokenOut.model_validate(row))


@router.get("/{token_id}", response_model=TokenOut)
async def get_token_route(request: Request, who: Reader, token_id: PathId) -> TokenOut:
    return TokenOut.model_validate(await read(request, lambda s: get_token(s, who.scope, token_id)))


@router.delete("/{token_id}", response_model=TokenOut)
async def revoke_token_route(request: Request, who: Writer, token_id: PathId) -> TokenOut:
    """Revoke now; the token stops working with the next request."""
    row = await write(request, lambda s: revoke_token(s, who.scope, who.actor, token_id))
    return TokenOut.model_validate(row)
