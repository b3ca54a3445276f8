"""Search text with its diacritics, for keys typed with diacritics ("họp" must not find "hộp")

``message_text_exact`` holds, per message_text row (by blob), storage.text_fold.fold_exact of
the same text: case and normalisation folded, diacritics kept, "" when the text has none. The
index stays on the accent-insensitive message_text; this table only confirms its candidates,
so it has no text index, and it is a table of its own so that the message_text rows every
search reads stay as small as before. Texts stored before this revision have no row here, and
a key with diacritics matches them as before, without diacritics.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_text_exact",
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["message_text.blob_sha256"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("blob_sha256"),
    )


def downgrade() -> None:
    op.drop_table("message_text_exact")
