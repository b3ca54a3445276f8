"""admin API: agency of mailboxes/aliases/groups, mailbox search text, audit scope, setup links

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
        batch_op.create_index(batch_op.f("ix_mailbox_agency_id"), ["agency_id"], unique=False)
        batch_op.create_foreign_key("fk_mailbox_agency_id", "agency", ["agency_id"], ["id"])
    # Rows from before this revision: unfolded, but searchable by address and plain name.
    op.execute("UPDATE mailbox SET search_text = lower(display_name || ' ' || address)")
    for table in ("alias", "mail_group"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("agency_id", sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_agency_id"), ["agency_id"], unique=False)
            batch_op.create_foreign_key(f"fk_{table}_agency_id", "agency", ["agency_id"], ["id"])
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_event_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "password_setup_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("password_setup_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_password_setup_token_mailbox_id"), ["mailbox_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("password_setup_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_setup_token_mailbox_id"))
    op.drop_table("password_setup_token")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_agency_id"))
        batch_op.drop_column("agency_id")
    for table in ("alias", "mail_group"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_agency_id", type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_agency_id"))
            batch_op.drop_column("agency_id")
    with op.batch_alter_table("mailbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_mailbox_agency_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_mailbox_agency_id"))
        batch_op.drop_column("search_text")
        batch_op.drop_column("agency_id")
