"""folder.first_recent_uid: the first UID no IMAP4rev1 session has seen yet (\\Recent)

RFC 3501 2.3.2: a message is \\Recent in exactly one session, the first to see it. As Dovecot
keeps ``first_recent_uid`` in its index header, a folder keeps the first UID not yet claimed;
a read-write SELECT (or a session noticing new mail) claims what lies below UIDNEXT by moving
it up, under the folder's row lock. Existing folders start at their UIDNEXT: mail delivered
before this migration is not recent; new folders start at 1.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("folder") as batch:
        batch.add_column(
            sa.Column("first_recent_uid", sa.BigInteger(), nullable=False, server_default="1")
        )
    op.execute("UPDATE folder SET first_recent_uid = uidnext")


def downgrade() -> None:
    with op.batch_alter_table("folder") as batch:
        batch.drop_column("first_recent_uid")
