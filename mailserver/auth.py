"""Password logins shared by IMAP and SMTP submission, with the lockout rule.

The argon2 check runs off the event loop. Consecutive failures are counted on the account;
at ``auth.max_failed_logins`` (12 by the provincial rules) the account is locked and a notice
goes to the account's INBOX and the admins (:mod:`mailserver.lock_notice`). A locked or
disabled account cannot log in, but a locked one still receives mail. With
``auth.auto_unlock_minutes`` a lock set by failed logins is lifted at the first attempt that
long after it. Time comes from ``instance.clock``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from mailserver.instance import Instance
from mailserver.lock_notice import send_lock_notice
from storage.accounts import auto_unlock, find_mailbox, note_login
from storage.models import MailboxState

log = logging.getLogger(__name__)


# Where users change an expired password (served by the admin API app).
PASSWORD_CHANGE_PATH = "/v1/password-change"


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    mailbox_id: int | None = None
    address: str | None = None
    reason: str = ""  # for logs only; clients get a generic failure
    # The password was right but must be changed first (admin's "change at next login", or
    # older than auth.password_max_age_days): RFC 5530 [EXPIRED].
    password_expired: bool = False


# A successful login is written (last_login_at, the day's login counter for the usage report)
# once per account per UTC day, or when it resets failures; the usage report counts days with
# logins, so a busy client does not cost a commit per login.
@dataclass(frozen=True)
class _Account:
    id: int
    address: str
    password_hash: str
    state: str
    failed_logins: int
    last_login_at: datetime | None
    must_change_password: bool
    password_changed_at: datetime | None
    locked_at: datetime | None

    def password_expired(self, now: datetime, max_age_days: int) -> bool:
        if self.must_change_password:
            return True
        if max_age_days <= 0 or self.password_changed_at is None:
            return False
        return now - self.password_changed_at > timedelta(days=max_age_days)

    def login_changes_nothing(self, now: datetime) -> bool:
        return (
            self.failed_logins == 0
            and self.last_login_at is not None
            and self.last_login_at.astimezone(UTC).date() == now.date()
        )


async def check_login(
    instance: Instance, username: str, password: str, protocol: str, allow_expired: bool = False
) -> LoginResult:
    """Verify ``username``/``password`` and count the attempt against the account.

    A right password that must be changed first fails with ``password_expired`` set, unless
    ``allow_expired`` (the password-change page itself).
    """
    store = instance.store

    def load(session: object) -> _Account | None:
        mailbox = find_mailbox(session, username)  # type: ignore[arg-type]
        if mailbox is None or mailbox.id is None:
            return None
        return _Account(
            mailbox.id,
            mailbox.address,
            mailbox.password_hash,
            mailbox.state,
            mailbox.failed_logins,
            mailbox.last_login_at,
            mailbox.must_change_password,
            mailbox.password_changed_at,
            mailbox.locked_at,
        )

    account = await store.read(load)
    now = instance.clock()
    if account is not None and await _unlocked_by_time(instance, account, now):
        account = replace(account, state=MailboxState.ACTIVE, failed_logins=0, locked_at=None)
    valid = await store.offload(
        instance.passwords.verify, account.password_hash if account else None, password
    )
    if not valid or account is None or account.state != MailboxState.ACTIVE:
        # Slows down guessing; the same pause whatever the reason, so it reveals nothing.
        await asyncio.sleep(instance.config.auth.failed_login_delay_seconds)
    if account is None:
        log.info("event=login_failed protocol=%s user=%r reason=unknown_user", protocol, username)
        return LoginResult(False, reason="unknown user")
    if account.state != MailboxState.ACTIVE:
        log.info(
            "event=login_refused protocol=%s user=%s state=%s",
            protocol,
            account.address,
            account.state,
        )
        return LoginResult(False, account.id, account.address, reason=f"account {account.state}")
    if (
        valid
        and not allow_expired
        and account.password_expired(now, instance.config.auth.password_max_age_days)
    ):
        log.info(
            "event=login_refused protocol=%s user=%s reason=password_expired",
            protocol,
            account.address,
        )
        return LoginResult(
            False, account.id, account.address, "password expired", password_expired=True
        )
    max_failures = instance.config.auth.max_failed_logins
    if valid and account.login_changes_nothing(now):
        log.info("event=login protocol=%s user=%s", protocol, account.address)
        return LoginResult(True, account.id, account.address)
    counted = await store.write(lambda s: note_login(s, account.id, valid, max_failures, now))
    if not valid:
        log.info(
            "event=login_failed protocol=%s user=%s reason=bad_password state=%s",
            protocol,
            account.address,
            counted.state,
        )
        if counted.locked_now:
            await _announce_lock(instance, account)
        return LoginResult(False, account.id, account.address, reason="bad password")
    log.info("event=login protocol=%s user=%s", protocol, account.address)
    return LoginResult(True, account.id, account.address)


async def _announce_lock(instance: Instance, account: _Account) -> None:
    """The lock holds whatever happens to its notice; a failed notice is logged."""
    try:
        await send_lock_notice(instance, account.address, account.failed_logins + 1)
    except Exception:
        log.exception("event=lock_notice_failed user=%s", account.address)


async def _unlocked_by_time(instance: Instance, account: _Account, now: datetime) -> bool:
    """Lift a lock by failed logins older than ``auth.auto_unlock_minutes`` (0: never)."""
    minutes = instance.config.auth.auto_unlock_minutes
    if minutes <= 0 or account.state != MailboxState.LOCKED or account.locked_at is None:
        return False
    if now - account.locked_at < timedelta(minutes=minutes):
        return False
    after = timedelta(minutes=minutes)
    unlocked = await instance.store.write(lambda s: auto_unlock(s, account.id, now, after))
    if unlocked:
        log.info("event=auto_unlock user=%s", account.address)
    return bool(unlocked)


def password_change_url(instance: Instance) -> str:
    """The page where users change an expired password (the admin app's public address)."""
    config = instance.config.admin_api
    base = config.public_url.rstrip("/") or f"http://{config.listen}"
    return base + PASSWORD_CHANGE_PATH
