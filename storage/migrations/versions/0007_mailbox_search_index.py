"""Admin search over mailboxes: FTS5 trigram (SQLite) or pg_trgm GIN (PostgreSQL); sort indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_mailbox_last_login_at", "mailbox", ["last_login_at"])
    op.create_index("ix_mailbox_created_at", "mailbox", ["created_at"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # External-content FTS5 table kept in step by triggers (sqlite.org/fts5.html 4.4.3).
        op.execute(
            "CREATE VIRTUAL TABLE mailbox_fts USING fts5(search_text, "
            "content='mailbox', content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER mailbox_fts_ai AFTER INSERT ON mailbox BEGIN "
            "INSERT INTO mailbox_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER mailbox_fts_ad AFTER DELETE ON mailbox BEGIN "
            "INSERT INTO mailbox_fts(mailbox_fts, rowid, search_text) "
            "VALUES ('delete', old.id, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER mailbox_fts_au AFTER UPDATE OF search_text ON mailbox BEGIN "
            "INSERT INTO mailbox_fts(mailbox_fts, rowid, search_text) "
            "VALUES ('delete', old.id, old.search_text); "
            "INSERT INTO mailbox_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )
        op.execute("INSERT INTO mailbox_fts(mailbox_fts) VALUES ('rebuild')")
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_mailbox_search_text_trgm ON mailbox "
            "USING gin (search_text gin_trgm_ops)"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("mailbox_fts_au", "mailbox_fts_ad", "mailbox_fts_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS mailbox_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_mailbox_search_text_trgm")
    op.drop_index("ix_mailbox_created_at", "mailbox")
    op.drop_index("ix_mailbox_last_login_at", "mailbox")
