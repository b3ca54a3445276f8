"""Per-mailbox daily counters for the usage report: logins, messages received and sent.

Counted inside the transaction of the event itself (a login, a delivery), with one upsert per
mailbox and day, so the report never disagrees with what was committed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.fast_sql import Prepared, PreparedRows
from storage.models import UsageDaily

_TABLE = UsageDaily.__table__  # type: ignore[attr-defined]
_COUNT = Prepared(
    lambda dialect: (
        (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_TABLE)
        .values(
            mailbox_id=bindparam("mailbox_id"),
            day=bindparam("day", type_=_TABLE.c.day.type),
            received=bindparam("received"),
            sent=bindparam("sent"),
            logins=bindparam("logins"),
        )
        .on_conflict_do_update(
            index_elements=["mailbox_id", "day"],
            set_={
                "received": _TABLE.c.received + bindparam("received"),
                "sent": _TABLE.c.sent + bindparam("sent"),
                "logins": _TABLE.c.logins + bindparam("logins"),
            },
        )
    )
)


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
    _COUNT.execute(
        session,
        {
            "mailbox_id": mailbox_id,
            "day": day,
            "received": received,
            "sent": sent,
            "logins": logins,
        },
    ).close()


_COUNTS = PreparedRows(
    _TABLE,
    ("mailbox_id", "day", "received", "sent", "logins"),
    lambda _dialect, statement: statement.on_conflict_do_update(
        index_elements=["mailbox_id", "day"],
        set_={
            name: _TABLE.c[name] + statement.excluded[name]
            for name in ("received", "sent", "logins")
        },
    ),
)


def count_usage_many(session: Session, counts: list[tuple[int, date, int, int]]) -> None:
    """Several mailboxes' counters at once: (mailbox_id, day, received, sent) each, in the
    order given (callers sort, so concurrent transactions lock rows in one order)."""
    _COUNTS.execute(
        session,
        [
            {"mailbox_id": m, "day": d, "received": received, "sent": sent, "logins": 0}
            for m, d, received, sent in counts
        ],
    )
