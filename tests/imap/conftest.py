"""IMAP test fixtures on SQLite only, for behaviour that does not depend on the storage backend.

Storage-dependent tests use ``live_server`` (tests/conftest.py), which runs them on SQLite and
PostgreSQL; protocol rules, limits and external clients run once, to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.harness import LiveServer, start_live_server, test_config


async def _sqlite_server(tmp_path: Path, **sections: dict[str, object]) -> LiveServer:
    config = test_config(tmp_path / "data", f"sqlite:///{tmp_path / 'govmail.sqlite3'}", **sections)
    server = await start_live_server(config)
    await server.add_domain()
    return server


@pytest.fixture
async def protocol_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """Default limits, SQLite: for protocol rules that storage does not influence."""
    server = await _sqlite_server(tmp_path)
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)


@pytest.fixture
async def tight_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """Autologout after 0.5 s, 2 connections per IP, 1 KiB lines, fast failed-login delay."""
    config = test_config(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        imap={"autologout_seconds": 0.5, "max_connections_per_ip": 2, "max_line_length": 1024},
        auth={"failed_login_delay_seconds": 0.01, "max_failed_logins": 4},
    )
    server = await start_live_server(config)
    await server.add_domain()
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)


@pytest.fixture
async def bulk_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """SQLite without fsync: for tests that load thousands of messages, not for durability."""
    config = test_config(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        storage={"fsync": False},
    )
    server = await start_live_server(config)
    await server.add_domain()
    try:
        yield server
    finally:
        await server.running.stop(grace=1.0)
