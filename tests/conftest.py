"""Shared fixtures: a throwaway PostgreSQL for the session, per-test databases, live servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from storage.blobs import BlobStore
from storage.db import open_database
from storage.schema import upgrade_to_head
from storage.store import MailStore
from tests.support.pg_cluster import create_database, throwaway_postgres

if TYPE_CHECKING:
    from tests.support.harness import LiveServer

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """One PostgreSQL cluster for the whole run (started as the postgres user when root).

    It is stopped and removed when pytest exits (a cleanup of the config), not as a session
    fixture's teardown: that would run inside the last test and count against its timeout.
    """
    cluster = ExitStack()
    url = cluster.enter_context(throwaway_postgres())
    request.config.add_cleanup(cluster.close)
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'govmail.sqlite3'}"
    base: str = request.getfixturevalue("postgres_url")
    return create_database(base, f"t_{uuid.uuid4().hex[:12]}")


@asynccontextmanager
async def migrated_store(url: str, blobs: Path) -> AsyncIterator[MailStore]:
    """A started store on a migrated database at ``url``, closed afterwards."""
    db = open_database(url)
    upgrade_to_head(db)
    store = MailStore(db, BlobStore(blobs))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def mail_store(tmp_path: Path, db_url: str) -> AsyncIterator[MailStore]:
    """A migrated, empty store (no servers) on each backend."""
    async with migrated_store(db_url, tmp_path / "blobs") as store:
        yield store


@pytest.fixture
async def live_server(tmp_path: Path, db_url: str) -> AsyncIterator[LiveServer]:
    """A running instance with every listener on a loopback ephemeral port and one domain."""
    from tests.support.harness import start_live_server, test_config

    server = await start_live_server(test_config(tmp_path / "data", db_url))
    await server.add_domain()
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)
