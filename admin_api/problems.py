"""Errors as RFC 9457 problem details (``application/problem+json``), in one place.

Storage raises :class:`storage.mailbox_ops.MailboxError` subclasses whose text is fit for the
client; they are mapped to statuses here. An object outside the caller's scope raises the same
"not found" as a missing one, so a 404 says nothing about other agencies. Anything unexpected
is a 500 with no detail (the cause goes to the log only).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from mailserver.delivery.queue import QueueError
from storage.accounts import AccountExists, DomainNotFound
from storage.agency_tree import AgencyConflict, AgencyNotFound
from storage.directory_admin import AddressUnavailable, DirectoryNotFound
from storage.domain_admin import DomainMissing, DomainUnavailable
from storage.listing import BadListRequest
from storage.mailbox_ops import AccountNotFound, MailboxError
from storage.password_setup import SetupLinkInvalid
from storage.staff_import import ImportFileError
from storage.tokens import TokenNotFound

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (AccountNotFound, 404),
    (AgencyNotFound, 404),
    (DirectoryNotFound, 404),
    (DomainMissing, 404),
    (DomainNotFound, 404),
    (TokenNotFound, 404),
    (AccountExists, 409),
    (AddressUnavailable, 409),
    (AgencyConflict, 409),
    (DomainUnavailable, 409),
    (BadListRequest, 400),
    (ImportFileError, 400),
    (SetupLinkInvalid, 400),
    (MailboxError, 422),
    (QueueError, 409),
)


class Problem(BaseModel):
    """RFC 9457 section 3.1 members; ``errors`` is an extension for validation failures."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(
    request: Request, status: int, detail: str | None, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    # RFC 9457 4.2.1: with "about:blank" the title SHOULD be the status code's phrase.
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def status_for(exc: Exception) -> int:
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return status
    return 500


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the rejected input itself is not echoed back.
    return [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem_response(request, exc.status_code, exc.detail)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(request, 422, "the request is not valid", _validation_errors(exc))

    async def on_storage(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, status_for(exc), str(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("event=admin_api_error path=%s error=%r", request.url.path, exc, exc_info=exc)
        return problem_response(request, 500, "internal error")

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(MailboxError, on_storage)
    app.add_exception_handler(QueueError, on_storage)
    app.add_exception_handler(Exception, on_unexpected)


def _problem_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# Declared on every router so the OpenAPI document lists each error a route can answer.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("Bad request"),
    401: _problem_doc("Missing, unknown, expired or revoked token"),
    403: _problem_doc("The token's role may not do this"),
    404: _problem_doc("No such object (or not in the caller's agency tree)"),
    409: _problem_doc("Conflict with the current state"),
    413: _problem_doc("The request body is too large"),
    422: _problem_doc("Invalid request"),
}
