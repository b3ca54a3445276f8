"""Failed logins counted per client IP, against password spraying.

The per-account rule (12 consecutive failures lock the account) does not stop one address from
trying one password against thousands of accounts. This counter does: after ``max_failures``
failures from one IP within ``window`` seconds, that IP may not try again until its oldest
failure leaves the window. In memory and bounded (the least recently failing IPs are forgotten
first); the worker processes of one instance tell each other their failures (``relay``), so
the count is the instance's. Time comes in through ``clock``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_TRACKED_IPS = 100_000


class LoginThrottle:
    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.relay: Callable[[str], None] | None = None

    def _recent(self, ip: str) -> deque[float] | None:
        failures = self._failures.get(ip)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[ip]
            return None
        return failures

    def blocked(self, ip: str) -> bool:
        """True while ``ip`` has used up its failures for the window."""
        failures = self._recent(ip)
        return failures is not None and len(failures) >= self.max_failures

    def note_failure(self, ip: str) -> None:
        self.note_relayed_failure(ip)
        if self.relay is not None:
            self.relay(ip)

    def note_relayed_failure(self, ip: str) -> None:
        """A failure seen by another process of this instance."""
        failures = self._recent(ip)
        if failures is None:
            failures = self._failures[ip] = deque(maxlen=max(1, self.max_failures))
        failures.append(self.clock())
        self._failures.move_to_end(ip)
        while len(self._failures) > MAX_TRACKED_IPS:
            self._failures.popitem(last=False)
