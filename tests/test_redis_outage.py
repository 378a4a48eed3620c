"""redis_limits.Outage: a worker's switches between Redis and its local limit, in virtual time.

Outage reads only the configuration and the loop's clock, so these tests need no
redis-server: the real-server behaviour is in test_redis_limits.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gtmhub_async import RateLimiterUnavailableError
from gtmhub_async.redis_limits import RedisRateLimit
from gtmhub_async.redis_limits.config import RedisUrl
from gtmhub_async.redis_limits.outage import Outage
from gtmhub_async.redis_limits.script import Unavailable
from gtmhub_async.testing.simulator import run_virtual

KEY = "gtmhub_async:rate:{k}"


def _outage(*, span: float = 0.5, **options: Any) -> Outage:
    config = RedisRateLimit(RedisUrl("redis://127.0.0.1:1"), **{"max_rate": 4.0, **options})
    return Outage(config, redis_key=KEY, open_key="k", loop=asyncio.get_running_loop(), span=span)


def _run(body: Callable[[Outage], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        outage = _outage(**options)
        try:
            return await body(outage)
        finally:
            await outage.aclose()

    return run_virtual(main)


def _unavailable() -> Unavailable:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except OSError as cause:
            raise Unavailable("error: ConnectionRefusedError: refused") from cause
    except Unavailable as exc:
        return exc


async def _elapsed(step: Awaitable[object]) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(3600):  # virtual: a wait that never ends fails, not hangs
        await step
    return loop.time() - start


def test_a_new_outage_is_on_redis_with_zero_counters_and_no_wait() -> None:
    async def body(outage: Outage) -> None:
        assert outage.local is False
        assert (outage.fallbacks, outage.acquired_locally) == (0, 0)
        assert outage.stays_local(asyncio.get_running_loop().time()) is False
        # Nothing ran locally yet: neither a quiet spell nor a rejoin waits.
        assert await _elapsed(outage.quiet_before_rejoin()) == 0.0
        assert await _elapsed(outage.acquire_local()) == 0.0
        assert outage.acquired_locally == 1

    _run(body)


def test_raise_mode_fails_with_the_key_and_the_cause() -> None:
    async def body(outage: Outage) -> None:
        exc = _unavailable()
        with pytest.raises(RateLimiterUnavailableError) as caught:
            outage.fail(exc)
        assert str(caught.value) == (
            f"the shared rate limit in Redis ({KEY}) is unavailable: "
            "error: ConnectionRefusedError: refused. No request was sent; "
            "on_redis_error='local' would fall back to a local limit instead"
        )
        assert caught.value.__cause__ is exc.__cause__
        assert outage.local is False
        assert outage.fallbacks == 0

    _run(body)


def test_local_mode_warns_once_per_limiter_and_counts_each_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(outage: Outage) -> None:
        with caplog.at_level(logging.WARNING, logger="gtmhub_async.redis_limits"):
            outage.fail(_unavailable())
            assert outage.local is True
            outage.fail(_unavailable())  # a failed probe: the same outage
            assert outage.fallbacks == 1
            outage.rejoined()
            assert outage.local is False
            outage.fail(_unavailable())
            assert outage.fallbacks == 2

    _run(body, on_redis_error="local", expected_workers=4, time_period=30.0)
    assert [r.getMessage() for r in caplog.records] == [
        f"the shared rate limit in Redis ({KEY}) is unavailable "
        "(error: ConnectionRefusedError: refused): falling back to a local limit of "
        "1 requests per 30 s until it answers again",
        f"Redis answers again: the shared rate limit {KEY} is back",
    ]


def test_probes_come_every_probe_interval_while_local() -> None:
    async def body(outage: Outage) -> list[bool]:
        now = asyncio.get_running_loop().time()
        outage.fail(_unavailable())
        seen = [outage.stays_local(now + t) for t in (0.0, 2.999, 3.0)]  # 3.0: a probe
        # The probe set the next one 3 s later.
        seen += [outage.stays_local(now + t) for t in (3.001, 5.999, 6.0)]
        return seen

    assert _run(body, on_redis_error="local", probe_interval=3.0) == [
        True,
        True,
        False,
        True,
        True,
        False,
    ]


def test_the_first_local_start_waits_out_the_quiet_spell() -> None:
    async def body(outage: Outage) -> list[float]:
        outage.fail(_unavailable())
        return [await _elapsed(outage.acquire_local()) for _ in range(2)]

    # span 0.5 (under a second); 4 per second locally, paced: the second start 0.25 s later.
    assert _run(body, on_redis_error="local", span=0.5) == pytest.approx([0.5, 0.25], abs=1e-5)


def test_the_local_limit_is_max_rate_over_expected_workers_per_time_period() -> None:
    async def body(outage: Outage) -> list[float]:
        waits = [await _elapsed(outage.acquire_local()) for _ in range(3)]
        assert outage.acquired_locally == 3
        return waits

    # 4 per 30 s over 2 workers: 2 per 30 s, paced: 15 s apart (plus the slack's share).
    first, second, third = _run(body, time_period=30.0, expected_workers=2)
    assert first == 0.0
    assert 15.0 <= second <= 15.5
    assert 15.0 <= third <= 15.5


def test_rejoining_waits_a_span_after_the_last_local_start() -> None:
    async def body(outage: Outage) -> float:
        await outage.acquire_local()
        await asyncio.sleep(0.2)
        return await _elapsed(outage.quiet_before_rejoin())

    assert _run(body, span=0.75) == pytest.approx(0.55)


def test_answers_reach_the_local_limit_with_their_status_and_retry_after() -> None:
    async def body(outage: Outage) -> float:
        await outage.on_response(503, 5.0)  # no local limit yet: nothing to tell
        await outage.acquire_local()
        await outage.on_response(503, 5.0)  # a throttle: the local gate closes 5 s
        return await _elapsed(outage.acquire_local())

    assert _run(body) == pytest.approx(5.0, abs=0.1)
