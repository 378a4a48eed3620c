"""Tests for gtmhub_async.limits, in virtual time: no test sleeps for real."""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
from typing import Any

import attrs
import pytest
from aiolimiter import AsyncLimiter
from hypothesis import given, settings
from hypothesis import strategies as st

from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import (
    DEFAULT_RATE_LIMIT,
    AdaptiveRate,
    Limiter,
    LimiterFactory,
    LocalLimiter,
    RateLimit,
    is_throttle,
)
from gtmhub_async.testing.simulator import VirtualClockLoop
from gtmhub_async.testing.simulator import run_virtual as run


def max_in_window(starts: list[float], period: float) -> int:
    """Return the most starts in any closed window [t, t + period]."""
    starts = sorted(starts)
    return max(
        (bisect.bisect_right(starts, s + period) - i for i, s in enumerate(starts)), default=0
    )


def open_local(rate: RateLimit) -> LocalLimiter:
    limiter = rate.open(key="https://app.gtmhub.com|acct")
    assert isinstance(limiter, LocalLimiter)
    return limiter


async def saturate(limiter: Limiter, workers: int, until: float) -> list[float]:
    """Acquire from ``workers`` coroutines until loop time ``until``; return start times."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def worker() -> None:
        while True:
            await limiter.acquire()
            if loop.time() >= until:
                return
            starts.append(loop.time())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return starts


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"max_rate": "10"}, TypeError, "max_rate must be a number, got str"),
        ({"max_rate": True}, TypeError, "max_rate must be a number, got bool"),
        ({"max_rate": None}, TypeError, "max_rate must be a number, got NoneType"),
        ({"max_rate": 0}, ValueError, "max_rate must be positive, got 0"),
        ({"max_rate": -5.0}, ValueError, "max_rate must be positive, got -5.0"),
        ({"max_rate": math.nan}, ValueError, "max_rate must be finite, got nan"),
        ({"max_rate": math.inf}, ValueError, "max_rate must be finite, got inf"),
        ({"max_rate": 5, "time_period": "1"}, TypeError, "time_period must be a number, got str"),
        ({"max_rate": 5, "time_period": 0.0}, ValueError, "time_period must be positive, got 0.0"),
        ({"max_rate": 5, "time_period": -1}, ValueError, "time_period must be positive, got -1"),
    ],
)
def test_rate_limit_validates(kwargs: dict[str, Any], exc: type[Exception], message: str) -> None:
    with pytest.raises(exc) as info:
        RateLimit(**kwargs)
    assert str(info.value) == message


def test_default_rate_limit_is_a_factory() -> None:
    assert RateLimit(10, 1.0) == DEFAULT_RATE_LIMIT
    assert isinstance(DEFAULT_RATE_LIMIT, LimiterFactory)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DEFAULT_RATE_LIMIT.max_rate = 20  # type: ignore[misc]


def test_open_needs_a_running_loop_and_a_str_key() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        RateLimit(5).open(key="k")

    async def main() -> None:
        with pytest.raises(TypeError, match="key must be a str, got int"):
            RateLimit(5).open(key=3)  # type: ignore[arg-type]
        limiter = RateLimit(5).open(key="k")
        assert isinstance(limiter, Limiter)
        await limiter.aclose()

    run(main)


def test_adaptive_rate_validates() -> None:
    with pytest.raises(ValueError, match="time_period must be positive, got 0"):
        AdaptiveRate(5, 0, clock=lambda: 0.0)


def test_is_throttle() -> None:
    assert is_throttle(429, None)
    assert is_throttle(429, 2.0)
    assert is_throttle(503, 1.0)
    assert not is_throttle(503, None)
    assert not is_throttle(500, 1.0)
    assert not is_throttle(200, None)


# --- the window guarantee ----------------------------------------------------------


def test_bare_aiolimiter_bursts_about_twice_max_rate() -> None:
    """Why the limiter does not use AsyncLimiter(max_rate, period) as is."""

    async def main() -> int:
        bucket = AsyncLimiter(10, 1.0)
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def worker() -> None:
            for _ in range(5):
                await bucket.acquire()
                starts.append(loop.time())

        await asyncio.gather(*(worker() for _ in range(10)))
        return max_in_window(starts, 1.0)

    assert run(main) >= 19


@pytest.mark.parametrize(("max_rate", "period"), [(10, 1.0), (1, 1.0), (100, 1.0), (30, 60.0)])
def test_no_more_than_max_rate_in_any_window_at_start_up(max_rate: int, period: float) -> None:
    async def main() -> list[float]:
        limiter = open_local(RateLimit(max_rate, period))
        loop = asyncio.get_running_loop()
        starts = await saturate(limiter, 4 * max_rate, loop.time() + 5 * period)
        await limiter.aclose()
        return starts

    starts = run(main)
    assert 0.97 * max_rate <= max_in_window(starts, period) <= max_rate
    # The first period is the one a bare leaky bucket gets wrong.
    assert sum(1 for s in starts if s <= starts[0] + period) <= max_rate


def test_no_burst_after_an_idle_spell() -> None:
    async def main() -> list[float]:
        limiter = open_local(RateLimit(20))
        loop = asyncio.get_running_loop()
        starts = await saturate(limiter, 50, loop.time() + 3)
        await asyncio.sleep(7.3)  # idle: a bucket with burst credit would refill here
        starts += await saturate(limiter, 50, loop.time() + 3)
        await asyncio.sleep(0.51)
        starts += await saturate(limiter, 50, loop.time() + 3)
        return starts

    assert max_in_window(run(main), 1.0) <= 20


def test_a_stalled_loop_does_not_turn_into_a_burst() -> None:
    async def main() -> list[float]:
        limiter = open_local(RateLimit(50))
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        end = loop.time() + 20

        async def staller() -> None:
            rng = random.Random(7)
            while loop.time() < end:
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                loop.now += rng.choice([0.0005, 0.003, 0.2])  # blocking code in the loop

        stall = asyncio.create_task(staller())
        starts = await saturate(limiter, 20, end)
        await stall
        return starts

    starts = run(main)
    # Stalls are made up for by at most catch_up (5 ms): never bunched into a burst.
    assert max_in_window(starts, 1.0) <= 50


@settings(max_examples=40, deadline=None)
@given(
    max_rate=st.integers(min_value=1, max_value=200),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=300),
)
def test_window_guarantee_under_any_arrival_pattern(max_rate: int, gaps: list[float]) -> None:
    async def main() -> list[float]:
        limiter = open_local(RateLimit(max_rate))
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            starts.append(loop.time())

        tasks = []
        for gap in gaps:
            await asyncio.sleep(gap)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        return starts

    assert max_in_window(run(main), 1.0) <= max_rate


@pytest.mark.parametrize(("max_rate", "period"), [(1, 1.0), (10, 1.0), (97, 1.0), (500, 1.0)])
def test_utilisation_at_least_97_percent(max_rate: int, period: float) -> None:
    duration = 120 * period

    async def main() -> list[float]:
        limiter = open_local(RateLimit(max_rate, period))
        loop = asyncio.get_running_loop()
        return await saturate(limiter, 16, loop.time() + duration)

    achieved = len(run(main)) / (duration / period)
    assert achieved >= 0.97 * max_rate
    assert achieved <= max_rate


def test_non_integer_rate_stays_under_its_ceiling() -> None:
    async def main() -> list[float]:
        limiter = open_local(RateLimit(2.5))
        loop = asyncio.get_running_loop()
        return await saturate(limiter, 8, loop.time() + 100)

    starts = run(main)
    assert max_in_window(starts, 1.0) <= 3
    assert 0.97 * 250 <= len(starts) <= 250


# --- fairness and cancellation ------------------------------------------------------


def test_waiters_are_served_first_in_first_out() -> None:
    async def main() -> list[int]:
        limiter = open_local(RateLimit(5))
        order: list[int] = []

        async def one(i: int) -> None:
            await limiter.acquire()
            order.append(i)

        tasks = []
        for i in range(30):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)  # each task reaches acquire() before the next starts
        await asyncio.gather(*tasks)
        return order

    assert run(main) == list(range(30))


def test_cancelled_waiter_gives_up_its_place() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(1))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        started: dict[str, float] = {}

        async def one(name: str) -> None:
            await limiter.acquire()
            started[name] = loop.time() - t0

        tasks = {name: asyncio.create_task(one(name)) for name in "abcd"}
        await asyncio.sleep(0.5)
        tasks["b"].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # c takes b's slot, d takes c's: the pacing is 1.02 s a start, and the
        # schedule may run 5 ms behind the first start (catch_up).
        assert started["a"] == pytest.approx(0, abs=1e-3)
        assert started["c"] == pytest.approx(1.015, abs=1e-3)
        assert started["d"] == pytest.approx(2.035, abs=1e-3)
        assert "b" not in started
        assert not limiter._waiters  # no state left behind
        assert limiter._timer is None
        assert limiter.stats.acquired == 3
        assert limiter.stats.waiting == 0

    run(main)


def test_waiter_cancelled_right_after_its_grant_hands_the_slot_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(1))
        loop = asyncio.get_running_loop()
        await limiter.acquire()
        t0 = loop.time()
        granted = asyncio.create_task(limiter.acquire())
        later: list[float] = []

        async def next_one() -> None:
            await limiter.acquire()
            later.append(loop.time() - t0)

        nxt = asyncio.create_task(next_one())
        await asyncio.sleep(0)
        grant = LocalLimiter._grant

        def grant_then_cancel(self: LocalLimiter, now: float) -> None:
            # Cancel the waiter after its future resolved, before its task resumes.
            grant(self, now)
            granted.cancel()
            monkeypatch.setattr(LocalLimiter, "_grant", grant)

        monkeypatch.setattr(LocalLimiter, "_grant", grant_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await granted
        await nxt
        # The slot at 1.015 went to the next waiter instead of being wasted.
        assert later == [pytest.approx(1.015, abs=1e-3)]
        assert limiter.stats.acquired == 2
        assert not limiter._waiters

    run(main)


def test_a_cancelled_waiter_hands_back_nothing_once_a_later_fast_path_start_was_granted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests must never start in one slot."""

    async def main() -> None:
        limiter = open_local(RateLimit(1))
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        await limiter.acquire()
        granted = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        starts: list[float] = []
        arm = LocalLimiter._arm

        def grant_then_fast_path_then_cancel(self: LocalLimiter) -> None:
            arm(self)  # the end of the wake-up that granted `granted` its slot
            monkeypatch.setattr(LocalLimiter, "_arm", arm)
            loop.now += 3.0  # the loop stalls after the grant: the schedule lags
            fast = limiter.acquire()
            with pytest.raises(StopIteration):
                fast.send(None)  # granted at once, without waiting
            starts.append(loop.time())
            granted.cancel()

        monkeypatch.setattr(LocalLimiter, "_arm", grant_then_fast_path_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await granted
        await limiter.acquire()
        starts.append(loop.time())
        assert starts[1] - starts[0] >= 1.02 - limiter.core.catch_up - 1e-9
        assert limiter.stats.acquired == 4  # the cancelled waiter's slot stays spent

    run(main)


def test_wait_timeout_leaves_nothing_behind() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(1))
        await limiter.acquire()
        for _ in range(5):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await limiter.acquire()
        assert not limiter._waiters
        assert limiter._timer is None

    run(main)


