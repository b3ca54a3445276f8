"""Search text with its diacritics, for keys typed with diacritics ("họp" must not find "hộp")

message_text gets ``headers_exact`` and ``body_exact``: storage.text_fold.fold_exact of the
same text as ``headers``/``body`` (case and normalisation folded, diacritics kept; "" when the
text has none). The index stays on the accent-insensitive columns; these only confirm its
candidates, so they are not indexed. Rows from before this revision keep NULL there, and a key
with diacritics matches them as before, without diacritics.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("message_text", sa.Column("headers_exact", sa.Text(), nullable=True))
    op.add_column("message_text", sa.Column("body_exact", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of the table would drop the FTS triggers.
    op.execute("ALTER TABLE message_text DROP COLUMN body_exact")
    op.execute("ALTER TABLE message_text DROP COLUMN headers_exact")
