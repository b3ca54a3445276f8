"""/v1/domains: agencies' primary and legacy domains, their DNS records and DKIM keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import Session

from admin_api.actions import read, write
from admin_api.paging import PageOut, Paging, page_out, slice_page
from admin_api.principal import Reader, Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.runtime import instance_of
from admin_api.schemas import (
    DkimKeyOut,
    DkimRotateIn,
    DnsRecordsOut,
    DomainIn,
    DomainOut,
    DomainPatch,
    PathId,
    QueryId,
    QueryText,
)
from filters.dkim_keys import (
    domain_keys,
    ensure_keys,
    generate_domain_keys,
    published_keys,
    rotate_keys,
)
from mailserver.dns_records import client_endpoints, domain_records
from storage.accounts import audit
from storage.domain_admin import (
    DomainFilter,
    add_domain,
    delete_domain,
    get_domain,
    list_domain_page,
    set_domain_kind,
)
from storage.models import DkimKey, Domain, DomainKind, utcnow

router = APIRouter(prefix="/v1/domains", tags=["domains"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=PageOut[DomainOut])
async def list_domains_route(
    request: Request,
    who: Reader,
    page: Paging,
    q: QueryText = "",
    agency_id: QueryId = None,
    kind: Annotated[Literal["primary", "legacy"] | None, Query()] = None,
) -> dict[str, Any]:
    filters = DomainFilter(q=q, agency_id=agency_id, kind=kind)
    result = await read(request, lambda s: list_domain_page(s, who.scope, filters, page))
    return page_out(result, DomainOut.model_validate)


@router.post("", response_model=DomainOut, status_code=201)
async def create_domain_route(request: Request, who: Writer, body: DomainIn) -> DomainOut:
    """Create a domain with its first DKIM keys (RSA and Ed25519), in one transaction."""
    instance = instance_of(request)
    materials = await instance.store.offload(generate_domain_keys)
    key_dir = instance.config.dkim_key_dir

    def create(s: Session) -> Domain:
        domain = add_domain(
            s, who.scope, who.actor, body.name, body.agency_id, DomainKind(body.kind)
        )
        ensure_keys(s, who.actor, domain.name, key_dir, utcnow(), materials)
        return domain

    return DomainOut.model_validate(await write(request, create))


@router.get("/{domain_id}", response_model=DomainOut)
async def get_domain_route(request: Request, who: Reader, domain_id: PathId) -> DomainOut:
    return DomainOut.model_validate(
        await read(request, lambda s: get_domain(s, who.scope, domain_id))
    )


@router.patch("/{domain_id}", response_model=DomainOut)
async def update_domain_route(
    request: Request, who: Writer, domain_id: PathId, body: DomainPatch
) -> DomainOut:
    domain = await write(
        request,
        lambda s: set_domain_kind(s, who.scope, who.actor, domain_id, DomainKind(body.kind)),
    )
    return DomainOut.model_validate(domain)


@router.delete("/{domain_id}", status_code=204)
async def delete_domain_route(request: Request, who: Writer, domain_id: PathId) -> Response:
    await write(request, lambda s: delete_domain(s, who.scope, who.actor, domain_id))
    return Response(status_code=204)


@router.get("/{domain_id}/dns", response_model=DnsRecordsOut)
async def domain_dns_route(request: Request, who: Reader, domain_id: PathId) -> DnsRecordsOut:
    """Every record to publish: DKIM (keys in use or retiring), SPF, DMARC, MX, SRV."""
    config = instance_of(request).config

    def records(session: Session) -> DnsRecordsOut:
        domain = get_domain(session, who.scope, domain_id)
        keys = published_keys(domain_keys(session, domain_id), utcnow())
        lines = domain_records(domain.name, config.server.hostname, keys, client_endpoints(config))
        return DnsRecordsOut(domain=domain.name, zone_lines=lines)

    return await read(request, records)


@router.get("/{domain_id}/dkim-keys", response_model=PageOut[DkimKeyOut])
async def list_dkim_route(
    request: Request, who: Reader, domain_id: PathId, page: Paging
) -> dict[str, Any]:
    def keys(session: Session) -> list[DkimKey]:
        get_domain(session, who.scope, domain_id)
        return domain_keys(session, domain_id)

    found = await read(request, keys)
    by_selector = slice_page(found, page, key="selector")
    return page_out(by_selector, DkimKeyOut.model_validate)


@router.post("/{domain_id}/dkim-keys/rotate", response_model=list[DkimKeyOut], status_code=201)
async def rotate_dkim_route(
    request: Request, who: Writer, domain_id: PathId, body: DkimRotateIn
) -> list[DkimKeyOut]:
    """New RSA and Ed25519 selectors; the old ones stay published for the overlap period."""
    config = instance_of(request).config

    def rotate(session: Session) -> list[DkimKey]:
        domain = get_domain(session, who.scope, domain_id)
        created = rotate_keys(
            session,
            who.actor,
            domain.name,
            config.dkim_key_dir,
            utcnow(),
            timedelta(hours=config.dkim.publish_hours),
            timedelta(days=config.dkim.overlap_days),
            body.immediate,
        )
        audit(
            session,
            who.actor,
            "dkim.rotate.request",
            "domain",
            domain.name,
            after={"immediate": body.immediate, "selectors": [k.selector for k in created]},
            agency_id=domain.agency_id,
        )
        return created

    created = await write(request, rotate)
    return [DkimKeyOut.model_validate(key) for key in created]
