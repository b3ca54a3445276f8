"""sender_rule: per-mailbox allow and block lists of senders (spam filtering)

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("pattern", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox_id", "pattern"),
    )
    with op.batch_alter_table("sender_rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sender_rule_mailbox_id"), ["mailbox_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sender_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sender_rule_mailbox_id"))
    op.drop_table("sender_rule")
