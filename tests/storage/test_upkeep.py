"""The background upkeep loop (storage.upkeep): chunks until one comes back short, a long
pause only while mail comes in, and that pause cut short when the busy spell ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from storage.store import MailStore
from storage.upkeep import Upkeep


class Counting(Upkeep):
    """``left`` items of work; records the busy answers it was given."""

    name = "counting"

    def __init__(self, left: int, busy_answers: list[bool], **pacing: float | int) -> None:
        self.answers = busy_answers
        self.asked = 0
        super().__init__(busy=self._busy, **pacing)  # type: ignore[arg-type]
        self.left = left

    def _busy(self) -> bool:
        self.asked += 1
        return self.answers.pop(0) if self.answers else False

    async def pending(self) -> bool:
        return self.left > 0

    async def step(self, batch: int) -> int:
        done = min(batch, self.left)
        self.left -= done
        return done


async def test_work_goes_on_in_chunks_until_one_is_short() -> None:
    upkeep = Counting(10, [], batch=4, pause_seconds=0)
    assert await upkeep.work_while_pending() == 10
    assert upkeep.done == 10 and upkeep.left == 0
    assert await upkeep.work_while_pending() == 0


async def test_a_busy_pause_ends_with_the_busy_spell() -> None:
    # Busy for three looks, then quiet: a pause of up to an hour lasts about 0.15 s.
    upkeep = Counting(1, [True, True, True], pause_seconds=0, busy_pause_seconds=3600)
    assert await asyncio.wait_for(upkeep.work_while_pending(), 10) == 1
    assert upkeep.asked == 4  # three busy answers, then the quiet one that ended the pause


async def test_under_constant_load_each_chunk_waits_the_busy_pause() -> None:
    upkeep = Counting(3, [True] * 100, batch=1, pause_seconds=0, busy_pause_seconds=0.12)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(upkeep.work_while_pending(), 10) == 3
    assert loop.time() - started >= 3 * 0.12  # chunks still go on, one per pause
    assert upkeep.left == 0


async def test_background_writes_are_not_activity_and_wake_nobody(mail_store: MailStore) -> None:
    woken: list[str] = []
    mail_store.commit_listeners.append(lambda: woken.append("commit"))
    await mail_store.write(lambda session: None, background=True)
    assert woken == []
    assert mail_store.quiet_for() == float("inf")  # nothing but upkeep ever asked for a write
    await mail_store.write(lambda session: None)
    assert woken == ["commit"] and mail_store.quiet_for() < 60


async def test_a_failing_commit_listener_is_logged_and_the_writer_goes_on(
    mail_store: MailStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("listener bug")

    mail_store.commit_listeners.append(broken)
    with caplog.at_level(logging.ERROR):
        assert await mail_store.write(lambda session: 1) == 1
        assert await mail_store.write(lambda session: 2) == 2  # the writer still runs
    assert caplog.text.count("event=commit_listener_failed") == 2
