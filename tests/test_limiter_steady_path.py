"""LocalLimiter's steady-state shortcuts match AdaptiveRate's rules step for step (issue 19).

While the gate never closed, ``heard()`` keeps the window of accepted times itself and
``try_acquire()`` uses an interval computed once. These tests drive a limiter and a reference
(``AdaptiveRate`` fed the same answers, the schedule computed by ``core.interval()``) with the
same seeded virtual times and compare their state after every step, before and after throttles.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses
from test_limits import VirtualClockLoop, run  # tests/ is on sys.path

from gtmhub_async import GtmhubClient
from gtmhub_async.adaptive import AdaptiveRate
from gtmhub_async.limits import LocalLimiter, RateLimit
from gtmhub_async.session import CONNECT_TIMEOUT
from gtmhub_async.transport import send_once

TOKEN = "secret-token-123"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
ANY = re.compile(r".*")
KPI = orjson.dumps({"id": KPI_ID, "name": "Revenue"})


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


#: Step -> (status, Retry-After): a backoff streak to reset, a 503 to count, a second backoff.
THROTTLES = {300: (429, None), 420: (503, 0.2), 500: (429, None)}


def _loop() -> VirtualClockLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    return loop


def test_heard_keeps_the_window_on_accepted_would_keep() -> None:
    async def main() -> None:
        limiter = RateLimit(50, 1.0).open(key="k")
        assert isinstance(limiter, LocalLimiter)
        loop = _loop()
        clock = _Clock()
        reference = AdaptiveRate(50, 1.0, clock=clock)
        rng = random.Random(19)
        for step in range(600):
            loop.now += rng.uniform(0.0, 0.02)
            clock.now = loop.now
            if step in THROTTLES:  # the shortcut must hand over to the rules for good
                status, retry_after = THROTTLES[step]
                limiter.heard(status, retry_after)
                reference.on_throttled(retry_after, status=status)
            else:
                limiter.heard(200, None)
                reference.on_accepted()
            # Private state on purpose: the window's exact content is what a throttle counts.
            assert list(limiter.core._accepted) == list(reference._accepted), step
            assert list(limiter.core._unavailable) == list(reference._unavailable), step
            assert limiter.core.gate_until == reference.gate_until
        assert limiter.core.decreases == reference.decreases == 2
        assert limiter.core.rate() == reference.rate()
        assert limiter.core.ceiling == reference.ceiling
        await limiter.aclose()

    run(main)


def test_grants_follow_core_interval_before_and_after_a_decrease() -> None:
    async def main() -> None:
        limiter = RateLimit(200, 1.0).open(key="k")
        assert isinstance(limiter, LocalLimiter)
        loop = _loop()
        rng = random.Random(7)
        expected = -float("inf")  # the reference schedule: _grant's rule, spelled out
        granted = 0
        for step in range(800):
            loop.now += rng.uniform(0.0, 0.01)
            if step == 400:
                for _ in range(150):
                    limiter.heard(200, None)
                limiter.heard(429, 0.01)  # lowers the rate: the interval changes over time
                assert limiter.core.decreases == 1
                continue
            now = loop.now
            free = now >= expected and now >= limiter.core.gate_until
            assert limiter.try_acquire(now if step % 2 else None) is free, step
            if free:
                granted += 1
                slot = max(expected, now - limiter.core.catch_up)
                expected = slot + limiter.core.interval(now)
            assert limiter._next_start == expected, step
        assert limiter.stats.acquired == granted
        await limiter.aclose()

    run(main)


def test_an_attempt_after_a_limiter_wait_gets_what_is_left_of_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connects: list[float | None] = []

    def recording_send_once(*args: Any, client_timeout: aiohttp.ClientTimeout, **kw: Any) -> Any:
        connects.append(client_timeout.connect)
        return send_once(*args, client_timeout=client_timeout, **kw)

    monkeypatch.setattr("gtmhub_async.session.send_once", recording_send_once)

    async def main() -> None:
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=200, body=KPI, repeat=True)
            # 0.2 per second: the second call waits 5.1 s for its slot, out of 12 s.
            async with GtmhubClient(
                TOKEN, ACCOUNT, base_url=BASE, rate_limit=RateLimit(0.2), timeout=12.0
            ) as c:
                await c.kpis.get(KPI_ID)
                await c.kpis.get(KPI_ID)

    run(main)
    assert connects[0] == CONNECT_TIMEOUT
    assert connects[1] == pytest.approx(12.0 - 5.1, abs=0.01)  # timers fire up to ms late
