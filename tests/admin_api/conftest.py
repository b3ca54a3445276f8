"""Fixtures for the admin API tests: a populated instance behind an in-process ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.admin_api.world import World, world_on


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """SQLite only: the endpoint behaviour tests (backend-independent code paths)."""
    async with world_on(tmp_path, f"sqlite:///{tmp_path / 'govmail.sqlite3'}") as built:
        yield built


@pytest.fixture
async def world_any(tmp_path: Path, db_url: str) -> AsyncIterator[World]:
    """On SQLite and PostgreSQL: the role-boundary tests."""
    async with world_on(tmp_path, db_url) as built:
        yield built
