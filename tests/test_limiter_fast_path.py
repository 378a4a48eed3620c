"""LocalLimiter's synchronous fast paths: try_acquire() and heard(), in virtual time."""

from __future__ import annotations

import asyncio

import pytest
from test_limits import VirtualClockLoop, run  # tests/ is on sys.path

from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import LocalLimiter, RateLimit


def _open(max_rate: float, period: float = 1.0) -> LocalLimiter:
    limiter = RateLimit(max_rate, period).open(key="k")
    assert isinstance(limiter, LocalLimiter)
    return limiter


def test_try_acquire_takes_a_free_slot_and_counts_it() -> None:
    async def main() -> None:
        limiter = _open(10)
        assert limiter.try_acquire() is True
        assert limiter.stats.acquired == 1
        # The next slot is an interval away: no waiting, just "not now".
        assert limiter.try_acquire() is False
        assert limiter.stats.acquired == 1
        await limiter.aclose()

    run(main)


def test_try_acquire_never_jumps_the_queue() -> None:
    async def main() -> None:
        limiter = _open(10)
        assert limiter.try_acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        assert limiter.stats.waiting == 1
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        loop.now += 10.0  # the slot is free now, but the waiter came first
        assert limiter.try_acquire() is False
        await waiter
        assert limiter.stats.acquired == 2
        await limiter.aclose()

    run(main)


def test_try_acquire_is_false_while_the_gate_is_closed() -> None:
    async def main() -> None:
        limiter = _open(1000)
        limiter.heard(429, 5.0)
        assert limiter.try_acquire() is False
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        loop.now += 5.0
        assert limiter.try_acquire() is True
        await limiter.aclose()

    run(main)


def test_a_closed_limiter_gives_no_fast_slot_and_acquire_says_why() -> None:
    async def main() -> None:
        limiter = _open(1000)
        await limiter.aclose()
        assert limiter.try_acquire() is False
        with pytest.raises(ClientStateError, match="the rate limiter is closed"):
            await limiter.acquire()

    run(main)


def test_another_loop_gets_no_fast_slot() -> None:
    limiter = run(lambda: _opened(1000))
    assert asyncio.run(_try(limiter)) is False
    assert limiter.stats.acquired == 0


async def _opened(max_rate: float) -> LocalLimiter:
    return _open(max_rate)


async def _try(limiter: LocalLimiter) -> bool:
    return limiter.try_acquire()


def test_heard_does_what_on_response_does() -> None:
    async def main() -> tuple[object, object]:
        sync, awaited = _open(1000), _open(1000)
        sync.heard(429, 2.0)
        sync.heard(200, None)
        await awaited.on_response(429, 2.0)
        await awaited.on_response(200, None)
        a, b = sync.stats, awaited.stats
        return (a.throttled, a.gate_closures, a.gate_remaining), (
            b.throttled,
            b.gate_closures,
            b.gate_remaining,
        )

    first, second = run(main)
    assert first == second == (1, 1, 2.0)
