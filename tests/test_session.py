"""Retries, the time budget and write safety, one rule per test, against aioresponses."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from datetime import date
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import CallbackResult, aioresponses

from gtmhub_async import (
    DeadlineExceededError,
    GtmhubClient,
    KpiSnapshotRequest,
    RateLimit,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.limits import LimiterStats, LocalLimiter
from gtmhub_async.retry import RetryQuota
from gtmhub_async.testing.simulator import run_virtual as run

TOKEN = "secret-token-123"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
ANY = re.compile(r".*")
KPI = orjson.dumps({"id": KPI_ID, "name": "Revenue"})
SNAPSHOT = orjson.dumps({"id": KPI_ID, "kpiId": KPI_ID, "group": "2026-11-01", "value": 1.0})
FAST = RetryPolicy(backoff_base=0.0)


def client(**kwargs: Any) -> GtmhubClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("seed", 7)
    return GtmhubClient(TOKEN, ACCOUNT, base_url=BASE, **kwargs)


def snapshot() -> KpiSnapshotRequest:
    return KpiSnapshotRequest(group=date(2026, 11, 1), value=1.0)


def sent(mocked: aioresponses) -> int:
    return sum(len(calls) for calls in mocked.requests.values())


def connection_refused() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("api.example.com", 443, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


async def test_get_is_retried_through_503s() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=503)
        mocked.add(ANY, "GET", status=502)
        mocked.add(ANY, "GET", status=200, body=KPI)
        async with client() as c:
            kpi = await c.kpis.get(KPI_ID)
            assert kpi.name == "Revenue"
            assert (c.stats.attempts, c.stats.retries, c.stats.server_errors) == (3, 2, 2)
    assert sent(mocked) == 3


async def test_get_gives_up_after_max_attempts_with_the_last_error() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=503, repeat=True, body=b'{"message": "down"}')
        async with client(retry=RetryPolicy(max_attempts=3, backoff_base=0.0)) as c:
            with pytest.raises(ServerError, match=r"HTTP 503 .*: down") as info:
                await c.kpis.get(KPI_ID)
    assert info.value.attempts == 3
    assert sent(mocked) == 3


async def test_get_is_retried_after_a_reset() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", exception=aiohttp.ServerDisconnectedError())
        mocked.add(ANY, "GET", status=200, body=KPI)
        async with client() as c:
            assert (await c.kpis.get(KPI_ID)).id == KPI_ID
    assert sent(mocked) == 2


async def test_transport_error_after_all_attempts() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", exception=aiohttp.ServerDisconnectedError(), repeat=True)
        async with client(retry=RetryPolicy(max_attempts=2, backoff_base=0.0)) as c:
            with pytest.raises(TransportError, match="failed after 2 attempts") as info:
                await c.kpis.get(KPI_ID)
    assert info.value.attempts == 2
    assert type(info.value) is TransportError


async def test_post_is_not_resent_after_a_reset_that_follows_the_send() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", exception=aiohttp.ServerDisconnectedError())
        mocked.add(ANY, "POST", status=201, body=SNAPSHOT)
        async with client() as c:
            with pytest.raises(UnknownOutcomeError, match="may have been applied") as info:
                await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert sent(mocked) == 1
    assert info.value.attempts == 1
    assert info.value.request.method == "POST"
    assert orjson.loads(info.value.request.body) == {"group": "2026-11-01", "value": 1.0}


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_is_not_resent_after_a_5xx(status: int) -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", status=status, body=b"<html>oops</html>")
        async with client() as c:
            with pytest.raises(UnknownOutcomeError, match=f"the server answered {status}") as info:
                await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert sent(mocked) == 1
    assert isinstance(info.value.response_error, ServerError)
    assert info.value.response_error.status == status


async def test_post_is_resent_after_connection_refused() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", exception=connection_refused())
        mocked.add(ANY, "POST", status=201, body=SNAPSHOT)
        async with client() as c:
            result = await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert result.value == 1.0
    assert sent(mocked) == 2


async def test_post_is_resent_after_a_connect_timeout() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", exception=aiohttp.ConnectionTimeoutError())
        mocked.add(ANY, "POST", status=201, body=SNAPSHOT)
        async with client() as c:
            assert (await c.kpis.create_snapshot(KPI_ID, snapshot())).value == 1.0
    assert sent(mocked) == 2


async def test_post_is_resent_after_a_429_and_a_503_with_retry_after() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", status=429, headers={"Retry-After": "0"})
        mocked.add(ANY, "POST", status=503, headers={"Retry-After": "0"})
        mocked.add(ANY, "POST", status=201, body=SNAPSHOT)
        async with client() as c:
            assert (await c.kpis.create_snapshot(KPI_ID, snapshot())).value == 1.0
            assert c.stats.throttled == 1
    assert sent(mocked) == 3


async def test_post_is_not_resent_after_a_503_without_retry_after() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", status=503)
        async with client() as c:
            with pytest.raises(UnknownOutcomeError, match="answered 503"):
                await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert sent(mocked) == 1


async def test_retry_after_longer_than_the_cap_raises_at_once() -> None:
    policy = RetryPolicy(max_retry_after=5.0, backoff_base=0.0)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": "30"})
        async with client(retry=policy) as c:
            with pytest.raises(RateLimitError, match="Retry-After 30 s is longer than the 5 s"):
                await c.kpis.get(KPI_ID)
    assert sent(mocked) == 1


async def test_retry_after_longer_than_the_deadline_raises_at_once() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": "20"})
        async with client(timeout=10.0) as c:
            with pytest.raises(RateLimitError) as info:
                await c.kpis.get(KPI_ID)
    assert info.value.retry_after == 20.0
    assert info.value.attempts == 1
    assert "this call may still wait" in str(info.value)


async def test_retry_after_is_waited_out_without_a_limiter(monkeypatch: Any) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("gtmhub_async.session.asyncio.sleep", fake_sleep)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": "3"})
        mocked.add(ANY, "GET", status=200, body=KPI)
        async with client() as c:
            await c.kpis.get(KPI_ID)
    assert slept == [3.0]


async def test_backoff_is_full_jitter_and_capped(monkeypatch: Any) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("gtmhub_async.session.asyncio.sleep", fake_sleep)
    policy = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_max=3.0)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=500, repeat=True)
        async with client(retry=policy) as c:
            with pytest.raises(ServerError):
                await c.kpis.get(KPI_ID)
    # Full jitter: uniform(0, ceiling), one draw per retry from the client's seeded RNG.
    rng = random.Random(7)
    assert slept == [cap * rng.random() for cap in (1.0, 2.0, 3.0, 3.0, 3.0)]


async def test_the_time_budget_covers_the_whole_call() -> None:
    gate = asyncio.Event()

    async def stall(url: Any, **kwargs: Any) -> CallbackResult:
        await gate.wait()
        return CallbackResult(status=200, body=KPI)

    with aioresponses() as mocked:
        mocked.add(ANY, "GET", callback=stall)
        async with client(timeout=30.0) as c:
            with pytest.raises(DeadlineExceededError, match=r"time budget of 0.05 s") as info:
                await c.kpis.get(KPI_ID, timeout=0.05)
    assert info.value.attempts == 1


async def test_a_write_in_flight_when_the_budget_runs_out_is_unknown() -> None:
    gate = asyncio.Event()

    async def stall(url: Any, **kwargs: Any) -> CallbackResult:
        await gate.wait()
        return CallbackResult(status=201, body=SNAPSHOT)

    with aioresponses() as mocked:
        mocked.add(ANY, "POST", callback=stall)
        async with client() as c:
            with pytest.raises(UnknownOutcomeError, match="time budget ran out"):
                await c.kpis.create_snapshot(KPI_ID, snapshot(), timeout=0.05)


async def test_the_retry_quota_stops_a_retry_storm() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_base=0.0)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=503, repeat=True)
        async with client(retry=policy) as c:
            for _ in range(60):
                with pytest.raises(ServerError):
                    await c.kpis.get(KPI_ID)
            # 60 calls would like 3 retries each (180); the quota holds 500 / 5 = 100.
            assert c.stats.retries == 100
            assert c.stats.attempts == 160


def test_retry_quota_refills_on_success() -> None:
    quota = RetryQuota(capacity=10, retry_cost=5, timeout_cost=10)
    assert quota.take(timed_out=True) == 10
    assert quota.take(timed_out=False) == 0
    quota.give_back(6)
    assert quota.take(timed_out=False) == 5
    quota.give_back(100)
    assert quota.available == 10


async def test_cancellation_propagates_and_leaves_no_task() -> None:
    started = asyncio.Event()

    async def stall(url: Any, **kwargs: Any) -> CallbackResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with aioresponses() as mocked:
        mocked.add(ANY, "GET", callback=stall)
        async with client() as c:
            before = asyncio.all_tasks()
            task = asyncio.create_task(c.kpis.get(KPI_ID))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert c.stats.retries == 0
            assert asyncio.all_tasks() == before
    assert sent(mocked) == 1


async def test_retries_are_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gtmhub_async")
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=503)
        mocked.add(ANY, "GET", status=200, body=KPI)
        async with client() as c:
            await c.kpis.get(KPI_ID)
    (record,) = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert record.getMessage().startswith(f"retrying GET /v1/kpis/{KPI_ID} (attempt 2 of 4)")
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_one_429_wave_closes_one_gate_for_50_coroutines() -> None:
    """Ten 429s among 50 concurrent calls: one shared wait, each throttled call retried once."""
    arrivals: list[tuple[float, int]] = []
    throttled_at: list[float] = []

    async def main() -> LimiterStats:
        wave = asyncio.Event()

        async def answer(url: Any, **kwargs: Any) -> CallbackResult:
            status = 429 if len(arrivals) < 10 else 200
            arrivals.append((asyncio.get_running_loop().time(), status))
            if status == 429:
                # The first ten are in flight together, as under real load, throttled together.
                if len(arrivals) == 10:
                    wave.set()
                await wave.wait()
                throttled_at.append(asyncio.get_running_loop().time())
                return CallbackResult(status=429, headers={"Retry-After": "0.3"})
            return CallbackResult(status=200, body=KPI)

        with aioresponses() as mocked:
            mocked.add(ANY, "GET", callback=answer, repeat=True)
            async with client(rate_limit=RateLimit(1000)) as c:
                await asyncio.gather(*(c.kpis.get(KPI_ID) for _ in range(50)))
                limiter = c.limiter
                assert isinstance(limiter, LocalLimiter)
                return limiter.stats

    # Virtual time: the loop's clock only moves to the next timer, so no grace is needed.
    stats = run(main)
    assert len(arrivals) == 60
    assert (stats.gate_closures, stats.decreases, stats.throttled) == (1, 1, 10)
    wave_end, reopen = max(throttled_at), min(throttled_at) + 0.3
    assert wave_end - min(throttled_at) < 0.001  # the ten answers came at one instant
    # Nothing starts while the gate is shut: from the wave's answers until it reopens.
    assert not [t for t, _ in arrivals if wave_end < t < reopen]
    later = [t for t, _ in arrivals if t > wave_end]
    assert later and min(later) >= reopen


async def test_retry_after_as_an_http_date(monkeypatch: Any) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("gtmhub_async.session.asyncio.sleep", fake_sleep)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": when})
        mocked.add(ANY, "GET", status=200, body=KPI)
        async with client() as c:
            await c.kpis.get(KPI_ID)
    (delay,) = slept
    assert 1.0 < delay <= 3.0  # the header has whole seconds