# --- closing and loops ---------------------------------------------------------------


def test_aclose_fails_waiters_and_later_acquires() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(1))
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        await limiter.aclose()
        with pytest.raises(ClientStateError, match=r"^the rate limiter was closed$"):
            await waiter
        with pytest.raises(ClientStateError, match=r"^the rate limiter is closed$"):
            await limiter.acquire()
        await limiter.aclose()  # idempotent

    run(main)


def test_acquire_on_another_loop_is_refused() -> None:
    async def opener() -> LocalLimiter:
        return open_local(RateLimit(1))

    limiter = run(opener)

    async def main() -> None:
        with pytest.raises(
            ClientStateError, match=r"^the rate limiter was opened on another event loop$"
        ):
            await limiter.acquire()

    run(main)


# --- the 429 gate -----------------------------------------------------------------


def test_gate_is_shared_by_fifty_coroutines() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(100))
        loop = asyncio.get_running_loop()
        starts: list[float] = []
        t_end = loop.time() + 6.0

        async def worker() -> None:
            while loop.time() < t_end:
                await limiter.acquire()
                starts.append(loop.time())
                await asyncio.sleep(0.05)  # the request in flight
                await limiter.on_response(200, None)

        tasks = [asyncio.create_task(worker()) for _ in range(50)]
        await asyncio.sleep(2.0)
        # 50 requests in flight all come back 429 within a few ms.
        closed_at = loop.time()
        for i in range(50):
            await limiter.on_response(429, 3.0 if i == 0 else 2.5)
            await asyncio.sleep(0.0001)
        await asyncio.gather(*tasks)
        reopened = closed_at + 3.0
        during = [s for s in starts if closed_at < s < reopened - 1e-9]
        assert during == []
        assert any(abs(s - reopened) < 1e-3 for s in starts)
        stats = limiter.stats
        assert stats.gate_closures == 1  # one gate, not 50
        assert stats.decreases == 1
        assert stats.throttled == 50
        assert stats.waits >= 50

    run(main)


