"""/v1/agencies: the agency tree (codes in both legal forms), move and merge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from admin_api.actions import read, write
from admin_api.paging import PageOut, Paging, page_out
from admin_api.principal import Reader, SystemAdmin, Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import (
    AgencyIn,
    AgencyMerge,
    AgencyMove,
    AgencyOut,
    AgencyPatch,
    PathId,
    QueryId,
    QueryText,
    agency_out,
)
from storage.agency_tree import (
    AgencyFilter,
    MergeResult,
    add_agency,
    delete_agency,
    get_agency,
    list_agencies,
    merge_agency,
    move_agency,
    update_agency,
)

router = APIRouter(prefix="/v1/agencies", tags=["agencies"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=PageOut[AgencyOut])
async def list_agencies_route(
    request: Request,
    who: Reader,
    page: Paging,
    parent_id: QueryId = None,
    q: QueryText = "",
    code: Annotated[str, Query(max_length=40, pattern=r"^[0-9A-Za-z.]*$")] = "",
) -> dict[str, Any]:
    filters = AgencyFilter(parent_id=parent_id, q=q, code_prefix=code)
    result = await read(request, lambda s: list_agencies(s, who.scope, filters, page))
    return page_out(result, agency_out)


@router.post("", response_model=AgencyOut, status_code=201)
async def create_agency_route(request: Request, who: Writer, body: AgencyIn) -> AgencyOut:
    agency = await write(
        request,
        lambda s: add_agency(
            s, who.scope, who.actor, body.abbreviation, body.name, body.parent_id, body.code
        ),
    )
    return agency_out(agency)


@router.get("/{agency_id}", response_model=AgencyOut)
async def get_agency_route(request: Request, who: Reader, agency_id: PathId) -> AgencyOut:
    return agency_out(await read(request, lambda s: get_agency(s, who.scope, agency_id)))


@router.patch("/{agency_id}", response_model=AgencyOut)
async def update_agency_route(
    request: Request, who: Writer, agency_id: PathId, body: AgencyPatch
) -> AgencyOut:
    changes = body.model_dump(exclude_unset=True)
    agency = await write(
        request, lambda s: update_agency(s, who.scope, who.actor, agency_id, changes)
    )
    return agency_out(agency)


@router.delete("/{agency_id}", status_code=204)
async def delete_agency_route(request: Request, who: Writer, agency_id: PathId) -> Response:
    await write(request, lambda s: delete_agency(s, who.scope, who.actor, agency_id))
    return Response(status_code=204)


@router.post("/{agency_id}/move", response_model=AgencyOut)
async def move_agency_route(
    request: Request, who: SystemAdmin, agency_id: PathId, body: AgencyMove
) -> AgencyOut:
    agency = await write(
        request, lambda s: move_agency(s, who.scope, who.actor, agency_id, body.parent_id)
    )
    return agency_out(agency)


@router.post("/{agency_id}/merge", response_model=MergeResult)
async def merge_agency_route(
    request: Request, who: SystemAdmin, agency_id: PathId, body: AgencyMerge
) -> MergeResult:
    """Move everything of this agency into another (province mergers) and delete it."""
    result = await write(
        request,
        lambda s: merge_agency(s, who.scope, who.actor, agency_id, body.into_agency_id),
    )
    return result
