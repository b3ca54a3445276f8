"""Builds the shared objects of one govmail instance from its configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from filters.pipeline import Pipeline
from mailserver.auth_throttle import LoginThrottle
from mailserver.config import GovmailConfig
from storage.blobs import BlobStore
from storage.db import Database, open_database
from storage.inline_blobs import inline_source
from storage.models import utcnow
from storage.passwords import PasswordParams, Passwords
from storage.schema import upgrade_to_head
from storage.store import MailStore

if TYPE_CHECKING:
    from filters.training import JunkTrainer


@dataclass
class Instance:
    config: GovmailConfig
    store: MailStore
    passwords: Passwords
    # Failed logins per client IP, shared by IMAP, SMTP submission and the password-change
    # page (password spraying); counted in the database.
    login_throttle: LoginThrottle
    # Checks at DATA: inbound for MX, outbound for submission (filters.registry builds them).
    inbound_pipeline: Pipeline = field(default_factory=lambda: Pipeline([]))
    outbound_pipeline: Pipeline = field(default_factory=lambda: Pipeline([]))
    # IMAP calls it when a message is moved into or out of Junk (spamd TELL); None: no spamd.
    junk_trainer: JunkTrainer | None = None
    # The time logins are judged by (lockout, auto-unlock, password age); tests replace it.
    clock: Callable[[], datetime] = field(default_factory=lambda: utcnow)

    @property
    def db(self) -> Database:
        return self.store.db


def passwords_for(config: GovmailConfig) -> Passwords:
    return Passwords(
        PasswordParams(
            time_cost=config.auth.argon2_time_cost,
            memory_kib=config.auth.argon2_memory_kib,
            parallelism=config.auth.argon2_parallelism,
        )
    )


def initial_password_params(config: GovmailConfig) -> PasswordParams:
    """argon2id for generated initial passwords: random and changed at first login, so
    ``provisioning.initial_password_time_cost`` passes; memory as for users' passwords."""
    return PasswordParams(
        time_cost=config.provisioning.initial_password_time_cost,
        memory_kib=config.auth.argon2_memory_kib,
        parallelism=config.auth.argon2_parallelism,
    )


SETUP_PATH = "/v1/password-setup"


def setup_link_prefix(config: GovmailConfig) -> str:
    """One-time set-password links are this prefix followed by the token."""
    base = config.admin_api.public_url.rstrip("/") or f"http://{config.admin_api.listen}"
    return f"{base}{SETUP_PATH}?token="


def blob_store(config: GovmailConfig, db: Database) -> BlobStore:
    """The instance's blob files, with small messages inline in ``db`` until spilled."""
    return BlobStore(
        config.blob_dir,
        fsync=config.storage.fsync,
        inline_max_bytes=config.storage.inline_blob_max_bytes,
        inline_source=inline_source(db),
    )


def open_instance(
    config: GovmailConfig,
    migrate: bool = True,
    shared_by_processes: bool = False,
    serving: bool = False,
    filters: bool = True,
) -> Instance:
    """Open the database (migrating it to the current schema) and the blob store.

    ``shared_by_processes``: this is one of several worker processes of `govmail serve`;
    ``serving``: a long-running server, whose store checkpoints the SQLite WAL off the write path;
    ``filters``: build the message pipelines and the junk trainer (the CLI's administration
    commands pass False: they filter no message, and not importing the filters keeps them quick).
    """
    db = open_database(
        config.database_url,
        fsync=config.storage.fsync,
        shared_by_processes=shared_by_processes,
        background_checkpoint=serving,
    )
    if migrate:
        upgrade_to_head(db)
    store = MailStore(
        db,
        blob_store(config, db),
        writer_threads=config.database.writer_threads,
        reader_threads=config.database.reader_threads,
        group_commit_max=config.database.group_commit_max,
    )
    instance = Instance(
        config=config,
        store=store,
        passwords=passwords_for(config),
        login_throttle=LoginThrottle(
            store, config.auth.max_failures_per_ip, config.auth.ip_failure_window_seconds
        ),
    )
    if filters:
        from filters.registry import build_junk_trainer, build_pipelines

        instance.inbound_pipeline, instance.outbound_pipeline = build_pipelines(instance)
        instance.junk_trainer = build_junk_trainer(config)
    return instance
