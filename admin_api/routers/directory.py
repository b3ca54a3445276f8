"""/v1/aliases and /v1/groups: forwarding addresses and distribution lists."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlmodel import Session

from admin_api.actions import read, write
from admin_api.paging import PageOut, Paging, page_out, slice_page
from admin_api.principal import Reader, Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import (
    AddressOut,
    AliasIn,
    AliasOut,
    AliasPatch,
    GroupIn,
    GroupOut,
    GroupPatch,
    MembersIn,
    PathId,
    Printable,
    QueryId,
    QueryText,
)
from storage.directory_admin import (
    DirectoryFilter,
    add_group_members,
    alias_targets,
    create_alias,
    create_group,
    delete_alias,
    delete_group,
    get_alias,
    get_group,
    list_alias_page,
    list_group_members,
    list_group_page,
    remove_group_member,
    update_alias,
    update_group,
)
from storage.models import Alias

aliases = APIRouter(prefix="/v1/aliases", tags=["aliases"], responses=PROBLEM_RESPONSES)
groups = APIRouter(prefix="/v1/groups", tags=["groups"], responses=PROBLEM_RESPONSES)
MemberAddress = Annotated[str, Path(max_length=320), Printable]


def alias_out(alias: Alias) -> AliasOut:
    return AliasOut.model_validate({**alias.model_dump(), "targets": alias_targets(alias)})


@aliases.get("", response_model=PageOut[AliasOut])
async def list_aliases_route(
    request: Request, who: Reader, page: Paging, q: QueryText = "", agency_id: QueryId = None
) -> dict[str, Any]:
    filters = DirectoryFilter(q=q, agency_id=agency_id)
    result = await read(request, lambda s: list_alias_page(s, who.scope, filters, page))
    return page_out(result, alias_out)


@aliases.post("", response_model=AliasOut, status_code=201)
async def create_alias_route(request: Request, who: Writer, body: AliasIn) -> AliasOut:
    def create(session: Session) -> Alias:
        return create_alias(
            session,
            who.scope,
            who.actor,
            body.address,
            body.targets,
            body.owner_mailbox_id,
            body.agency_id,
        )

    return alias_out(await write(request, create))


@aliases.get("/{alias_id}", response_model=AliasOut)
async def get_alias_route(request: Request, who: Reader, alias_id: PathId) -> AliasOut:
    return alias_out(await read(request, lambda s: get_alias(s, who.scope, alias_id)))


@aliases.patch("/{alias_id}", response_model=AliasOut)
async def update_alias_route(
    request: Request, who: Writer, alias_id: PathId, body: AliasPatch
) -> AliasOut:
    given = body.model_dump(exclude_unset=True)
    clear_owner = "owner_mailbox_id" in given and given["owner_mailbox_id"] is None

    def update(session: Session) -> Alias:
        return update_alias(
            session,
            who.scope,
            who.actor,
            alias_id,
            targets=body.targets,
            owner_mailbox_id=body.owner_mailbox_id,
            clear_owner=clear_owner,
        )

    return alias_out(await write(request, update))


@aliases.delete("/{alias_id}", status_code=204)
async def delete_alias_route(request: Request, who: Writer, alias_id: PathId) -> Response:
    await write(request, lambda s: delete_alias(s, who.scope, who.actor, alias_id))
    return Response(status_code=204)


@groups.get("", response_model=PageOut[GroupOut])
async def list_groups_route(
    request: Request, who: Reader, page: Paging, q: QueryText = "", agency_id: QueryId = None
) -> dict[str, Any]:
    filters = DirectoryFilter(q=q, agency_id=agency_id)
    result = await read(request, lambda s: list_group_page(s, who.scope, filters, page))
    return page_out(result, GroupOut.model_validate)


@groups.post("", response_model=GroupOut, status_code=201)
async def create_group_route(request: Request, who: Writer, body: GroupIn) -> GroupOut:
    group = await write(
        request,
        lambda s: create_group(
            s,
            who.scope,
            who.actor,
            body.address,
            body.display_name,
            body.send_policy,
            body.members,
            body.agency_id,
        ),
    )
    return GroupOut.model_validate(group)


@groups.get("/{group_id}", response_model=GroupOut)
async def get_group_route(request: Request, who: Reader, group_id: PathId) -> GroupOut:
    return GroupOut.model_validate(await read(request, lambda s: get_group(s, who.scope, group_id)))


@groups.patch("/{group_id}", response_model=GroupOut)
async def update_group_route(
    request: Request, who: Writer, group_id: PathId, body: GroupPatch
) -> GroupOut:
    """Display name, or who may send to the group (``send_policy``)."""
    group = await write(
        request,
        lambda s: update_group(
            s, who.scope, who.actor, group_id, body.display_name, body.send_policy
        ),
    )
    return GroupOut.model_validate(group)


@groups.delete("/{group_id}", status_code=204)
async def delete_group_route(request: Request, who: Writer, group_id: PathId) -> Response:
    await write(request, lambda s: delete_group(s, who.scope, who.actor, group_id))
    return Response(status_code=204)


@groups.get("/{group_id}/members", response_model=PageOut[AddressOut])
async def list_members_route(
    request: Request, who: Reader, group_id: PathId, page: Paging
) -> dict[str, Any]:
    members = await read(request, lambda s: list_group_members(s, who.scope, group_id))
    return page_out(slice_page(members, page), lambda a: AddressOut(address=a))


@groups.post("/{group_id}/members", response_model=list[AddressOut])
async def add_members_route(
    request: Request, who: Writer, group_id: PathId, body: MembersIn
) -> list[AddressOut]:
    """Add members; returns the ones that were not members yet."""
    added = await write(
        request,
        lambda s: add_group_members(s, who.scope, who.actor, group_id, body.addresses),
    )
    return [AddressOut(address=a) for a in added]


@groups.delete("/{group_id}/members/{address}", status_code=204)
async def remove_member_route(
    request: Request, who: Writer, group_id: PathId, address: MemberAddress
) -> Response:
    await write(request, lambda s: remove_group_member(s, who.scope, who.actor, group_id, address))
    return Response(status_code=204)
