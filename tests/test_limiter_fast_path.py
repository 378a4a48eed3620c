"""LocalLimiter's synchronous fast paths: try_acquire() and heard(), in virtual time."""

from __future__ import annotations

import asyncio
import re

import attrs
import orjson
import pytest
from aioresponses import aioresponses
from test_limits import VirtualClockLoop, run  # tests/ is on sys.path

from gtmhub_async import GtmhubClient
from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import Limiter, LimiterFactory, LocalLimiter, RateLimit

TOKEN = "secret-token-123"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
ANY = re.compile(r".*")
KPI = orjson.dumps({"id": KPI_ID, "name": "Revenue"})


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


class _CountsAcquires(LocalLimiter):
    """A subclass that overrides acquire(): it must see every request."""

    __slots__ = ("acquires",)

    def __init__(self, config: RateLimit, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(config, loop)
        self.acquires = 0

    async def acquire(self) -> None:
        self.acquires += 1
        await super().acquire()


class _CountsAnswers(LocalLimiter):
    """A subclass that overrides on_response(): it must hear every answer."""

    __slots__ = ("answers",)

    def __init__(self, config: RateLimit, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(config, loop)
        self.answers: list[int] = []

    async def on_response(self, status: int, retry_after: float | None) -> None:
        self.answers.append(status)
        await super().on_response(status, retry_after)


@attrs.frozen
class _Opens:
    cls: type[LocalLimiter]

    def open(self, *, key: str) -> Limiter:
        return self.cls(RateLimit(1000), asyncio.get_running_loop())


async def _three_gets(rate_limit: LimiterFactory) -> Limiter | None:
    with aioresponses() as mocked:
        mocked.get(ANY, body=KPI, repeat=True)
        async with GtmhubClient(TOKEN, ACCOUNT, base_url=BASE, rate_limit=rate_limit) as c:
            for _ in range(3):
                assert (await c.kpis.get(KPI_ID)).id == KPI_ID
            return c.limiter


async def test_a_subclass_that_overrides_acquire_sees_every_request() -> None:
    limiter = await _three_gets(_Opens(_CountsAcquires))
    assert isinstance(limiter, _CountsAcquires)
    assert limiter.acquires == 3


async def test_a_subclass_that_overrides_on_response_hears_every_answer() -> None:
    limiter = await _three_gets(_Opens(_CountsAnswers))
    assert isinstance(limiter, _CountsAnswers)
    assert limiter.answers == [200, 200, 200]


async def test_the_fast_paths_count_every_request() -> None:
    limiter = await _three_gets(RateLimit(1000))
    assert isinstance(limiter, LocalLimiter)
    assert (limiter.stats.acquired, limiter.stats.waits) == (3, 0)
    assert limiter.core.accepted_in_window() == 3
