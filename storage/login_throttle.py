"""Failed logins per client IP in the database (the storage of mailserver.auth_throttle).

One row per IP: the start of its current window and the failures in it. A failure is one
upsert (a new window once the old one is over); an attempt reads one row by its key.
Rows of windows long over are pruned by :func:`prune_ip_failures`.
"""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlmodel import Session, col

from storage.models import LoginIpFailure

MAX_IP_LENGTH = 64

_UPSERT = text(
    """
    INSERT INTO login_ip_failure (ip, window_start, failures) VALUES (:ip, :now, 1)
    ON CONFLICT (ip) DO UPDATE SET
        failures = CASE WHEN login_ip_failure.window_start <= :horizon
                        THEN 1 ELSE login_ip_failure.failures + 1 END,
        window_start = CASE WHEN login_ip_failure.window_start <= :horizon
                            THEN :now ELSE login_ip_failure.window_start END
    """
)


def note_ip_failure(session: Session, ip: str, now: float, window: float) -> None:
    session.execute(_UPSERT, {"ip": ip[:MAX_IP_LENGTH], "now": now, "horizon": now - window})


def ip_failures(session: Session, ip: str, now: float, window: float) -> int:
    """Failures from ``ip`` in its window, 0 once the window is over."""
    row = session.get(LoginIpFailure, ip[:MAX_IP_LENGTH])
    if row is None or row.window_start <= now - window:
        return 0
    return row.failures


def prune_ip_failures(session: Session, now: float, window: float) -> int:
    """Forget IPs whose window is over; returns how many."""
    result = session.execute(
        delete(LoginIpFailure).where(col(LoginIpFailure.window_start) <= now - window)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
