"""/v1/queue: the outbound queue (list, retry now, delete), for the system admin and auditors.

The queue is the whole server's, not an agency's: agency admins get 403 here. The operations
are :mod:`mailserver.delivery.queue`'s (the same ones ``govmail queue`` uses); each change is
audited in the same transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel import Session

from admin_api.actions import read, write
from admin_api.paging import PageOut, Paging, page_out
from admin_api.principal import Reader, SystemAdmin
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import PathId, QueueEntryOut, QueueRecipientOut
from mailserver.delivery.queue import EntryView, delete_entry, list_entries, retry_now
from storage.accounts import audit
from storage.listing import Page, sort_clause
from storage.models import utcnow
from storage.tokens import ApiRole

router = APIRouter(prefix="/v1/queue", tags=["queue"], responses=PROBLEM_RESPONSES)
QUEUE_SORTS = {name: name for name in ("id", "created_at", "next_attempt_at", "size")}


def entry_out(entry: EntryView) -> QueueEntryOut:
    return QueueEntryOut(
        id=entry.id,
        state=entry.state,
        sender=entry.sender,
        size=entry.size,
        created_at=entry.created_at,
        next_attempt_at=entry.next_attempt_at,
        expires_at=entry.expires_at,
        attempts=entry.attempts,
        authenticated_user=entry.authenticated_user,
        source=entry.source,
        recipients=[
            QueueRecipientOut(
                address=r.address, status=r.status, attempts=r.attempts, last_reply=r.last_reply
            )
            for r in entry.recipients
        ],
    )


@router.get("", response_model=PageOut[QueueEntryOut])
async def list_queue_route(
    request: Request, who: Reader, page: Paging, include_done: bool = False
) -> dict[str, Any]:
    if not who.scope.is_everything or who.role == ApiRole.AGENCY_ADMIN:
        raise HTTPException(403, "the queue is for the system admin and auditors")
    field, descending = sort_clause(page.sort, QUEUE_SORTS, "id")
    entries = await read(request, lambda s: list_entries(s, include_done))
    entries.sort(key=lambda entry: (getattr(entry, field), entry.id), reverse=descending)
    chosen = entries[page.offset : page.offset + page.limit]
    return page_out(Page(chosen, len(entries), page.offset, page.limit), entry_out)


@router.post("/{entry_id}/retry", status_code=204)
async def retry_queue_route(request: Request, who: SystemAdmin, entry_id: PathId) -> Response:
    """Make the entry due now."""

    def retry(session: Session) -> None:
        retry_now(session, entry_id, utcnow())
        audit(session, who.actor, "queue.retry", "queue_entry", str(entry_id))

    await write(request, retry)
    return Response(status_code=204)


@router.delete("/{entry_id}", status_code=204)
async def delete_queue_route(request: Request, who: SystemAdmin, entry_id: PathId) -> Response:
    """Drop the entry without any DSN."""

    def drop(session: Session) -> None:
        view = delete_entry(session, entry_id)
        audit(
            session,
            who.actor,
            "queue.delete",
            "queue_entry",
            str(entry_id),
            before={"sender": view.sender, "recipients": [r.address for r in view.recipients]},
        )

    await write(request, drop)
    return Response(status_code=204)
