"""Per-mailbox daily counters for the usage report: logins, messages received and sent.

Counted inside the transaction of the event itself (a login, a delivery), with one upsert per
mailbox and day, so the report never disagrees with what was committed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.models import UsageDaily


def count_usage(
    session: Session,
    mailbox_id: int,
    day: date,
    *,
    received: int = 0,
    sent: int = 0,
    logins: int = 0,
) -> None:
    """Add to the mailbox's counters of ``day`` (the row is created on first use)."""
    table = UsageDaily.__table__  # type: ignore[attr-defined]
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(
        mailbox_id=mailbox_id, day=day, received=received, sent=sent, logins=logins
    )
    statement = statement.on_conflict_do_update(
        index_elements=["mailbox_id", "day"],
        set_={
            "received": table.c.received + received,
            "sent": table.c.sent + sent,
            "logins": table.c.logins + logins,
        },
    )
    session.execute(statement)
