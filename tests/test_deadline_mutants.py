"""Rules of gtmhub_async.deadline that mutation testing found unchecked (see tests/MUTATION.md)."""

from __future__ import annotations

import asyncio

import pytest

from gtmhub_async.deadline import Budget, Deadlines
from gtmhub_async.testing.simulator import VirtualClockLoop
from gtmhub_async.testing.simulator import run_virtual as run


async def _sleep_within(deadlines: Deadlines, when: float, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        with deadlines.at(when):
            await asyncio.sleep(seconds)
    except TimeoutError:
        pass
    return loop.time() - start


def test_a_budget_keeps_its_deadline() -> None:
    async def main() -> float:
        with Deadlines().at(1234.5) as budget:
            return budget.when

    assert run(main) == 1234.5


def test_after_earlier_budgets_end_in_time_a_later_one_still_times_out_on_time() -> None:
    async def main() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        deadlines = Deadlines()
        now = loop.time()
        # Three budgets end early (done, still in the heap), one must fire at +30 s.
        quick = [_sleep_within(deadlines, now + 10.0 + i, 1.0) for i in range(3)]
        late = asyncio.ensure_future(_sleep_within(deadlines, now + 30.0, 100.0))
        ends = await asyncio.gather(*quick)
        # A new budget entered after those: the done ones at the top of the heap are dropped.
        second = await _sleep_within(deadlines, loop.time() + 5.0, 100.0)
        return [*ends, second], await late

    ends, late = run(main)
    assert ends == [pytest.approx(1.0)] * 3 + [pytest.approx(5.0)]
    assert late == pytest.approx(30.0)


def test_open_budgets_counts_every_open_one() -> None:
    async def main() -> list[int]:
        deadlines = Deadlines()
        now = asyncio.get_running_loop().time()
        counts = []
        with deadlines.at(now + 10):
            with deadlines.at(now + 20):
                counts.append(deadlines.open_budgets)
            counts.append(deadlines.open_budgets)
        counts.append(deadlines.open_budgets)
        return counts

    assert run(main) == [2, 1, 0]


def test_a_live_budget_survives_the_heap_compaction_after_many_done_ones() -> None:
    async def main() -> float:
        deadlines = Deadlines()
        now = asyncio.get_running_loop().time()
        late = asyncio.ensure_future(_sleep_within(deadlines, now + 500.0, 1000.0))
        await asyncio.sleep(0)
        for i in range(100):  # done budgets pile up behind the live one, then get compacted
            await _sleep_within(deadlines, now + 1000.0 + i, 0.001)
        return await late

    assert run(main) == pytest.approx(500.0)


def test_a_timer_that_finds_finished_budgets_first_moves_on_to_the_live_one() -> None:
    async def main() -> tuple[float, float]:
        deadlines = Deadlines()
        now = asyncio.get_running_loop().time()
        late = asyncio.ensure_future(_sleep_within(deadlines, now + 30.0, 100.0))
        # Armed for +10 s, done after 1 s; no budget enters after it, so the timer itself
        # finds it at the top of the heap at +10 s and must go on to the one at +30 s.
        quick = await _sleep_within(deadlines, now + 10.0, 1.0)
        return quick, await late

    quick, late = run(main)
    assert (quick, late) == (pytest.approx(1.0), pytest.approx(30.0))


class _Task:
    """Stands for the task a budget cancels; counts the cancels."""

    def __init__(self) -> None:
        self.cancels = 0

    def cancelling(self) -> int:
        return 0

    def cancel(self) -> bool:
        self.cancels += 1
        return True


class _Loop:
    """A loop whose clock reads ``now``; records what the deadline timer schedules."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.scheduled: list[tuple[str, float]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: object) -> object:
        self.scheduled.append(("at", when))
        return object()

    def call_soon(self, callback: object) -> object:
        self.scheduled.append(("soon", self.now))
        return object()


class _CoarseLoop(_Loop):
    """A loop that runs timers up to 0.25 s early, as asyncio does up to its resolution."""

    _clock_resolution = 0.25


def _fire_at(loop: _Loop, when: float) -> tuple[int, list[tuple[str, float]]]:
    """Fire a Deadlines timer on ``loop`` with one budget due at ``when``."""
    deadlines = Deadlines()
    task = _Task()
    budget = Budget(deadlines, when, task)  # type: ignore[arg-type]  # a stand-in task
    deadlines._loop = loop  # type: ignore[assignment]  # the stand-in loop of this test
    deadlines._heap.append((when, 1, budget))
    deadlines._live = 1
    deadlines._fire()
    return task.cancels, loop.scheduled


@pytest.mark.parametrize("now", [0.8, 0.75])
def test_the_timer_expires_a_budget_due_within_the_loops_clock_resolution(now: float) -> None:
    # asyncio runs a timer up to _clock_resolution early: a budget due by then has expired,
    # or the timer would be re-armed for the same moment over and over.
    assert _fire_at(_CoarseLoop(now), 1.0) == (1, [])


def test_the_timer_rearms_for_a_budget_not_yet_due_on_a_loop_without_a_resolution() -> None:
    assert _fire_at(_Loop(0.8), 1.0) == (0, [("at", 1.0)])
    assert _fire_at(_Loop(1.0), 1.0) == (1, [])
