"""Rules of gtmhub_async.deadline that mutation testing found unchecked (see tests/MUTATION.md)."""

from __future__ import annotations

import asyncio

import pytest
from test_limits import VirtualClockLoop, run  # tests/ is on sys.path

from gtmhub_async.deadline import Deadlines


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
