"""/v1/imports/staff: bulk provisioning from a CSV of staff (idempotent, with a dry run)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from sqlmodel import Session

from admin_api.actions import setup_link_ttl
from admin_api.principal import Writer
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.runtime import instance_of
from admin_api.schemas import ImportReportOut, ImportRowOut
from mailserver.instance import initial_password_params, setup_link_prefix
from storage.models import utcnow
from storage.password_batch import PasswordHashPool
from storage.staff_import import Credentials, ImportOptions, run_staff_import

router = APIRouter(prefix="/v1/imports", tags=["imports"], responses=PROBLEM_RESPONSES)
MIB = 1024 * 1024
CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "Header: full_name,agency,position[,address]",
    }
}


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body as it streams in, refused (413) as soon as it passes ``limit``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the CSV is over {limit} bytes")
    return bytes(body)


@router.post("/staff", response_model=ImportReportOut, openapi_extra=CSV_BODY)
async def import_staff_route(
    request: Request,
    who: Writer,
    dry_run: bool = False,
    credentials: Annotated[Literal["password", "link"], Query()] = "password",
) -> ImportReportOut:
    """Create a mailbox per row (addresses by the provincial convention when not given).

    Rows already provisioned are reported ``exists``; a dry run reports ``would_create``.
    The report carries each new account's initial password or one-time set-password link:
    it is shown once.
    """
    instance = instance_of(request)
    config = instance.config
    body = await _read_limited(request, config.admin_api.max_import_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the CSV must be UTF-8") from exc
    if "\x00" in text:
        raise HTTPException(400, "the CSV holds NUL characters")
    options = ImportOptions(
        actor=who.actor,
        quota_bytes=config.storage.default_quota_mb * MIB,
        now=utcnow(),
        dry_run=dry_run,
        credentials=Credentials(credentials),
        link_ttl=setup_link_ttl(config),
        link_base_url=setup_link_prefix(config),
    )
    loop = asyncio.get_running_loop()
    store = instance.store

    def through_store(method: Callable[[Callable[[Session], Any]], Any]) -> Any:
        # The import runs in a worker thread; each read/write goes back to the event loop's
        # store (group commit, the one writer) and the thread waits for its result.
        def run(fn: Callable[[Session], Any]) -> Any:
            return asyncio.run_coroutine_threadsafe(method(fn), loop).result()

        return run

    def run_import() -> Any:
        hashing = credentials == "password" and not dry_run
        params = initial_password_params(config)
        pool = PasswordHashPool(params, config.provisioning.hash_workers) if hashing else None
        with pool or nullcontext():
            return run_staff_import(
                text,
                who.scope,
                options,
                through_store(store.read),
                through_store(store.write),
                pool,
            )

    report = await asyncio.to_thread(run_import)
    rows = [ImportRowOut.model_validate(row.__dict__) for row in report.rows]
    return ImportReportOut(summary=report.summary(), rows=rows)
