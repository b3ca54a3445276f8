"""Bring a database to the current schema with alembic (every table comes from a migration)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(db: Database) -> None:
    """Apply every pending migration (idempotent)."""
    config = alembic_config(db.url)
    with db.writer.begin() as connection:
        config.attributes["connection"] = connection
        # "heads": branches added in parallel (one per feature) all apply, in dependency order.
        command.upgrade(config, "heads")


def current_revision(db: Database) -> str | None:
    with db.reader.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
