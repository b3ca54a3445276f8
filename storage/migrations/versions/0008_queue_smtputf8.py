"""queue_entry.smtputf8: the message was received with MAIL ... SMTPUTF8 (RFC 6531)

The outbound client needs it to decide whether a message with UTF-8 header fields may go to a
server without SMTPUTF8 (it may not: 5.6.7 bounce) or is legacy 8-bit mail sent as it is.

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("queue_entry") as batch:
        batch.add_column(
            sa.Column("smtputf8", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("queue_entry") as batch:
        batch.drop_column("smtputf8")
