"""Search index: folded text per blob, FTS5 trigram (SQLite) or pg_trgm GIN (PostgreSQL).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blob.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("blob_sha256"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # External-content FTS5 table kept in step by triggers (sqlite.org/fts5.html 4.4.3).
        op.execute(
            "CREATE VIRTUAL TABLE message_text_fts USING fts5(headers, body, "
            "content='message_text', content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER message_text_ai AFTER INSERT ON message_text BEGIN "
            "INSERT INTO message_text_fts(rowid, headers, body) "
            "VALUES (new.id, new.headers, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER message_text_ad AFTER DELETE ON message_text BEGIN "
            "INSERT INTO message_text_fts(message_text_fts, rowid, headers, body) "
            "VALUES ('delete', old.id, old.headers, old.body); END"
        )
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_message_text_body_trgm ON message_text USING gin (body gin_trgm_ops)"
        )
        op.execute(
            "CREATE INDEX ix_message_text_headers_trgm ON message_text "
            "USING gin (headers gin_trgm_ops)"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS message_text_ad")
        op.execute("DROP TRIGGER IF EXISTS message_text_ai")
        op.execute("DROP TABLE IF EXISTS message_text_fts")
    op.drop_table("message_text")
