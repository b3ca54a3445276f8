"""/v1/reports/usage: the yearly usage figures per agency and for the whole tree, JSON or CSV."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from admin_api.actions import read
from admin_api.principal import Reader
from admin_api.problems import PROBLEM_RESPONSES
from storage.models import utcnow
from storage.usage_report import build_usage_report, report_csv, report_dict

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=PROBLEM_RESPONSES)
CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {}}}
}


@router.get("/usage", responses=CSV_DOC)
async def usage_report_route(
    request: Request,
    who: Reader,
    since: Annotated[date | None, Query(description="First day (default: 1 January)")] = None,
    until: Annotated[
        date | None, Query(description="Day after the last (default: tomorrow)")
    ] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Mailboxes, active in 7/30 days, sent, received, storage, never used: own and subtree."""
    now = utcnow()
    first = since or date(now.year, 1, 1)
    end = until or (now.date() + timedelta(days=1))
    if end <= first:
        raise HTTPException(400, "until must be after since")
    report = await read(request, lambda s: build_usage_report(s, who.scope, first, end, now))
    if format == "csv":
        filename = f"usage-{first.isoformat()}-{end.isoformat()}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return report_dict(report)
