"""Background upkeep of the store: work that deliveries leave for later, done in small chunks
that yield to mail coming in (the text indexer, the blob spiller).

An ``Upkeep`` runs one loop per process: when woken (after a commit of other writes) or every
``poll_seconds`` (other processes write too) it asks whether work is pending, then does it chunk
after chunk (``step``, at most ``batch`` items each) until a chunk comes back short. Before each
chunk it sleeps ``pause_seconds`` and, while ``busy()`` says other writes are coming in, up to
``busy_pause_seconds`` more (less if the busy spell ends first), so deliveries go first and keep
the CPU while the work still moves on under constant load. A failure is logged
(``event=<name>_failed``) and tried again a poll later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.store import MailStore

log = logging.getLogger(__name__)

BUSY_CHECK_SECONDS = 0.05


def _never_busy() -> bool:
    return False


class Upkeep:
    """The loop; subclasses say what is pending and do one chunk."""

    name = "upkeep"

    def __init__(
        self,
        *,
        batch: int = 64,
        pause_seconds: float = 0.01,
        busy_pause_seconds: float = 1.0,
        poll_seconds: float = 5.0,
        busy: Callable[[], bool] = _never_busy,
    ) -> None:
        self.batch = max(1, batch)
        self.pause_seconds = pause_seconds
        self.busy_pause_seconds = busy_pause_seconds
        self.poll_seconds = poll_seconds
        self.busy = busy
        self.done = 0  # items done since it started
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def pending(self) -> bool:
        raise NotImplementedError

    async def step(self, batch: int) -> int:
        """Do at most ``batch`` items; return how many (fewer: none is left)."""
        raise NotImplementedError

    def wake(self) -> None:
        """New work was committed: do it soon (cheap; call it after every commit)."""
        self._wakeup.set()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"govmail-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Cancel the loop; a chunk already handed to the store still commits whole."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run(self) -> None:
        """Loop until cancelled."""
        while True:
            # Cleared before looking, so a wake() during the pass starts another one.
            self._wakeup.clear()
            try:
                await self.work_while_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event=%s_failed error=%r", self.name, exc)
                await asyncio.sleep(self.poll_seconds)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)

    async def _pause(self) -> None:
        """``pause_seconds``; while busy, up to ``busy_pause_seconds``, but no longer than the
        busy spell (looked at every ``BUSY_CHECK_SECONDS``): the end of a burst is used."""
        await asyncio.sleep(self.pause_seconds)
        waited = 0.0
        while waited < self.busy_pause_seconds and self.busy():
            step = min(BUSY_CHECK_SECONDS, self.busy_pause_seconds - waited)
            await asyncio.sleep(step)
            waited += step

    async def work_while_pending(self) -> int:
        """Chunk after chunk until a chunk comes back short; returns the items done."""
        if not await self.pending():
            return 0
        total = 0
        while True:
            await self._pause()
            count = await self.step(self.batch)
            total += count
            self.done += count
            if count < self.batch:
                return total


class StoreUpkeep(Upkeep):
    """Upkeep that works through a store (its reads, writes and I/O threads)."""

    def __init__(self, store: MailStore, **pacing: Any) -> None:
        super().__init__(**pacing)
        self.store = store

    def attach(self, quiet_seconds: float) -> None:
        """Run beside the store's other writes: woken by their commits, and counting the store
        busy until ``quiet_seconds`` after the last of them was asked for."""
        store = self.store
        self.busy = lambda: store.quiet_for() < quiet_seconds
        store.commit_listeners.append(self.wake)
        self.start()
