"""/docs and /redoc work without internet: the real admin API on a loopback port, both pages
rendered by headless Chromium whose only way out is a proxy that records every request for
another host; the operation list must be rendered and the proxy must have seen nothing from the
page. Plus a cheap check that the served HTML names no other host."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.harness import LiveServer, start_live_server
from tests.support.harness import test_config as make_config

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

# Chromium's own background services (time, component updates, sign-in, autofill hints) go
# through the proxy too; they are not the page's. fonts.googleapis.com would be the page's.
BROWSER_SERVICE_HOST = re.compile(r"(^|\.)(google\.com|gvt1\.com|(?<!fonts\.)googleapis\.com)$")
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
URL_HOST = re.compile(r"""(?:https?:)?//([A-Za-z0-9.-]+)""")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    live = await start_live_server(
        make_config(tmp_path / "data", f"sqlite:///{tmp_path / 'govmail.sqlite3'}")
    )
    try:
        yield live
    finally:
        await live.running.stop(grace=1.0)


class RecordingProxy:
    """An HTTP proxy that forwards nothing: it notes each request's target host, answers 502."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RecordingProxy:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            if len(request_line) >= 2:
                target = request_line[1]
                host = target.split(":")[0] if request_line[0] == "CONNECT" else target
                match = URL_HOST.match(host)
                self.hosts.append(match.group(1) if match else host)
            writer.write(BAD_GATEWAY)
            await writer.drain()
        finally:
            writer.close()

    def page_requests(self) -> list[str]:
        return [host for host in self.hosts if not BROWSER_SERVICE_HOST.search(host)]


async def rendered_dom(url: str, proxy_port: int, profile: Path) -> str:
    """The page's DOM after its scripts ran (virtual time lets the fetch of /openapi.json end)."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        # Loopback is never proxied, so only requests for other hosts reach the recorder.
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return out.decode("utf-8", "replace")


@needs_chromium
@pytest.mark.timeout(240)
async def test_swagger_ui_and_redoc_render_without_internet(
    server: LiveServer, tmp_path: Path
) -> None:
    host, port = server.address("admin_api")
    async with RecordingProxy() as proxy:
        swagger = await rendered_dom(f"http://{host}:{port}/docs", proxy.port, tmp_path / "p1")
        redoc = await rendered_dom(f"http://{host}:{port}/redoc", proxy.port, tmp_path / "p2")
    # Swagger UI rendered its operation list: one block per path, named in data-path.
    assert 'class="swagger-ui' in swagger
    assert 'data-path="/v1/mailboxes"' in swagger
    assert 'data-path="/v1/agencies/{agency_id}"' in swagger
    # ReDoc rendered the operations too (its menu and the path of each operation).
    assert "/v1/mailboxes" in redoc
    assert "govmail admin API" in redoc
    assert proxy.page_requests() == []


@needs_chromium
async def test_the_recorder_sees_what_a_page_asks_of_other_hosts(tmp_path: Path) -> None:
    """The check above is only as good as this: a page's remote asset does reach the proxy."""
    page = 'data:text/html,<img src="https://cdn.example.invalid/logo.png">'
    async with RecordingProxy() as proxy:
        await rendered_dom(page, proxy.port, tmp_path / "profile")
    assert proxy.page_requests() == ["cdn.example.invalid"]


async def test_docs_pages_name_no_other_host(server: LiveServer) -> None:
    host, port = server.address("admin_api")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        for page in ("/docs", "/redoc"):
            response = await client.get(page)
            assert response.status_code == 200
            html = response.text
            assert URL_HOST.findall(html) == [], page
            assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
            assert assets, page
            for asset in assets:  # every asset is served here
                assert (await client.get(asset)).status_code == 200, asset
        redoc_bundle = (await client.get("/docs-static/redoc.standalone.js")).content
        assert b"cdn.redoc.ly" not in redoc_bundle
        assert len(redoc_bundle) > 100_000
