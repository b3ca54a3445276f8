"""The yearly usage report of a province: per agency, and rolled up for every subtree.

Figures, for each agency's own mailboxes and for its whole subtree:
mailboxes provisioned; active in the last 7 and 30 days (a successful IMAP, POP3 or SMTP login:
``mailbox.last_login_at``, or a login counted in ``usage_daily``); messages sent and received in
the period (``usage_daily``); storage used; accounts never used (no login ever).

Aggregation is two GROUP BY queries; the roll-up over the tree is done in Python on one row per
agency. Rendering as CSV or JSON is pure (:func:`report_csv`, :func:`report_json`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from storage.admin_scope import Scope, agency_condition
from storage.models import Agency, Domain, Mailbox, UsageDaily


@dataclass
class UsageFigures:
    mailboxes: int = 0
    active_7d: int = 0
    active_30d: int = 0
    sent: int = 0
    received: int = 0
    storage_bytes: int = 0
    never_used: int = 0

    def add(self, other: UsageFigures) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclass
class AgencyUsage:
    agency_id: int
    parent_id: int | None
    code: str | None
    abbreviation: str
    name: str
    depth: int
    own: UsageFigures = field(default_factory=UsageFigures)
    subtree: UsageFigures = field(default_factory=UsageFigures)


@dataclass
class UsageReport:
    since: date
    until: date  # exclusive
    as_of: datetime
    agencies: list[AgencyUsage]
    total: UsageFigures


def _effective_agency() -> Any:
    return func.coalesce(col(Mailbox.agency_id), col(Domain.agency_id))


def build_usage_report(
    session: Session, scope: Scope, since: date, until: date, as_of: datetime
) -> UsageReport:
    cutoff_7 = as_of - timedelta(days=7)
    cutoff_30 = as_of - timedelta(days=30)
    last_login_day = (
        select(
            col(UsageDaily.mailbox_id).label("mailbox_id"),
            func.max(col(UsageDaily.day)).label("day"),
        )
        .where(col(UsageDaily.logins) > 0)
        .group_by(col(UsageDaily.mailbox_id))
        .subquery()
    )
    login = col(Mailbox.last_login_at)
    day = last_login_day.c.day

    def active_since(cutoff: datetime) -> Any:
        return func.sum(case(((login >= cutoff) | (day >= cutoff.date()), 1), else_=0))

    agency = _effective_agency().label("agency")
    mailbox_rows = session.execute(
        sql_select(
            agency,
            func.count(),
            active_since(cutoff_7),
            active_since(cutoff_30),
            func.coalesce(func.sum(col(Mailbox.used_bytes)), 0),
            func.sum(case((login.is_(None) & day.is_(None), 1), else_=0)),
        )
        .join(Domain, col(Domain.id) == col(Mailbox.domain_id))
        .outerjoin(last_login_day, last_login_day.c.mailbox_id == col(Mailbox.id))
        .group_by(agency)
    ).all()
    traffic_agency = _effective_agency().label("agency")
    traffic_rows = session.execute(
        sql_select(
            traffic_agency,
            func.coalesce(func.sum(col(UsageDaily.sent)), 0),
            func.coalesce(func.sum(col(UsageDaily.received)), 0),
        )
        .join(Mailbox, col(Mailbox.id) == col(UsageDaily.mailbox_id))
        .join(Domain, col(Domain.id) == col(Mailbox.domain_id))
        .where(col(UsageDaily.day) >= since, col(UsageDaily.day) < until)
        .group_by(traffic_agency)
    ).all()

    agencies = session.exec(
        select(Agency).where(agency_condition(scope, Agency.id)).order_by(col(Agency.id))
    ).all()
    by_id: dict[int, AgencyUsage] = {}
    for row in agencies:
        assert row.id is not None
        by_id[row.id] = AgencyUsage(
            row.id, row.parent_id, row.code, row.abbreviation, row.name, depth=0
        )
    for agency_id, count, act7, act30, used, never in mailbox_rows:
        if agency_id in by_id:
            own = by_id[agency_id].own
            own.mailboxes, own.active_7d, own.active_30d = int(count), int(act7), int(act30)
            own.storage_bytes, own.never_used = int(used), int(never)
    for agency_id, sent, received in traffic_rows:
        if agency_id in by_id:
            by_id[agency_id].own.sent, by_id[agency_id].own.received = int(sent), int(received)

    ordered = _tree_order(by_id)
    total = UsageFigures()
    for usage in reversed(ordered):  # children before their parents
        usage.subtree.add(usage.own)
        parent = by_id.get(usage.parent_id) if usage.parent_id is not None else None
        if parent is not None:
            parent.subtree.add(usage.subtree)
        else:
            total.add(usage.subtree)
    return UsageReport(since, until, as_of, ordered, total)


def _tree_order(by_id: dict[int, AgencyUsage]) -> list[AgencyUsage]:
    """Depth-first, parents before children, siblings by name; roots are those without a
    parent in the scope (an agency admin's own agency)."""
    children: dict[int | None, list[AgencyUsage]] = {}
    for usage in by_id.values():
        parent = usage.parent_id if usage.parent_id in by_id else None
        children.setdefault(parent, []).append(usage)
    ordered: list[AgencyUsage] = []
    stack = [(usage, 0) for usage in sorted(children.get(None, []), key=_key, reverse=True)]
    while stack:
        usage, depth = stack.pop()
        usage.depth = depth
        ordered.append(usage)
        below = sorted(children.get(usage.agency_id, []), key=_key, reverse=True)
        stack.extend((child, depth + 1) for child in below)
    return ordered


def _key(usage: AgencyUsage) -> tuple[str, int]:
    return (usage.name, usage.agency_id)


FIGURES = [item.name for item in fields(UsageFigures)]
CSV_COLUMNS = [
    "agency_id",
    "parent_id",
    "depth",
    "code",
    "abbreviation",
    "name",
    *FIGURES,
    *(f"subtree_{name}" for name in FIGURES),
]


def report_csv(report: UsageReport) -> str:
    """One line per agency (own figures, then subtree figures), then a TOTAL line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 2.1: CRLF line breaks
    writer.writerow(CSV_COLUMNS)
    for usage in report.agencies:
        writer.writerow(
            [
                usage.agency_id,
                usage.parent_id if usage.parent_id is not None else "",
                usage.depth,
                usage.code or "",
                usage.abbreviation,
                usage.name,
                *(getattr(usage.own, name) for name in FIGURES),
                *(getattr(usage.subtree, name) for name in FIGURES),
            ]
        )
    total = [getattr(report.total, name) for name in FIGURES]
    writer.writerow(["", "", "", "", "", "TOTAL", *total, *total])
    return out.getvalue()


def report_dict(report: UsageReport) -> dict[str, Any]:
    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "as_of": report.as_of.isoformat(timespec="seconds"),
        "total": asdict(report.total),
        "agencies": [asdict(usage) for usage in report.agencies],
    }


def report_json(report: UsageReport) -> str:
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2)
