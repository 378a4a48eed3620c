"""deadline.Deadlines: asyncio.timeout_at's rules with one timer per client, in virtual time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gtmhub_async.deadline import Deadlines
from gtmhub_async.testing.simulator import VirtualClockLoop
from gtmhub_async.testing.simulator import run_virtual as run


def _loop() -> VirtualClockLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    return loop


def _timers(loop: asyncio.AbstractEventLoop) -> int:
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]  # BaseEventLoop's timer heap
    return sum(1 for h in scheduled if not h.cancelled())


async def _sleep_within(deadlines: Deadlines, when: float, seconds: float) -> str:
    with deadlines.at(when):
        await asyncio.sleep(seconds)
    return "done"


def test_a_block_that_outlives_its_deadline_raises_timeout_error_on_time() -> None:
    async def main() -> float:
        loop = _loop()
        deadlines = Deadlines()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await _sleep_within(deadlines, start + 2.0, 10.0)
        return loop.time() - start

    assert run(main) == pytest.approx(2.0, abs=1e-3)


def test_a_block_that_ends_in_time_returns_and_leaves_no_budget_open() -> None:
    async def main() -> tuple[str, int, int]:
        deadlines = Deadlines()
        result = await _sleep_within(deadlines, _loop().time() + 5.0, 1.0)
        return result, deadlines.open_budgets, asyncio.current_task().cancelling()  # type: ignore[union-attr]  # run() gives a task

    assert run(main) == ("done", 0, 0)


def test_many_concurrent_budgets_share_one_timer() -> None:
    async def main() -> tuple[int, list[str]]:
        loop = _loop()
        deadlines = Deadlines()
        before = _timers(loop)
        now = loop.time()
        tasks = [
            asyncio.ensure_future(_sleep_within(deadlines, now + 5.0 + i, 1.0)) for i in range(50)
        ]
        await asyncio.sleep(0)
        # 50 sleeps have their own timers; the 50 deadlines have one between them.
        during = _timers(loop) - before - 50
        return during, await asyncio.gather(*tasks)

    during, results = run(main)
    assert during == 1
    assert results == ["done"] * 50


def test_an_earlier_deadline_entered_later_still_fires_on_time() -> None:
    async def main() -> tuple[float, str]:
        loop = _loop()
        deadlines = Deadlines()
        start = loop.time()
        late = asyncio.ensure_future(_sleep_within(deadlines, start + 100.0, 3.0))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await _sleep_within(deadlines, start + 1.0, 50.0)
        return loop.time() - start, await late

    elapsed, late = run(main)
    assert elapsed == pytest.approx(1.0, abs=1e-3)
    assert late == "done"


def test_a_deadline_already_past_cancels_at_the_next_await() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        with pytest.raises(TimeoutError):
            await _sleep_within(deadlines, _loop().time() - 1.0, 1.0)

    run(main)


def test_a_cancel_from_elsewhere_stays_a_cancelled_error() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        task = asyncio.ensure_future(_sleep_within(deadlines, _loop().time() + 5.0, 10.0))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert deadlines.open_budgets == 0

    run(main)


def test_a_cancel_from_elsewhere_at_the_same_time_as_the_deadline_wins() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        loop = _loop()
        when = loop.time() + 2.0
        task = asyncio.ensure_future(_sleep_within(deadlines, when, 10.0))
        loop.call_at(when, task.cancel)  # a second cancel: as asyncio.Timeout, not a timeout
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)


def test_a_task_that_swallows_the_cancel_finishes_normally() -> None:
    async def main() -> str:
        deadlines = Deadlines()
        with deadlines.at(_loop().time() + 1.0), contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5.0)
        return "swallowed"

    assert run(main) == "swallowed"


def test_an_inner_deadline_fires_inside_an_outer_one() -> None:
    async def main() -> str:
        deadlines = Deadlines()
        now = _loop().time()
        with deadlines.at(now + 10.0):
            with pytest.raises(TimeoutError):
                await _sleep_within(deadlines, now + 1.0, 5.0)
            await asyncio.sleep(1.0)  # the outer budget is intact
        return "outer done"

    assert run(main) == "outer done"


def test_finished_budgets_do_not_pile_up_behind_a_straggler() -> None:
    async def main() -> int:
        deadlines = Deadlines()
        now = _loop().time()
        straggler = asyncio.ensure_future(_sleep_within(deadlines, now + 1000.0, 500.0))
        await asyncio.sleep(0)
        for i in range(2000):
            await _sleep_within(deadlines, now + 1000.0 + i, 0.0)
        size = len(deadlines._heap)
        await straggler
        return size

    assert run(main) <= 2 * 2 + 64


def test_outside_a_task_it_is_refused() -> None:
    async def main() -> BaseException | None:
        caught: list[BaseException] = []

        def callback() -> None:  # runs in the loop, but in no task
            try:
                Deadlines().at(0.0)
            except RuntimeError as exc:
                caught.append(exc)

        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0)
        return caught[0] if caught else None

    error = run(main)
    assert isinstance(error, RuntimeError)
    assert str(error) == "Timeout should be used inside a task"


def test_close_drops_the_timer_once_no_budget_is_open_and_keeps_a_running_ones() -> None:
    async def main() -> tuple[int, int, str, float]:
        loop = _loop()
        deadlines = Deadlines()
        await _sleep_within(deadlines, loop.time() + 30.0, 1.0)
        left_behind = _timers(loop)  # the finished 30 s budget's timer still stands
        deadlines.close()
        after_close = _timers(loop)
        start = loop.time()
        running = asyncio.create_task(_sleep_within(deadlines, start + 5.0, 60.0))
        await asyncio.sleep(0)
        deadlines.close()  # a budget is open: its deadline must still fire
        try:
            outcome = await running
        except TimeoutError:
            outcome = "timed out"
        return left_behind, after_close, outcome, loop.time() - start

    left_behind, after_close, outcome, elapsed = run(main)
    assert (left_behind, after_close, outcome) == (1, 0, "timed out")
    assert elapsed == pytest.approx(5.0, abs=1e-5)  # the virtual clock's microsecond steps


async def test_a_closed_client_leaves_no_deadline_timer_behind() -> None:
    from gtmhub_async.testing import FakeGtmhub

    async with FakeGtmhub() as fake:
        (kpi,) = fake.add_kpis(1)
        async with fake.client(rate_limit=None) as client:
            await client.kpis.get(kpi["id"])
        loop = asyncio.get_running_loop()
        scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]  # BaseEventLoop's timer heap
        fires = [
            h
            for h in scheduled
            if not h.cancelled() and type(getattr(h._callback, "__self__", None)) is Deadlines
        ]
        assert fires == []
