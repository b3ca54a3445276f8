"""The admin API application (FastAPI). Routers per resource are added by admin_api modules."""

from __future__ import annotations

from fastapi import FastAPI

from mailserver.instance import Instance


def create_app(instance: Instance) -> FastAPI:
    app = FastAPI(title="govmail admin API", version="0.1.0")
    app.state.instance = instance

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
