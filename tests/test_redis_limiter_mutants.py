"""Rules of gtmhub_async.redis_limits.limiter that mutation testing found unchecked
(see tests/MUTATION.md)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_server import RedisServer

from gtmhub_async import RateLimiterUnavailableError
from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import LocalLimiter
from gtmhub_async.redis_limits import RedisLimiter, RedisRateLimit
from gtmhub_async.redis_limits.limiter import RedisLimiterStats

LOGGER = "gtmhub_async.redis_limits"
#: Nothing listens on port 1: every Redis call is refused at once.
CLOSED = "redis://127.0.0.1:1/0"


async def _refused(port: int) -> str:
    """Return what the limiter makes of a refused connection (the Unavailable text).

    The limiter's part ("error: <type>: ") is fixed; the rest is redis-py's and asyncio's own
    wording, read from the installed versions rather than written down here.
    """
    # No retries, as the limiter's own client: redis-py's default retries take seconds.
    client = aredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
    except RedisConnectionError as exc:
        return f"error: ConnectionError: {exc}"
    finally:
        await client.aclose()
    raise AssertionError(f"something answers on 127.0.0.1:{port}")


def _stats(**changed: Any) -> RedisLimiterStats:
    """Return the stats of a new limiter, with ``changed`` counters."""
    fields: dict[str, Any] = {
        "acquired": 0,
        "acquired_locally": 0,
        "forfeited": 0,
        "throttled": 0,
        "script_loads": 0,
        "redis_errors": 0,
        "fallbacks": 0,
        "local": False,
    }
    assert set(changed) <= set(fields)
    return RedisLimiterStats(**{**fields, **changed})


def _messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


async def _redis_state(limiter: RedisLimiter, *fields: str) -> list[float | None]:
    """Read fields of the limiter's hash in Redis (None: not written)."""
    client = aredis.Redis.from_url(limiter.config._url or "")
    try:
        values = await client.hmget(limiter.redis_key, list(fields))
    finally:
        await client.aclose()
    return [None if v is None else float(v) for v in values]


# --- counters and errors -----------------------------------------------------------------


async def test_a_new_limiter_has_zero_counters_and_no_slot() -> None:
    limiter = RedisRateLimit.from_url(CLOSED, 10).open(key="k")
    try:
        assert limiter.stats == _stats()
        assert limiter.last_slot is None
    finally:
        await limiter.aclose()


