"""Checks of the instance's state in its database: schema version, outbound queue, DKIM keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, col, func, select

from filters.dkim_keys import (
    ALGORITHMS,
    ED25519,
    RSA,
    domain_keys,
    published_keys,
    select_signing_keys,
)
from mailserver.doctor.results import CheckResult, fail, ok, warn
from storage.db import Database
from storage.message_queries import as_utc
from storage.models import DkimKey, Domain, QueueEntry, QueueState
from storage.schema import alembic_config

SCHEMA_CHECK = "database schema"
QUEUE_CHECK = "outbound queue"
DKIM_CHECK = "dkim"


def database_revisions(db: Database) -> set[str]:
    """The revisions in the database's alembic_version table (one per applied branch head)."""
    with db.reader.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def migration_scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def revision_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def applied_revisions(scripts: ScriptDirectory, current: set[str]) -> set[str]:
    """Every revision applied when ``current`` are the table's rows: their ancestors, through
    ``down_revision`` and ``depends_on`` both (alembic keeps only the heads in the table)."""
    applied: set[str] = set()
    waiting = list(current)
    while waiting:
        name = waiting.pop()
        if name in applied:
            continue
        applied.add(name)
        revision = scripts.get_revision(name)
        if revision is not None:
            waiting += revision_names(revision.down_revision)
            waiting += revision_names(revision.dependencies)
    return applied


def check_schema(db: Database) -> CheckResult:
    """Every migration of this code is applied to the database, and nothing unknown is."""
    scripts = migration_scripts()
    current = database_revisions(db)
    known = {r.revision for r in scripts.walk_revisions()}
    if current - known:
        return fail(
            SCHEMA_CHECK,
            f"the database is at {', '.join(sorted(current))}, which this govmail does not know"
            " (made by a newer version?)",
            "run the govmail version that made this database, or restore a matching backup",
        )
    pending = known - applied_revisions(scripts, current)
    if not pending:
        return ok(SCHEMA_CHECK, f"at head ({', '.join(sorted(current))})")
    return fail(
        SCHEMA_CHECK,
        f"not applied: {', '.join(sorted(pending))}"
        f" (the database is at {', '.join(sorted(current)) or 'no revision'})",
        "back up the database, then run `govmail serve` (it migrates to head at start)",
    )


def oldest_queued(session: Session) -> tuple[int, datetime | None]:
    """How many messages wait in the outbound queue, and when the oldest was queued."""
    count, oldest = session.exec(
        select(func.count(), func.min(col(QueueEntry.created_at))).where(
            QueueEntry.state == QueueState.QUEUED
        )
    ).one()
    return int(count), as_utc(oldest) if oldest is not None else None


def check_queue(
    db: Database, now: datetime, warn_after: timedelta, fail_after: timedelta
) -> CheckResult:
    """The oldest queued message: a warning past ``warn_after``, failure past ``fail_after``."""
    with db.read_session() as session:
        count, oldest = oldest_queued(session)
    if oldest is None:
        return ok(QUEUE_CHECK, "empty")
    age = now - oldest
    detail = f"{count} queued, the oldest for {age_text(age)} (since {oldest:%Y-%m-%d %H:%M} UTC)"
    if age > fail_after:
        return fail(
            QUEUE_CHECK,
            detail + ": past the queue lifetime, so no delivery worker is running",
            "start govmail (`govmail serve`); look at `govmail queue list` and the logs",
        )
    if age > warn_after:
        return warn(
            QUEUE_CHECK,
            detail,
            "see why with `govmail queue show ID` (last reply per recipient); fix the route or"
            " `govmail queue retry ID`",
        )
    return ok(QUEUE_CHECK, detail)


def age_text(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def key_file_problem(key_dir: Path, key: DkimKey) -> str | None:
    """Why the key's private file cannot sign for its published record, or None."""
    path = key_dir / key.private_key_file
    try:
        content = path.read_bytes()
    except OSError as exc:
        return f"{key.selector}: cannot read {path}: {exc.strerror or exc}"
    if key.algorithm == RSA and b"PRIVATE KEY" not in content:
        return f"{key.selector}: {path} is not a PEM private key"
    if key.algorithm == ED25519 and len(content.strip()) != 44:
        return f"{key.selector}: {path} is not a base64 Ed25519 seed"
    return None


def check_domain_keys(
    domain: str, keys: Sequence[DkimKey], key_dir: Path, now: datetime, publish_delay: timedelta
) -> CheckResult:
    """The keys that sign the domain's mail now (one per algorithm) have usable files; keys that
    are only still published after a rotation need none."""
    check = f"{DKIM_CHECK} {domain}"
    if not published_keys(keys, now):
        return fail(
            check,
            "no DKIM key: the first mail from it makes one that DNS does not publish yet",
            f"govmail dkim dns {domain}  (makes keys, prints the records to publish)",
        )
    signing = select_signing_keys(keys, now, publish_delay)
    problems = [p for k in signing if (p := key_file_problem(key_dir, k)) is not None]
    if problems:
        return fail(
            check,
            "; ".join(problems) + ": signing with it fails",
            f"govmail dkim rotate {domain} --immediate (new keys), then publish"
            f" `govmail dkim dns {domain}`",
        )
    missing = [a for a in ALGORITHMS if a not in {k.algorithm for k in signing}]
    selectors = ", ".join(k.selector for k in signing) or "none"
    if missing:
        return warn(
            check,
            f"signing selectors: {selectors}; no {' or '.join(missing)} key signs",
            f"govmail dkim rotate {domain} --immediate",
        )
    return ok(check, f"signing selectors {selectors}, key files readable")


def check_dkim(
    db: Database, key_dir: Path, now: datetime, publish_delay: timedelta
) -> list[CheckResult]:
    """Every local domain has keys, and readable files for the keys that sign."""
    with db.read_session() as session:
        domains = list(session.exec(select(Domain).order_by(col(Domain.name))))
        keys = {d.name: domain_keys(session, d.id) for d in domains if d.id is not None}
    if not keys:
        return [
            warn(DKIM_CHECK, "no local domain", "add one: `govmail domain add` or the admin API")
        ]
    return [
        check_domain_keys(name, domain_key_rows, key_dir, now, publish_delay)
        for name, domain_key_rows in keys.items()
    ]
