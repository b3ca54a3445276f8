"""/v1/mailboxes: create, search, update, lock/unlock/disable, leavers, passwords, send-as."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from sqlmodel import Session

from admin_api.actions import (
    hash_new_password,
    mailbox_out,
    read,
    retention,
    setup_link_ttl,
    write,
)
from admin_api.paging import PageOut, Paging, page_out, slice_page
from admin_api.principal import Reader, Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.runtime import instance_of
from admin_api.schemas import (
    AddressOut,
    MailboxCreated,
    MailboxIn,
    MailboxOut,
    MailboxPatch,
    PasswordIn,
    PasswordOut,
    PathId,
    Printable,
    PurgeOut,
    QueryId,
    QueryText,
    SendAsIn,
)
from mailserver.instance import setup_link_prefix
from storage.accounts import create_mailbox, find_domain, normalise_address
from storage.admin_scope import address_taken, may_use_address
from storage.directory_admin import AddressUnavailable
from storage.mailbox_admin import (
    MailboxChanges,
    MailboxFilter,
    change_state,
    get_mailbox,
    grant_send_as,
    list_mailbox_page,
    list_send_as,
    purge_retired,
    reset_password,
    retire_mailbox,
    revoke_send_as,
    update_mailbox,
)
from storage.models import Mailbox, MailboxState, utcnow
from storage.password_setup import issue_setup_token

router = APIRouter(prefix="/v1/mailboxes", tags=["mailboxes"], responses=PROBLEM_RESPONSES)
MIB = 1024 * 1024


@router.get("", response_model=PageOut[MailboxOut])
async def list_mailboxes_route(
    request: Request,
    who: Reader,
    page: Paging,
    q: QueryText = "",
    state: Annotated[Literal["active", "locked", "disabled"] | None, Query()] = None,
    agency_id: QueryId = None,
    domain: Annotated[str | None, Query(max_length=253, pattern=r"^[A-Za-z0-9.-]+$")] = None,
    never_logged_in: bool | None = None,
) -> dict[str, Any]:
    """Search by part of the address or name (accents and case ignored), filter, sort, page."""
    filters = MailboxFilter(q, state, agency_id, domain, never_logged_in)
    config = instance_of(request).config
    result = await read(request, lambda s: list_mailbox_page(s, who.scope, filters, page))
    return page_out(result, lambda mailbox: mailbox_out(mailbox, config))


@router.post("", response_model=MailboxCreated, status_code=201)
async def create_mailbox_route(request: Request, who: Writer, body: MailboxIn) -> MailboxCreated:
    """Create with a password (policy enforced) or, without one, a one-time set-password link."""
    config = instance_of(request).config
    try:
        address = normalise_address(body.address)
    except ValueError as exc:
        raise AddressUnavailable(str(exc)) from exc
    password_hash = ""
    if body.password is not None:
        password_hash = await hash_new_password(
            request, body.password, address, body.display_name or None
        )
    quota = body.quota_bytes or config.storage.default_quota_mb * MIB
    now = utcnow()

    def create(session: Session) -> tuple[Mailbox, str | None]:
        agency_id = body.agency_id
        if agency_id is None and not who.scope.is_everything:
            agency_id = who.agency_id
        owner = agency_id if agency_id is not None else _domain_agency(session, address)
        if (
            owner is None
            or not may_use_address(session, who.scope, address, owner)
            or address_taken(session, address)
        ):
            # One answer for "someone else's" and "taken": it reveals nothing about others.
            raise AddressUnavailable(f"{address} is not available")
        mailbox = create_mailbox(
            session,
            who.actor,
            address,
            password_hash,
            quota,
            display_name=body.display_name.strip(),
            must_change_password=body.must_change_password,
            agency_id=agency_id,
            position=body.position.strip(),
        )
        token = None
        if body.password is None:
            token = issue_setup_token(session, who.actor, mailbox, setup_link_ttl(config), now)
        return mailbox, token

    mailbox, token = await write(request, create)
    link = setup_link_prefix(config) + token if token else None
    return MailboxCreated(mailbox=mailbox_out(mailbox, config), setup_link=link)


def _domain_agency(session: Session, address: str) -> int | None:
    domain = find_domain(session, address.rpartition("@")[2])
    return domain.agency_id if domain is not None else None


@router.get("/{mailbox_id}", response_model=MailboxOut)
async def get_mailbox_route(request: Request, who: Reader, mailbox_id: PathId) -> MailboxOut:
    mailbox = await read(request, lambda s: get_mailbox(s, who.scope, mailbox_id))
    return mailbox_out(mailbox, instance_of(request).config)


@router.patch("/{mailbox_id}", response_model=MailboxOut)
async def update_mailbox_route(
    request: Request, who: Writer, mailbox_id: PathId, body: MailboxPatch
) -> MailboxOut:
    """Display name, position, quota, agency, or force a password change at next login."""
    changes = MailboxChanges(**body.model_dump(exclude_unset=True))
    mailbox = await write(
        request, lambda s: update_mailbox(s, who.scope, who.actor, mailbox_id, changes)
    )
    return mailbox_out(mailbox, instance_of(request).config)


async def _set_state(
    request: Request, who: Writer, mailbox_id: int, state: MailboxState
) -> MailboxOut:
    mailbox = await write(
        request, lambda s: change_state(s, who.scope, who.actor, mailbox_id, state)
    )
    return mailbox_out(mailbox, instance_of(request).config)


@router.post("/{mailbox_id}/lock", response_model=MailboxOut)
async def lock_mailbox_route(request: Request, who: Writer, mailbox_id: PathId) -> MailboxOut:
    """No more logins; mail still arrives."""
    return await _set_state(request, who, mailbox_id, MailboxState.LOCKED)


@router.post("/{mailbox_id}/unlock", response_model=MailboxOut)
async def unlock_mailbox_route(request: Request, who: Writer, mailbox_id: PathId) -> MailboxOut:
    """Active again (also clears the failed-login count)."""
    return await _set_state(request, who, mailbox_id, MailboxState.ACTIVE)


@router.post("/{mailbox_id}/disable", response_model=MailboxOut)
async def disable_mailbox_route(request: Request, who: Writer, mailbox_id: PathId) -> MailboxOut:
    """No logins and no mail."""
    return await _set_state(request, who, mailbox_id, MailboxState.DISABLED)


@router.delete("/{mailbox_id}", response_model=MailboxOut, status_code=202)
async def delete_mailbox_route(request: Request, who: Writer, mailbox_id: PathId) -> MailboxOut:
    """A leaver: disabled at once, deleted with its data after the retention period
    (``delete_after``; provincial rule: 3 months). ``POST /v1/mailboxes/purge`` deletes them."""
    config = instance_of(request).config
    mailbox = await write(
        request,
        lambda s: retire_mailbox(s, who.scope, who.actor, mailbox_id, retention(config)),
    )
    return mailbox_out(mailbox, config)


@router.post("/purge", response_model=PurgeOut)
async def purge_mailboxes_route(request: Request, who: Writer) -> PurgeOut:
    """Delete every leaver's mailbox (in the caller's tree) whose retention period is over."""
    config = instance_of(request).config
    deleted = await write(
        request,
        lambda s: purge_retired(s, who.scope, who.actor, utcnow(), retention(config)),
    )
    return PurgeOut(deleted=deleted)


@router.post("/{mailbox_id}/password", response_model=PasswordOut)
async def reset_password_route(
    request: Request, who: Writer, mailbox_id: PathId, body: PasswordIn
) -> PasswordOut:
    """Set a new password (policy enforced), or without one issue a one-time link."""
    config = instance_of(request).config
    mailbox = await read(request, lambda s: get_mailbox(s, who.scope, mailbox_id))
    if body.password is None:
        now = utcnow()

        def link(session: Session) -> str:
            target = get_mailbox(session, who.scope, mailbox_id)
            return issue_setup_token(session, who.actor, target, setup_link_ttl(config), now)

        token = await write(request, link)
        return PasswordOut(address=mailbox.address, setup_link=setup_link_prefix(config) + token)
    password_hash = await hash_new_password(
        request, body.password, mailbox.address, mailbox.display_name or None
    )
    await write(
        request,
        lambda s: reset_password(
            s, who.scope, who.actor, mailbox_id, password_hash, body.must_change
        ),
    )
    return PasswordOut(address=mailbox.address)


@router.get("/{mailbox_id}/send-as", response_model=PageOut[AddressOut])
async def list_send_as_route(
    request: Request, who: Reader, mailbox_id: PathId, page: Paging
) -> dict[str, Any]:
    """Addresses this mailbox may send as (delegation)."""
    grants = await read(request, lambda s: list_send_as(s, who.scope, mailbox_id))
    addresses = [grant.address for grant in grants]
    return page_out(slice_page(addresses, page), lambda a: AddressOut(address=a))


@router.post("/{mailbox_id}/send-as", response_model=AddressOut, status_code=201)
async def grant_send_as_route(
    request: Request, who: Writer, mailbox_id: PathId, body: SendAsIn
) -> AddressOut:
    grant = await write(
        request, lambda s: grant_send_as(s, who.scope, who.actor, mailbox_id, body.address)
    )
    return AddressOut(address=grant.address)


@router.delete("/{mailbox_id}/send-as/{address}", status_code=204)
async def revoke_send_as_route(
    request: Request,
    who: Writer,
    mailbox_id: PathId,
    address: Annotated[str, Path(max_length=320), Printable],
) -> Response:
    await write(request, lambda s: revoke_send_as(s, who.scope, who.actor, mailbox_id, address))
    return Response(status_code=204)
