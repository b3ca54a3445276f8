"""The admin API application (FastAPI): one router per resource, RFC 9457 errors, OpenAPI.

Thin by design: routes validate (pydantic), authorise (bearer token, role, agency subtree:
admin_api.principal) and call the storage operations the CLI calls too. OpenAPI is served at
/openapi.json with the interactive documentation at /docs and /redoc, from local copies
(admin_api.docs_pages: no CDN).
"""

from __future__ import annotations

from fastapi import FastAPI

from admin_api.body_limit import BodyLimitMiddleware
from admin_api.docs_pages import install_offline_docs
from admin_api.problems import Problem, install_problem_handlers
from admin_api.routers import (
    agencies,
    audit,
    autoconfig,
    directory,
    domains,
    imports,
    mailboxes,
    password_change,
    password_setup,
    queue,
    reports,
    tokens,
)
from mailserver.instance import Instance

DESCRIPTION = """Administration of a govmail instance: the agency tree, domains, mailboxes,
aliases, groups, DKIM keys, the outbound queue, API tokens, the audit log, bulk provisioning
and usage reports.

Authenticate with `Authorization: Bearer <token>`. Roles: `system_admin` (everything),
`agency_admin` (its agency's subtree; anything else answers 404), `auditor` (read only).
Errors are RFC 9457 problem details (`application/problem+json`). Lists take `offset`,
`limit` and `sort` (`field` or `-field`) plus their own filters."""


def create_app(instance: Instance) -> FastAPI:
    app = FastAPI(
        title="govmail admin API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,  # served offline by install_offline_docs
        redoc_url=None,
    )
    app.state.instance = instance
    install_problem_handlers(app)
    install_offline_docs(app)
    limits = instance.config.admin_api
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=limits.max_body_bytes,
        max_import_bytes=limits.max_import_bytes,
    )
    for router in (
        agencies.router,
        domains.router,
        mailboxes.router,
        directory.aliases,
        directory.groups,
        tokens.router,
        audit.router,
        queue.router,
        reports.router,
        imports.router,
        password_setup.router,
        password_change.router,
        autoconfig.router,
    ):
        app.include_router(router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    original_openapi = app.openapi

    def openapi_with_problem() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = original_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_with_problem  # type: ignore[method-assign]
    return app
