"""Request bodies are bounded and tokens checked before anything reads a body (ASGI middleware).

The API faces users (``/v1/password-change``), so an anonymous client must not be able to make
the server buffer a large body. For every request this middleware:

* finds the route; a route that needs a bearer token (one that depends on
  :func:`admin_api.principal.authenticate`) and is sent a body gets its token checked first:
  missing, unknown, expired or revoked answers 401 without reading the body. The checked caller
  is kept on the request state, so the route does not look it up again;
* refuses a declared ``Content-Length`` over the route's limit (413) at once, and counts the
  bytes actually received (chunked bodies): past the limit the read fails with a 413.

Limits: ``admin_api.max_import_bytes`` for the routes in :data:`LARGE_BODY_PATHS` (the CSV
import), ``admin_api.max_body_bytes`` for everything else. Routes needing no token (password
change and setup, documentation, client autoconfiguration, health) pass through to their own
handling, under the same size limit. Answers are problem details like every other error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from fastapi import HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_api.principal import PRINCIPAL_STATE, authenticate, principal_of_token
from admin_api.problems import problem_response

# Routes whose bodies are bulk files (admin_api.max_import_bytes).
LARGE_BODY_PATHS = frozenset({"/v1/imports/staff"})
_METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit (FastAPI passes it on as is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


def _depends_on(dependant: Dependant, call: Callable[..., object]) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also those of included routers (FastAPI wraps them on inclusion)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope) -> bool:
    if scope["method"] not in _METHODS_WITHOUT_BODY:
        return True
    names = {name for name, _ in scope.get("headers", ())}
    return b"transfer-encoding" in names or (_declared_length(scope) or 0) > 0


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_import_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_import_bytes = max_import_bytes
        self._needs_token: dict[int, bool] = {}

    def _route(self, scope: Scope) -> APIRoute | None:
        for route in _api_routes(scope["app"].router.routes):
            if route.matches(scope)[0] == Match.FULL:
                return route
        return None

    def _route_needs_token(self, route: APIRoute) -> bool:
        key = id(route)
        if key not in self._needs_token:
            self._needs_token[key] = _depends_on(route.dependant, authenticate)
        return self._needs_token[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        large = route is not None and route.path in LARGE_BODY_PATHS
        limit = self.max_import_bytes if large else self.max_body_bytes
        if route is not None and self._route_needs_token(route) and _has_body(scope):
            token = _bearer_token(scope)
            principal = None if token is None else await principal_of_token(Request(scope), token)
            if principal is None:
                await self._refuse(scope, receive, send, 401, "a valid bearer token is required")
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, 413, BodyTooLarge(limit).detail)
            return
        await self._call_counted(scope, receive, send, limit)

    async def _call_counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers (e.g. a raw ASGI route)
            if started:
                raise
            await self._refuse(scope, receive, send, 413, exc.detail)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str
    ) -> None:
        response = problem_response(Request(scope), status, detail)
        response.headers["Connection"] = "close"  # the unread body ends the connection
        await response(scope, receive, send)
