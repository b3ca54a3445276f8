"""blob_inline: the bytes of small messages, committed with their delivery (storage.inline_blobs)

A message of at most ``storage.inline_blob_max_bytes`` is written into this table in the same
transaction as its message rows, so the commit's one fsync makes it durable; the blob spiller
later writes it to its file and deletes the row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_inline",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["blob.sha256"]),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    # The rows' bytes must be in their files first (the spiller, or `govmail` serve until the
    # table is empty); dropping it with rows in it would lose messages.
    connection = op.get_bind()
    left = connection.execute(sa.text("SELECT count(*) FROM blob_inline")).scalar_one()
    if left:
        raise RuntimeError(f"{left} messages are still only in blob_inline; spill them first")
    op.drop_table("blob_inline")
