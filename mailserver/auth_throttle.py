"""Failed logins counted per client IP, against password spraying.

The per-account rule (12 consecutive failures lock the account) does not stop one address from
trying one password against thousands of accounts. This counter does: after ``max_failures``
failures from one IP within ``window`` seconds of its first failure, that IP may not try again
until the window is over. IMAP, SMTP submission and the password-change page share it.

The counts are in the database (:mod:`storage.login_throttle`), so every worker process and
node of the instance sees the same ones and a restart forgets none: one read per attempt, one
upsert per failure; every ``prune_every`` failures (per process) the rows of windows that are
over are deleted, so addresses seen once do not pile up. Time comes in through ``clock``
(epoch seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlmodel import Session

from storage.login_throttle import ip_failures, note_ip_failure, prune_ip_failures
from storage.store import MailStore


class LoginThrottle:
    def __init__(
        self,
        store: MailStore,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.time,
        prune_every: int = 1000,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.prune_every = prune_every
        self._failures_noted = 0

    async def blocked(self, ip: str) -> bool:
        """True while ``ip`` has used up its failures for the window."""
        now = self.clock()
        failures = await self.store.read(lambda s: ip_failures(s, ip, now, self.window))
        return failures >= self.max_failures

    async def note_failure(self, ip: str) -> None:
        now = self.clock()
        self._failures_noted += 1
        prune = self._failures_noted % self.prune_every == 0

        def note(session: Session) -> None:
            note_ip_failure(session, ip, now, self.window)
            if prune:
                prune_ip_failures(session, now, self.window)

        await self.store.write(note)
