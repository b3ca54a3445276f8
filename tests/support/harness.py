"""A running govmail instance for tests: ephemeral loopback ports, fast hashing, helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from mailserver.config import GovmailConfig, parse_listen
from mailserver.serve import RunningServer, start_servers
from storage.accounts import create_agency, create_domain, create_mailbox
from storage.models import Mailbox

TEST_DOMAIN = "sotest.gov.vn"
TEST_PASSWORD = "Mat-khau#2026"


def test_config(data_dir: Path, db_url: str, **sections: dict[str, object]) -> GovmailConfig:
    """Every listener on 127.0.0.1 port 0; argon2 made cheap (tests only)."""
    data: dict[str, Any] = {  # Any: GovmailConfig(**data) validates each section
        "server": {
            "hostname": "mail.test.gov.vn",
            "data_dir": str(data_dir),
            "shutdown_grace_seconds": 2.0,
        },
        "database": {"url": db_url},
        "auth": {
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
            "failed_login_delay_seconds": 0.01,
        },
        "smtp": {
            "mx_listen": "127.0.0.1:0",
            "submission_listen": "127.0.0.1:0",
            "submissions_listen": "127.0.0.1:0",
        },
        "imap": {"listen": "127.0.0.1:0", "tls_listen": "127.0.0.1:0"},
        "admin_api": {"listen": "127.0.0.1:0"},
        # Filters stay offline: DNS is the (empty) static table, no spamd unless a test starts one.
        "dns": {"system_resolver": False},
        "spamd": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return GovmailConfig(**data)


@dataclass
class LiveServer:
    running: RunningServer
    config: GovmailConfig

    def address(self, listener: str) -> tuple[str, int]:
        return parse_listen(self.running.bound[listener])

    async def add_domain(self, domain: str = TEST_DOMAIN, abbreviation: str = "sotest") -> int:
        def job(session: Session) -> int:
            agency = create_agency(session, "test", abbreviation, f"Agency {abbreviation}")
            assert agency.id is not None
            created = create_domain(session, "test", domain, agency.id)
            assert created.id is not None
            return created.id

        return await self.running.instance.store.write(job)

    async def add_mailbox(
        self, address: str, password: str = TEST_PASSWORD, quota_bytes: int = 100 * 1024 * 1024
    ) -> int:
        store = self.running.instance.store
        password_hash = await store.offload(self.running.instance.passwords.hash, password)

        def job(session: Session) -> int:
            mailbox: Mailbox = create_mailbox(session, "test", address, password_hash, quota_bytes)
            assert mailbox.id is not None
            return mailbox.id

        return await store.write(job)


async def start_live_server(config: GovmailConfig) -> LiveServer:
    return LiveServer(await start_servers(config), config)


@asynccontextmanager
async def serving(config: GovmailConfig, *addresses: str) -> AsyncIterator[LiveServer]:
    """A live server with the test domain and these mailboxes, stopped afterwards."""
    live = await start_live_server(config)
    try:
        await live.add_domain()
        for address in addresses:
            await live.add_mailbox(address)
        yield live
    finally:
        await live.running.stop(grace=1.0)
