"""PostgreSQL: message text enters the pg_trgm indexes in the background too

The pg_trgm GIN indexes of message_text were maintained inside each delivery's transaction
(10 KB of text is thousands of trigrams). They become partial indexes over the rows marked
``indexed``; a delivery inserts its row unmarked, and storage/text_indexer.py marks rows in
short write jobs of its own, which is when PostgreSQL indexes them. Search reads the indexed
rows through the GIN indexes and scans the unmarked ones (a partial index finds them), so it
stays exact. A flag, not SQLite's watermark: PostgreSQL hands out ids before commit, so ids do
not follow commit order. Existing rows are all indexed already (DEFAULT true when added).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE message_text ADD COLUMN indexed boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE message_text ALTER COLUMN indexed SET DEFAULT false")
    _trigram_indexes(" WHERE indexed")
    op.execute("CREATE INDEX ix_message_text_unindexed ON message_text (id) WHERE NOT indexed")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_message_text_unindexed")
    op.execute("ALTER TABLE message_text DROP COLUMN indexed")  # drops the partial indexes too
    _trigram_indexes("")


def _trigram_indexes(where: str) -> None:
    """The pg_trgm GIN indexes of 0002, over the rows ``where`` says (all: empty)."""
    for column in ("body", "headers"):
        op.execute(f"DROP INDEX IF EXISTS ix_message_text_{column}_trgm")
        op.execute(
            f"CREATE INDEX ix_message_text_{column}_trgm ON message_text "
            f"USING gin ({column} gin_trgm_ops){where}"
        )
