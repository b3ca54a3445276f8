"""The background upkeep loop (storage.upkeep): chunks until one comes back short, a long
pause only while mail comes in, and that pause cut short when the busy spell ends."""

from __future__ import annotations

import asyncio

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
