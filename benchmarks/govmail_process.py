"""A govmail instance for benchmarks: provisioned in-process, served by a real `govmail serve`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailserver.config import load_config
from mailserver.init_instance import initialise_instance
from mailserver.instance import open_instance
from storage.accounts import create_mailbox
from storage.inline_blobs import BlobSpiller
from storage.store import MailStore
from storage.text_indexer import TextIndexer
from tests.support.process import ServerProcess, start_server

DELIVERY_CONCURRENCY = 256


def benchmark_env(argon2: dict[str, int]) -> dict[str, str]:
    """The same hashing as the peer; per-IP limits lifted (all load comes from 127.0.0.1, and
    the Dovecot peer's mail_max_userip_connections is lifted the same way)."""
    return {
        "GOVMAIL_AUTH__ARGON2_TIME_COST": str(argon2["time_cost"]),
        "GOVMAIL_AUTH__ARGON2_MEMORY_KIB": str(argon2["memory_kib"]),
        "GOVMAIL_IMAP__MAX_CONNECTIONS_PER_IP": "20000",
        "GOVMAIL_SMTP__MAX_CONNECTIONS_PER_IP": "20000",
    }


def provision(
    base: Path,
    domain: str,
    users: dict[str, list[bytes]],
    password: str,
    argon2: dict[str, int],
) -> Path:
    """Init an instance under ``base``, create ``users`` and deliver their messages."""
    result = initialise_instance(base / "data", domain)
    config = load_config(result.config_path)
    config.auth.argon2_time_cost = argon2["time_cost"]
    config.auth.argon2_memory_kib = argon2["memory_kib"]
    instance = open_instance(config)

    async def fill() -> None:
        store = instance.store
        await store.start()
        semaphore = asyncio.Semaphore(DELIVERY_CONCURRENCY)
        try:
            for address, messages in users.items():
                password_hash = instance.passwords.hash(password)

                def create(
                    session: object, address: str = address, hashed: str = password_hash
                ) -> int:
                    mailbox = create_mailbox(session, "bench", address, hashed, 50 * 1024**3)  # type: ignore[arg-type]
                    assert mailbox.id is not None
                    return mailbox.id

                mailbox_id = await store.write(create)

                async def deliver_one(raw: bytes, target: int = mailbox_id) -> None:
                    async with semaphore:
                        await store.deliver(raw, [(target, "INBOX")])

                await asyncio.gather(*(deliver_one(raw) for raw in messages))
            await settle(store)
        finally:
            await store.close()

    asyncio.run(fill())
    return result.config_path


async def settle(store: MailStore) -> None:
    """Finish the work deliveries leave for later (text index, blob files), as a server does
    once the import is over: measurements then start from an instance in its steady state."""
    for upkeep in (TextIndexer(store, pause_seconds=0), BlobSpiller(store, pause_seconds=0)):
        await upkeep.work_while_pending()


@contextmanager
def started_server(config: Path, argon2: dict[str, int]) -> Iterator[ServerProcess]:
    server = start_server(config, **benchmark_env(argon2))
    try:
        yield server
    finally:
        server.terminate()
