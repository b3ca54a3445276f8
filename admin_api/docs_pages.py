"""The interactive API documentation, served without internet access: Swagger UI at /docs and
ReDoc at /redoc.

FastAPI's own pages load their scripts, styles, fonts and favicon from a CDN, and agencies'
networks often have none, which left both pages blank. Here every asset comes from the copies
the fastapi-offline package ships (Swagger UI's bundle and CSS, ReDoc's standalone bundle, a
favicon), mounted under /docs-static; ReDoc is told not to load Google Fonts and Swagger UI not to
send the document to the online validator. ReDoc's bundle has one more remote URL, the Redocly
logo image in its sidebar footer: that script is served with the image's address replaced by an
empty data: URL (the component hides the image when it fails to load). So a page load never
leaves this server (tests/admin_api/test_offline_docs.py loads both pages in Chromium behind a
proxy that records any request to another host).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

SWAGGER_PATH = "/docs"
REDOC_PATH = "/redoc"
STATIC_PATH = "/docs-static"
ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"

# validatorUrl None: no request to the online validator (and no badge image from it).
SWAGGER_PARAMETERS: dict[str, Any] = {**swagger_ui_default_parameters, "validatorUrl": None}

REDOC_SCRIPT = "redoc.standalone.js"
REDOC_REMOTE_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@cache
def redoc_script() -> bytes:
    """ReDoc's bundle with its one remote image (the sidebar's Redocly logo) taken out."""
    return (ASSET_DIR / REDOC_SCRIPT).read_bytes().replace(REDOC_REMOTE_LOGO, b'"data:,"')


def install_offline_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app created with docs_url=redoc_url=None."""

    @app.get(f"{STATIC_PATH}/{REDOC_SCRIPT}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(redoc_script(), media_type="text/javascript")

    # After the route above, which takes precedence over the file of the same name.
    app.mount(STATIC_PATH, StaticFiles(directory=ASSET_DIR), name="docs-static")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{STATIC_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(SWAGGER_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, REDOC_SCRIPT),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
