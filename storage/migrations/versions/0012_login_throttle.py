"""login_ip_failure (failed logins per client IP, shared by processes and nodes) and
mailbox.locked_at (when failed logins locked the account, for auth.auto_unlock_minutes)

Revision ID: 0012
Revises: 0001
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_ip_failure",
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ip"),
    )
    with op.batch_alter_table("mailbox") as batch:
        batch.add_column(sa.Column("locked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox") as batch:
        batch.drop_column("locked_at")
    op.drop_table("login_ip_failure")