async def test_one_acquire_counts_one_start_and_one_script_load(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limiter = RedisRateLimit.from_url(redis_server.url, 10).open(key="one")
    try:
        await limiter.acquire()
        assert limiter.stats == _stats(acquired=1, script_loads=1)
        assert limiter.last_slot is not None
    finally:
        await limiter.aclose()
    # The first call loads the script up front: Redis never answered NOSCRIPT.
    assert _messages(caplog) == []


async def test_every_limiter_loads_the_script_on_its_first_call(
    redis_server: RedisServer,
) -> None:
    """Even when Redis knows the script already (another worker loaded it)."""
    first = RedisRateLimit.from_url(redis_server.url, 10).open(key="shared")
    second = RedisRateLimit.from_url(redis_server.url, 10).open(key="shared")
    try:
        await first.acquire()
        await second.on_response(429, 0.0)
        assert first.stats.script_loads == second.stats.script_loads == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_only_throttles_are_counted(redis_server: RedisServer) -> None:
    limiter = RedisRateLimit.from_url(redis_server.url, 10).open(key="count")
    try:
        await limiter.on_response(200, None)
        await limiter.on_response(503, None)  # a 503 without Retry-After is no throttle
        await limiter.on_response(429, 0.0)
        await limiter.on_response(503, 0.0)
        assert limiter.stats == _stats(throttled=2, script_loads=1)
    finally:
        await limiter.aclose()


async def test_a_closed_limiter_refuses_acquire_and_tells_redis_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limiter = RedisRateLimit.from_url(redis_server.url, 10).open(key="closed")
    await limiter.acquire()
    await limiter.aclose()
    await limiter.aclose()  # a second close does nothing
    with pytest.raises(ClientStateError, match=r"^the rate limiter is closed$"):
        await limiter.acquire()
    await limiter.on_response(429, 2.0)
    assert await _redis_state(limiter, "gate") == [None]
    assert limiter.stats == _stats(acquired=1, throttled=1, script_loads=1)
    assert _messages(caplog) == []


async def test_a_limiter_refuses_a_loop_other_than_its_own() -> None:
    other = asyncio.new_event_loop()
    client = aredis.Redis.from_url(CLOSED)
    limit = RedisRateLimit(client, 10)
    limiter = RedisLimiter(limit, client, owns_client=False, key="k", loop=other)
    try:
        with pytest.raises(
            ClientStateError, match=r"^the rate limiter was opened on another event loop$"
        ):
            await limiter.acquire()
        assert limiter.stats == _stats()
    finally:
        await limiter.aclose()
        await client.aclose()
        other.close()


async def test_raise_mode_names_the_redis_key_when_redis_refuses() -> None:
    limiter = RedisRateLimit.from_url(CLOSED, 10).open(key="k")
    refused = await _refused(1)
    expected = (
        f"the shared rate limit in Redis ({limiter.redis_key}) is unavailable: {refused}. "
        "No request was sent; on_redis_error='local' would fall back to a local limit instead"
    )
    try:
        with pytest.raises(RateLimiterUnavailableError, match=f"^{re.escape(expected)}$"):
            await limiter.acquire()
        assert limiter.stats == _stats(redis_errors=1)
    finally:
        await limiter.aclose()


# --- lateness ----------------------------------------------------------------------------


@pytest.mark.parametrize(("late", "forfeited"), [(0.875, 0), (1.5, 1)])
async def test_a_worker_gives_its_slot_up_only_when_later_than_a_third_of_the_slack(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, late: float, forfeited: int
) -> None:
    """A slack of 3 s: a worker may wake up to 1 s late for its slot, not more."""
    limiter = RedisRateLimit.from_url(redis_server.url, 20, 1.0, slack=3.0).open(key="late")
    loop = asyncio.get_running_loop()
    real_time = loop.time
    stall = 0.0
    monkeypatch.setattr(loop, "time", lambda: real_time() + stall)
    real_eval = limiter._eval

    async def eval_after_a_stall(mode: str, **kwargs: Any) -> list[int]:
        nonlocal stall
        if mode == "check" and not stall:
            # The event loop stalled while the worker slept for its slot: its clock
            # jumps ahead, no time passes for the test.
            stall = late
        return await real_eval(mode, **kwargs)

    monkeypatch.setattr(limiter, "_eval", eval_after_a_stall)
    try:
        await limiter.acquire()  # a free slot at once: no sleep, no check
        assert stall == 0.0
        await limiter.acquire()  # sleeps 0.2 s for the next slot, then checks it
        assert stall == late
        assert limiter.stats == _stats(acquired=2, forfeited=forfeited, script_loads=1)
    finally:
        await limiter.aclose()


# --- what on_response shares -------------------------------------------------------------


async def test_a_throttle_with_the_gate_open_closes_the_shared_gate_and_says_so_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limiter = RedisRateLimit.from_url(redis_server.url, 10).open(key="gate")
    loop = asyncio.get_running_loop()
    try:
        before = loop.time()
        await limiter.on_response(429, 2.0)
        await limiter.on_response(503, 2.0)  # the gate is closed already: no second line
        after = loop.time()
        assert before + 2.0 <= limiter._gate_until <= after + 2.0
        (gate,) = await _redis_state(limiter, "gate")
        assert gate is not None
    finally:
        await limiter.aclose()
    assert _messages(caplog) == [(logging.DEBUG, "shared gate closed for 2 s after a 429")]


async def test_a_worker_pauses_as_long_as_the_shared_gate_says(redis_server: RedisServer) -> None:
    """Its own Retry-After is 1 s, but another worker closed the gate for 5 s."""
    other = RedisRateLimit.from_url(redis_server.url, 10).open(key="shared-gate")
    limiter = RedisRateLimit.from_url(redis_server.url, 10).open(key="shared-gate")
    loop = asyncio.get_running_loop()
    try:
        before = loop.time()
        await other.on_response(429, 5.0)
        await limiter.on_response(429, 1.0)
        after = loop.time()
        # Redis TIME and the loop's clock run at the same pace (1 ms for rounding).
        assert before + 5.0 - 1e-3 <= limiter._gate_until <= after + 5.0
    finally:
        await other.aclose()
        await limiter.aclose()


async def test_a_throttle_redis_cannot_hear_pauses_the_worker_by_its_retry_after_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limiter = RedisRateLimit.from_url(CLOSED, 10).open(key="k")
    loop = asyncio.get_running_loop()
    try:
        # No Retry-After (the backoff lives in Redis) or a zero one: no local pause.
        await limiter.on_response(429, None)
        assert limiter._gate_until == -math.inf
        await limiter.on_response(503, 0.0)
        assert limiter._gate_until == -math.inf
        before = loop.time()
        await limiter.on_response(429, 0.5)
        after = loop.time()
        assert before + 0.5 <= limiter._gate_until <= after + 0.5
        assert limiter.stats == _stats(throttled=3, redis_errors=3)
    finally:
        await limiter.aclose()
    refused = await _refused(1)
    assert _messages(caplog) == [
        (logging.WARNING, f"could not share a {status} with the other workers: {refused}")
        for status in (429, 503, 429)
    ]


async def _start_after_throttle(redis_server: RedisServer, *, waiter: bool) -> float | None:
    """Return the shared rate after a 429, with 4 slots counted before the last start.

    40 per (1 s + 0.3 s slack): slots 32.5 ms apart, each in its own 20 ms bucket.
    """
    limiter = RedisRateLimit.from_url(redis_server.url, 40, 1.0, slack=0.3).open(key="sat")
    try:
        for _ in range(4):
            await limiter.acquire()
        first = asyncio.create_task(limiter.acquire())
        second = asyncio.create_task(limiter.acquire()) if waiter else None
        await first
        # The second coroutine waits for its slot, a whole interval after the first's.
        await limiter.on_response(429, 0.0)
        if second is not None:
            await second
        (start,) = await _redis_state(limiter, "start")
        return start
    finally:
        await limiter.aclose()


async def test_a_throttle_with_no_coroutine_waiting_cuts_by_30_percent_at_most(
    redis_server: RedisServer,
) -> None:
    """Not saturated: 4 slots counted, but the rate keeps 70% of 40."""
    assert await _start_after_throttle(redis_server, waiter=False) == pytest.approx(28.0)


async def test_a_throttle_with_a_coroutine_waiting_holds_what_was_counted(
    redis_server: RedisServer,
) -> None:
    """Saturated: the rate drops to 99% of the 4 slots counted before the throttled one."""
    assert await _start_after_throttle(redis_server, waiter=True) == pytest.approx(4 * 0.99)


# --- the local fallback ------------------------------------------------------------------


async def test_in_local_mode_a_throttle_reaches_the_local_limit_and_not_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    limit = RedisRateLimit.from_url(CLOSED, 10, 0.05, on_redis_error="local", probe_interval=60)
    limiter = limit.open(key="k")
    loop = asyncio.get_running_loop()
    try:
        await limiter.acquire()  # refused: falls back, after a quiet spell of 65 ms
        fallback = limiter._outage._fallback
        assert isinstance(fallback, LocalLimiter)
        before = loop.time()
        await limiter.on_response(429, 5.0)
        after = loop.time()
        assert fallback.stats.throttled == 1
        assert before + 5.0 <= fallback.core.gate_until <= after + 5.0
        assert before + 5.0 <= limiter._gate_until <= after + 5.0
        assert limiter.stats == _stats(
            acquired=1, acquired_locally=1, throttled=1, redis_errors=1, fallbacks=1, local=True
        )
    finally:
        await limiter.aclose()
    refused = await _refused(1)
    assert _messages(caplog) == [
        (
            logging.WARNING,
            f"the shared rate limit in Redis ({limiter.redis_key}) is unavailable "
            f"({refused}): falling back to a local limit of 10 requests per 0.05 s until it "
            "answers again",
        )
    ]


async def test_a_worker_back_from_the_fallback_is_paced_as_one_of_expected_workers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Its rejoin marks a recovery spell in Redis: slots are 3 intervals apart meanwhile."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    limit = RedisRateLimit.from_url(
        redis_server.url, 10, 0.2, on_redis_error="local", expected_workers=3, probe_interval=0.1
    )
    limiter = limit.open(key="rejoin")
    span = 0.2 + 0.015  # time_period + the default slack (15 ms)
    try:
        await asyncio.to_thread(redis_server.stop)
        refused = await _refused(redis_server.port)
        await limiter.acquire()  # local, after a quiet spell
        await asyncio.to_thread(redis_server.start)  # empty: a restart
        await limiter.acquire()  # the probe (0.1 s after the failure) is due: back on Redis
        assert limiter.stats == _stats(
            acquired=2, acquired_locally=1, script_loads=1, redis_errors=1, fallbacks=1
        )
        assert limiter.last_slot is not None
        slot = limiter.last_slot * 1e6
        tat, rec = await _redis_state(limiter, "tat", "rec")
        assert tat is not None and rec is not None
        assert tat - slot == pytest.approx(3 * span / 10 * 1e6, abs=1.0)
        assert rec - slot == pytest.approx((0.1 + span) * 1e6, abs=1.0)
    finally:
        await limiter.aclose()
    assert _messages(caplog) == [
        (
            logging.WARNING,
            f"the shared rate limit in Redis ({limiter.redis_key}) is unavailable ({refused}): "
            "falling back to a local limit of 3.33333 requests per 0.2 s until it answers again",
        ),
        (
            logging.WARNING,
            f"Redis answers again: the shared rate limit {limiter.redis_key} is back",
        ),
    ]
