"""folder.first_recent_uid: the first UID no IMAP4rev1 session has seen yet (\\Recent)

RFC 3501 2.3.2: a message is \\Recent in exactly one session, the first to see it. As Dovecot
keeps ``first_recent_uid`` in its index header, a folder keeps the first UID not yet claimed;
a read-write SELECT (or a session noticing new mail) claims what lies below UIDNEXT by moving
it up, under the folder's row lock. Existing folders start at their UIDNEXT: mail delivered
before this migration is not recent; new folders start at 1.

kept_subscription: subscriptions of deleted folders, which RFC 3501 6.3.6 says stay until the
client unsubscribes (listed as \\NonExistent \\Subscribed).

Revision ID: 0013
Revises: 0001 (its own branch: independent of the text index migrations)
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("folder") as batch:
        batch.add_column(
            sa.Column("first_recent_uid", sa.BigInteger(), nullable=False, server_default="1")
        )
    op.execute("UPDATE folder SET first_recent_uid = uidnext")
    op.create_table(
        "kept_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox_id", "name"),
    )
    op.create_index("ix_kept_subscription_mailbox_id", "kept_subscription", ["mailbox_id"])


def downgrade() -> None:
    op.drop_index("ix_kept_subscription_mailbox_id", table_name="kept_subscription")
    op.drop_table("kept_subscription")
    with op.batch_alter_table("folder") as batch:
        batch.drop_column("first_recent_uid")
