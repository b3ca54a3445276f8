"""Per-mailbox daily counters for the usage report: logins, messages received and sent.

Counted inside the transaction of the event itself (a login, a delivery), with one upsert per
mailbox and day, so the report never disagrees with what was committed.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from storage.fast_sql import PreparedRows
from storage.models import UsageDaily

_TABLE = UsageDaily.__table__  # type: ignore[attr-defined]
_COUNTERS = ("received", "sent", "logins")
_COUNTS = PreparedRows(
    _TABLE,
    ("mailbox_id", "day", *_COUNTERS),
    lambda _dialect, statement: statement.on_conflict_do_update(
        index_elements=["mailbox_id", "day"],
        set_={name: _TABLE.c[name] + statement.excluded[name] for name in _COUNTERS},
    ),
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
    count_usage_many(session, [(mailbox_id, day, received, sent, logins)])


def count_usage_many(session: Session, counts: list[tuple[int, date, int, int, int]]) -> None:
    """Several counters at once: (mailbox_id, day, received, sent, logins) each, in the order
    given (callers sort, so concurrent transactions lock rows in one order)."""
    _COUNTS.execute(
        session,
        [
            {"mailbox_id": m, "day": d, "received": r, "sent": s, "logins": n}
            for m, d, r, s, n in counts
        ],
    )
