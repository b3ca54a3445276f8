"""Runs every check of `govmail check` over one instance, in an order where each can rely on the
ones before it (no database checks without a database at the right schema)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mailserver.config import ConfigError, GovmailConfig, load_config
from mailserver.doctor.config_checks import check_config_values
from mailserver.doctor.disk_checks import SpaceLimits, check_disks
from mailserver.doctor.dns_checks import check_dns
from mailserver.doctor.instance_checks import (
    SCHEMA_CHECK,
    check_dkim,
    check_queue,
    check_schema,
)
from mailserver.doctor.results import CheckResult, Status, fail
from mailserver.doctor.service_checks import check_clamd, check_spamd
from mailserver.doctor.tls_checks import check_tls
from storage.db import Database, open_database

FIX_DATABASE = "is the database server running? check [database] url (and [server] data_dir)"


@dataclass(frozen=True)
class CheckOptions:
    now: datetime
    dns: bool = False
    space: SpaceLimits = field(default_factory=SpaceLimits)


def guarded(name: str, check: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """A check that crashes is reported as failed; the other checks still run."""
    try:
        return check()
    except Exception as exc:  # the doctor reports, it does not stop
        return [fail(name, f"the check itself failed: {exc!r}", "report this with the output")]


def sqlite_file_missing(config: GovmailConfig) -> Path | None:
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    return None if path.exists() else path


def database_checks(
    config: GovmailConfig, db: Database, options: CheckOptions
) -> list[CheckResult]:
    try:
        results = [check_schema(db)]
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        return [fail(SCHEMA_CHECK, f"cannot read the database: {reason}", FIX_DATABASE)]
    if any(r.status is Status.FAIL for r in results):
        return results  # queries of an older schema may not work
    queue = config.queue
    results += guarded(
        "outbound queue",
        lambda: [
            check_queue(
                db,
                options.now,
                warn_after=timedelta(seconds=queue.delay_warning_seconds),
                fail_after=timedelta(seconds=queue.lifetime_seconds),
            )
        ],
    )
    publish_delay = timedelta(hours=config.dkim.publish_hours)
    results += guarded(
        "dkim", lambda: check_dkim(db, config.dkim_key_dir, options.now, publish_delay)
    )
    if options.dns:
        results += guarded("dns", lambda: check_dns(config, db, options.now))
    return results


def instance_checks(config: GovmailConfig, options: CheckOptions) -> list[CheckResult]:
    results = guarded("configuration", lambda: check_config_values(config))
    results += guarded(
        "tls certificate",
        lambda: check_tls(config.cert_file, config.key_file, config.server.hostname, options.now),
    )
    limits = SpaceLimits(
        options.space.warn_bytes, options.space.warn_ratio, config.smtp.max_message_size
    )
    places = [("data dir", config.data_dir), ("blob dir", config.blob_dir)]
    results += guarded("disk space", lambda: check_disks(places, limits))
    results += guarded("spamd", lambda: [check_spamd(config)])
    results += guarded("clamd", lambda: [check_clamd(config)])
    missing = sqlite_file_missing(config)
    if missing is not None:
        fix = "run `govmail init`, or " + FIX_DATABASE.split("? ")[1]
        return [*results, fail(SCHEMA_CHECK, f"no database at {missing}", fix)]
    db = open_database(config.database_url)
    try:
        return results + database_checks(config, db, options)
    finally:
        db.dispose()


def run_checks(config_path: Path, options: CheckOptions) -> list[CheckResult]:
    """Every check of the instance configured at ``config_path``."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [fail("configuration", str(exc), "correct the file (keys: deploy/CONFIG.md)")]
    return instance_checks(config, options)
