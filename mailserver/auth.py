"""Password logins shared by IMAP and SMTP submission, with the lockout rule.

The argon2 check runs off the event loop. Consecutive failures are counted on the account;
at ``auth.max_failed_logins`` (12 by the provincial rules) the account is locked. A locked or
disabled account cannot log in, but a locked one still receives mail.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mailserver.instance import Instance
from storage.accounts import find_mailbox, note_login
from storage.models import MailboxState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    mailbox_id: int | None = None
    address: str | None = None
    reason: str = ""  # for logs only; clients get a generic failure


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

    def login_changes_nothing(self, now: datetime) -> bool:
        return (
            self.failed_logins == 0
            and self.last_login_at is not None
            and self.last_login_at.astimezone(UTC).date() == now.date()
        )


async def check_login(
    instance: Instance, username: str, password: str, protocol: str
) -> LoginResult:
    """Verify ``username``/``password`` and count the attempt against the account."""
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
        )

    account = await store.read(load)
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
    max_failures = instance.config.auth.max_failed_logins
    if valid and account.login_changes_nothing(datetime.now(UTC)):
        log.info("event=login protocol=%s user=%s", protocol, account.address)
        return LoginResult(True, account.id, account.address)
    state = await store.write(lambda s: note_login(s, account.id, valid, max_failures))
    if not valid:
        log.info(
            "event=login_failed protocol=%s user=%s reason=bad_password state=%s",
            protocol,
            account.address,
            state,
        )
        return LoginResult(False, account.id, account.address, reason="bad password")
    log.info("event=login protocol=%s user=%s", protocol, account.address)
    return LoginResult(True, account.id, account.address)
