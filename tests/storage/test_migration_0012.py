"""Migration 0012 (login_ip_failure, mailbox.locked_at) up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from storage.db import Database, open_database
from storage.schema import alembic_config, upgrade_to_head

# Every other branch's head: the schema just before 0012.
HEADS_BEFORE_0012 = ("0002", "0005", "0007", "0011")


def migrate(db: Database, action: object, target: str) -> None:
    config = alembic_config(db.url)
    with db.writer.begin() as connection:
        config.attributes["connection"] = connection
        action(config, target)  # type: ignore[operator]


def tables_and_mailbox_columns(db: Database) -> tuple[set[str], set[str]]:
    with db.reader.connect() as connection:
        inspector = inspect(connection)
        columns = {c["name"] for c in inspector.get_columns("mailbox")}
        return set(inspector.get_table_names()), columns


def test_migration_0012_up_and_down(db_url: str) -> None:
    db = open_database(db_url)
    for head in HEADS_BEFORE_0012:
        migrate(db, command.upgrade, head)
    tables, columns = tables_and_mailbox_columns(db)
    assert "login_ip_failure" not in tables and "locked_at" not in columns
    upgrade_to_head(db)
    tables, columns = tables_and_mailbox_columns(db)
    assert "login_ip_failure" in tables and "locked_at" in columns
    with db.writer.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO login_ip_failure (ip, window_start, failures)"
                " VALUES ('192.0.2.1', 1.5, 2)"
            )
        )
    migrate(db, command.downgrade, "0012-1")
    tables, columns = tables_and_mailbox_columns(db)
    assert "login_ip_failure" not in tables and "locked_at" not in columns
    upgrade_to_head(db)