def test_gate_extends_to_the_latest_deadline() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(10))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await limiter.on_response(429, 2.0)
        await asyncio.sleep(0.5)
        await limiter.on_response(429, 2.0)  # ends at 2.5
        await limiter.on_response(429, 1.0)  # earlier: ignored
        await limiter.acquire()
        assert loop.time() - t0 == pytest.approx(2.5, abs=1e-3)
        assert limiter.stats.gate_closures == 1

    run(main)


def test_backoff_doubles_without_retry_after_and_resets_on_success() -> None:
    now = [0.0]
    core = AdaptiveRate(10, clock=lambda: now[0])
    gates = []
    for _ in range(8):
        core.on_throttled(None)
        gates.append(core.gate_until - now[0])
        core.on_throttled(None)  # a second request already in flight: no doubling
        assert core.gate_until - now[0] == gates[-1]
        now[0] = core.gate_until
    assert gates == [1, 2, 4, 8, 16, 32, 32, 32]
    core.on_accepted()
    core.on_throttled(None)
    assert core.gate_until - now[0] == 1


def test_retry_after_is_capped_and_sanitised() -> None:
    now = [0.0]
    core = AdaptiveRate(10, clock=lambda: now[0])
    core.on_throttled(3600.0)
    assert core.gate_until == 60.0
    now[0] = 100.0
    core.on_throttled(-4.0)
    assert core.gate_until == 100.0
    core.on_throttled(math.nan)
    assert core.gate_until == 100.0


def test_503_with_retry_after_closes_the_gate_but_not_without() -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(10))
        await limiter.on_response(503, None)
        await limiter.on_response(500, None)
        assert limiter.stats.gate_closures == 0
        await limiter.on_response(503, 1.0)
        assert limiter.stats.gate_closures == 1
        assert limiter.stats.gate_remaining == pytest.approx(1.0)

    run(main)


def test_gate_closure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        limiter = open_local(RateLimit(10))
        await limiter.on_response(429, 1.0)

    with caplog.at_level(logging.DEBUG, logger="gtmhub_async.limits"):
        run(main)
    messages = [r.getMessage() for r in caplog.records if r.name == "gtmhub_async.limits"]
    assert any("gate closed for 1 s after a 429" in m for m in messages)
    assert any("rate lowered from 10 to 7" in m for m in messages)


# --- adapting the rate -------------------------------------------------------------


def test_rate_never_drops_below_the_floor() -> None:
    now = [0.0]
    core = AdaptiveRate(10, clock=lambda: now[0])
    for _ in range(30):
        core.on_throttled(None)
        now[0] = core.gate_until
    assert core.rate() == core.floor == 1.0
