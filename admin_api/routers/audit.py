"""/v1/audit: the audit log (who, what, when, before, after), filtered and paged."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from admin_api.actions import read
from admin_api.paging import PageOut, Paging, page_out
from admin_api.principal import Reader
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import AuditOut, Printable
from storage.audit_log import AuditFilter, list_audit_page
from storage.models import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)
Filter = Annotated[str | None, Query(max_length=320), Printable]


def audit_out(event: AuditEvent) -> AuditOut:
    data = event.model_dump()
    for side in ("before", "after"):
        data[side] = json.loads(data[side]) if data[side] else None
    return AuditOut.model_validate(data)


@router.get("", response_model=PageOut[AuditOut])
async def list_audit_route(
    request: Request,
    who: Reader,
    page: Paging,
    actor: Filter = None,
    action: Annotated[
        str | None,
        Query(max_length=64, description="Exact, or a prefix ending in '.'"),
        Printable,
    ] = None,
    object_type: Filter = None,
    object_id: Filter = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    filters = AuditFilter(actor, action, object_type, object_id, since, until)
    result = await read(request, lambda s: list_audit_page(s, who.scope, filters, page))
    return page_out(result, audit_out)
