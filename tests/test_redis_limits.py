"""RedisRateLimit against a real redis-server and a real HTTP server that records arrivals."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aredis
from aiohttp import web
from redis_server import RedisServer, worker_command, worker_env, worst_window

from gtmhub_async import GtmhubError, RateLimiterUnavailableError
from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import LimiterFactory
from gtmhub_async.redis_limits import RedisLimiter, RedisRateLimit
from gtmhub_async.testing.simulator import SimServer


class Arrivals:
    """An aiohttp server on 127.0.0.1 that records when each request arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.workers: list[str] = []
        #: time.time() of each arrival: the clock Redis's TIME reads on this host.
        self.wall: list[float] = []
        #: The slot Redis granted each request (its TIME, Unix seconds), None if local.
        self.slots: list[float | None] = []
        #: Called with the arrival index; return (status, headers) to answer other than 200.
        self.answer: Callable[[int], tuple[int, dict[str, str]] | None] = lambda i: None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        index = len(self.times)
        self.times.append(time.monotonic())
        self.wall.append(time.time())
        self.workers.append(request.query.get("w", ""))
        slot = request.query.get("slot")
        self.slots.append(float(slot) if slot is not None else None)
        special = self.answer(index)
        if special is not None:
            status, headers = special
            return web.Response(status=status, headers=headers)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def arrivals() -> AsyncIterator[Arrivals]:
    server = Arrivals()
    await server.start()
    yield server
    await server.stop()


async def run_workers(
    count: int, arrivals: Arrivals, *, max_seconds: float = 60.0, **options: Any
) -> list[dict[str, Any]]:
    """Run ``count`` worker processes together; return their JSON results."""
    procs = [
        await asyncio.create_subprocess_exec(
            *worker_command(target=arrivals.url, index=i, **options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_env(),
        )
        for i in range(count)
    ]
    try:
        async with asyncio.timeout(max_seconds):
            for proc in procs:
                assert proc.stdout is not None
                line = await proc.stdout.readline()
                assert line.strip() == b"ready", line
            # Every worker is up: start them together.
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc in procs:
        assert proc.returncode == 0
    return [json.loads(out.splitlines()[-1]) for out, _ in outputs]


async def test_four_processes_share_one_budget(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    results = await run_workers(
        4, arrivals, redis_url=redis_server.url, rate=40, period=1.0, coroutines=50, duration=3.0
    )
    assert sum(r["sent"] for r in results) == len(arrivals.times)
    assert all(r["sent"] > 0 for r in results)
    slots = [s for s in arrivals.slots if s is not None]
    assert len(slots) == len(arrivals.times)  # every start came from Redis
    # The limiter's guarantee, exact: the slots it granted, in Redis server time
    # (the only clock the limiter controls), never put more than 40 in a 1 s window.
    assert worst_window(slots, 1.0) <= 40
    # What the API sees is the slots plus what follows acquire (the worker's event
    # loop, the OS scheduler, aiohttp on both ends), which no limiter controls.
    # Nothing may arrive before its slot (one clock: TIME and time.time() on this host).
    delays = [w - s for w, s in zip(arrivals.wall, slots, strict=True)]
    assert min(delays) > -0.001
    # Arrivals may exceed 40 in a 1 s window only if one request is delayed more
    # than the slack (20 ms) beyond a later one. Measured on the 2-core CI box, the
    # delays stay within 1.5-10 ms alone and 1.5-11 ms with 1 to 4 CPU hogs (load
    # average up to 5), so 40 held in every run; the bound below keeps the 20 ms
    # slack plus another 10 ms, so a one-off stall of the CI box alone does not fail
    # the test, while a limiter that handed out a 41st slot fails the check above.
    assert worst_window(arrivals.times, 1.0 - 0.010) <= 40
    # Utilisation. The schedule itself is exact: 3 s at 40 per 1.02 s hands out
    # 118 slots, measured 118 in every run, alone or loaded. A worker that wakes
    # up more than a third of the slack late gives its slot up (the remedy for
    # jitter), so what is delivered depends on the load: about 96% of 40 alone
    # (1 slot given up per worker), 84-90% with two CPU hogs on the 2-core box
    # (3-6 per worker). The test judges the slots (95% of the schedule); the rate
    # delivered is a wall-clock figure: benchmarks/redis_limits.py reports it.
    slots_handed = sum(r["sent"] + r["forfeited"] for r in results)
    assert slots_handed >= 0.95 * 3.0 * 40 / 1.02


async def test_is_a_limiter_factory(redis_server: RedisServer) -> None:
    limit = RedisRateLimit.from_url(redis_server.url, 10)
    assert isinstance(limit, LimiterFactory)
    limiter = limit.open(key="https://app.example|acc")
    try:
        await limiter.acquire()
        assert limiter.stats.acquired == 1
    finally:
        await limiter.aclose()


async def test_a_429_to_one_worker_pauses_all_four(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    throttled_at = 30  # about 0.75 s in
    arrivals.answer = lambda i: (429, {"Retry-After": "1"}) if i == throttled_at else None
    results = await run_workers(
        4, arrivals, redis_url=redis_server.url, rate=40, period=1.0, coroutines=50, duration=2.6
    )
    assert sum(r["statuses"].get("429", 0) for r in results) == 1
    t429 = arrivals.times[throttled_at]
    # Grace: a worker that had confirmed its slot just before the gate closed may
    # still start (like a request already in flight); nothing else may.
    during = [t for t in arrivals.times if t429 + 0.1 <= t < t429 + 1.0]
    assert during == []
    before = {w for t, w in zip(arrivals.times, arrivals.workers, strict=True) if t < t429}
    after = {w for t, w in zip(arrivals.times, arrivals.workers, strict=True) if t >= t429 + 1.0}
    assert before == after == {"0", "1", "2", "3"}
    assert worst_window(arrivals.times, 1.0) <= 40


async def _drive(
    limiters: list[RedisLimiter],
    arrivals: Arrivals,
    http: aiohttp.ClientSession,
    *,
    coroutines: int,
    until: float,
) -> int:
    """Send GETs through each limiter from ``coroutines`` coroutines until ``until``."""
    loop = asyncio.get_running_loop()
    unavailable = 0

    async def one(index: int, limiter: RedisLimiter) -> None:
        nonlocal unavailable
        while loop.time() < until:
            try:
                async with asyncio.timeout_at(until):
                    await limiter.acquire()
            except RateLimiterUnavailableError:
                unavailable += 1
                await asyncio.sleep(0.05)
                continue
            except TimeoutError:
                return
            async with http.get(arrivals.url, params={"w": index}) as resp:
                await resp.read()
                await limiter.on_response(resp.status, None)

    await asyncio.gather(
        *(one(i, lim) for i, lim in enumerate(limiters) for _ in range(coroutines))
    )
    return unavailable


async def test_redis_killed_with_raise_fails_fast_then_recovers(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    limit = RedisRateLimit.from_url(redis_server.url, 20, 0.5, redis_timeout=0.3)
    limiter = limit.open(key="https://app.example|acc")
    try:
        await limiter.acquire()
        await asyncio.to_thread(redis_server.stop)
        with pytest.raises(RateLimiterUnavailableError, match="unavailable") as info:
            async with asyncio.timeout(2.0):  # the call's deadline
                await limiter.acquire()
        # Not a timing figure: the 2 s deadline would have raised TimeoutError instead.
        assert isinstance(info.value, GtmhubError)
        assert info.value.attempts == 0
        await asyncio.to_thread(redis_server.start)
        async with asyncio.timeout(2.0):
            await limiter.acquire()  # back on the restarted server: the script is reloaded
        assert limiter.stats.script_loads == 2
    finally:
        await limiter.aclose()


async def test_slow_redis_with_raise_fails_within_the_redis_timeout(
    redis_server: RedisServer,
) -> None:
    admin = aredis.Redis.from_url(redis_server.url)
    limiter = RedisRateLimit.from_url(redis_server.url, 20, 0.5, redis_timeout=0.2).open(key="k")
    try:
        await limiter.acquire()
        await admin.execute_command("CLIENT", "PAUSE", "1500")
        with pytest.raises(RateLimiterUnavailableError, match=r"no answer within 0\.2 s"):
            async with asyncio.timeout(2.0):
                await limiter.acquire()
        # No timing figure is needed: waiting out the 1.5 s pause would have returned a
        # slot (no error), and the 2 s deadline would have raised TimeoutError.
    finally:
        await limiter.aclose()
        await admin.aclose()


async def test_redis_killed_with_local_falls_back_within_budget(
    redis_server: RedisServer, arrivals: Arrivals, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gtmhub_async.redis_limits")
    limit = RedisRateLimit.from_url(
        redis_server.url,
        20,
        0.5,
        on_redis_error="local",
        expected_workers=2,
        redis_timeout=0.2,
        probe_interval=0.3,
    )
    # Two workers: two limiters, each with its own Redis client.
    limiters = [limit.open(key="https://app.example|acc") for _ in range(2)]
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def outage() -> None:
        await asyncio.sleep(0.8)
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(1.2)
        await asyncio.to_thread(redis_server.start)

    try:
        async with aiohttp.ClientSession() as http:
            _, unavailable = await asyncio.gather(
                outage(), _drive(limiters, arrivals, http, coroutines=10, until=start + 3.6)
            )
        assert unavailable == 0
        assert worst_window(arrivals.times, 0.5) <= 20
        for limiter in limiters:
            stats = limiter.stats
            assert stats.fallbacks == 1
            assert stats.acquired_locally > 0
            assert not stats.local  # back on Redis
            assert stats.acquired > stats.acquired_locally
        warnings = [r for r in caplog.records if "falling back" in r.getMessage()]
        assert len(warnings) == 2  # one per worker for the outage, not one per call
    finally:
        for limiter in limiters:
            await limiter.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_key_is_hashed_holds_no_token_and_expires(redis_server: RedisServer) -> None:
    admin = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    limit = RedisRateLimit(admin, 10, 0.5, idle_ttl=0.6)
    limiter = limit.open(key="https://app.example/api/v1|account-42")
    try:
        await limiter.acquire()
        await limiter.on_response(429, 0.2)  # writes the gate and the adaptive state too
        keys = await admin.keys("*")
        assert keys == [limiter.redis_key]
        assert "account-42" not in keys[0] and "app.example" not in keys[0]
        assert keys[0].startswith("gtmhub_async:rate:{")
        values = await admin.hgetall(keys[0])
        assert not any("account" in v or "token" in v for v in values.values())
        ttl = await admin.pttl(keys[0])
        assert 0 < ttl <= 1200
        await asyncio.sleep(1.3)
        assert await admin.keys("*") == []
    finally:
        await limiter.aclose()
    # A client the user passed in stays open.
    assert await admin.ping()
    await admin.aclose()


async def test_script_is_reloaded_after_script_flush(redis_server: RedisServer) -> None:
    admin = aredis.Redis.from_url(redis_server.url)
    limiter = RedisRateLimit.from_url(redis_server.url, 50).open(key="k")
    try:
        await limiter.acquire()
        assert limiter.stats.script_loads == 1
        await admin.script_flush()
        await limiter.acquire()
        assert limiter.stats.script_loads == 2
        assert limiter.stats.redis_errors == 0
    finally:
        await limiter.aclose()
        await admin.aclose()


async def test_closed_limiter_refuses(redis_server: RedisServer) -> None:
    limiter = RedisRateLimit.from_url(redis_server.url, 50).open(key="k")
    await limiter.aclose()
    with pytest.raises(ClientStateError):
        await limiter.acquire()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_rate": "10"}, TypeError, "max_rate must be a number, got str"),
        ({"max_rate": True}, TypeError, "max_rate must be a number, got bool"),
        ({"max_rate": 0}, ValueError, "max_rate must be positive"),
        ({"max_rate": float("inf")}, ValueError, "max_rate must be finite"),
        ({"time_period": -1}, ValueError, "time_period must be positive"),
        ({"on_redis_error": "ignore"}, ValueError, "on_redis_error must be 'raise' or 'local'"),
        ({"expected_workers": 1.5}, TypeError, "expected_workers must be an int"),
        ({"expected_workers": 0}, ValueError, "expected_workers must be positive"),
        ({"redis_timeout": 0}, ValueError, "redis_timeout must be positive"),
        ({"idle_ttl": 0.5}, ValueError, "idle_ttl must be at least"),
        ({"key": ""}, TypeError, "key must be a non-empty str or None"),
        ({"slack": 0}, ValueError, "slack must be positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    args: dict[str, Any] = {"max_rate": 10, **kwargs}
    with pytest.raises(error, match=message):
        RedisRateLimit.from_url("redis://127.0.0.1:1/0", **args)


def test_bad_clients_and_urls() -> None:
    import redis

    sync_client = redis.Redis()
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis or RedisCluster.*synchronous"):
        RedisRateLimit(sync_client, 10)  # type: ignore[arg-type]
    sync_client.close()
    with pytest.raises(ValueError, match="url must start with redis://"):
        RedisRateLimit.from_url("http://127.0.0.1:6379", 10)
    with pytest.raises(TypeError, match="url must be a str"):
        RedisRateLimit.from_url(b"redis://x", 10)  # type: ignore[arg-type]
    limit = RedisRateLimit.from_url("redis://127.0.0.1:1/0", 10)
    with pytest.raises(RuntimeError):
        limit.open(key="k")  # outside a running loop


async def test_open_checks_the_key_type() -> None:
    limit = RedisRateLimit.from_url("redis://127.0.0.1:1/0", 10)
    with pytest.raises(TypeError, match="key must be a str, got int"):
        limit.open(key=1)  # type: ignore[arg-type]


# --- the adaptive rules, shared (#13) -------------------------------------------------


async def _redis_state(limiter: RedisLimiter, *fields: str) -> list[float]:
    client = aredis.Redis.from_url(limiter.config._url or "")
    try:
        values = await client.hmget(limiter.redis_key, list(fields))
    finally:
        await client.aclose()
    return [float(v) for v in values]


@pytest.mark.parametrize(("rate", "period", "interval"), [(10, 1.0, 0.102), (30, 60.0, 2.04)])
async def test_the_pacing_slack_is_in_the_schedule(
    redis_server: RedisServer, rate: float, period: float, interval: float
) -> None:
    """Slots are (time_period + slack) / rate apart; slack is 2% of a per-minute period too."""
    limit = RedisRateLimit.from_url(redis_server.url, rate, period, idle_ttl=2 * period)
    limiter = limit.open(key=f"pace{period}")
    try:
        await limiter.acquire()
        assert limiter.last_slot is not None
        (tat,) = await _redis_state(limiter, "tat")
        assert (tat / 1e6 - limiter.last_slot) == pytest.approx(interval, abs=1e-6)
    finally:
        await limiter.aclose()


async def test_a_429_with_nothing_counted_cuts_the_shared_rate_by_30_percent(
    redis_server: RedisServer,
) -> None:
    limiter = RedisRateLimit.from_url(redis_server.url, 100).open(key="storm")
    try:
        await limiter.on_response(429, 0.0)
        start, ceiling = await _redis_state(limiter, "start", "ceiling")
        assert start == pytest.approx(70)
        assert ceiling == -1  # a storm teaches no ceiling
        await limiter.on_response(429, 0.0)  # within the same period: no second cut
        (start,) = await _redis_state(limiter, "start")
        assert start == pytest.approx(70)
    finally:
        await limiter.aclose()


async def test_the_shared_backoff_doubles_for_429s_without_retry_after(
    redis_server: RedisServer,
) -> None:
    limiter = RedisRateLimit.from_url(redis_server.url, 100).open(key="backoff")
    admin = aredis.Redis.from_url(redis_server.url)
    try:
        gates = []
        for _ in range(4):
            await limiter.on_response(429, None)
            await limiter.on_response(429, None)  # in flight: the gate was closed, no doubling
            backoff, gate = await _redis_state(limiter, "backoff", "gate")
            seconds, micros = await admin.time()
            gates.append(round((gate - (seconds * 1e6 + micros)) / 1e6))
            assert backoff / 1e6 == gates[-1]
            # The gate reopens (as if its backoff had passed): the next 429 doubles it.
            await admin.hset(limiter.redis_key, "gate", repr(seconds * 1e6 + micros - 1e3))
            limiter._gate_until = -math.inf
        assert gates == [1, 2, 4, 8]
    finally:
        await limiter.aclose()
        await admin.aclose()


async def test_an_isolated_503_closes_the_shared_gate_but_does_not_cut(
    redis_server: RedisServer,
) -> None:
    limiter = RedisRateLimit.from_url(redis_server.url, 100).open(key="stray")
    try:
        for _ in range(20):
            await limiter.acquire()
        await limiter.on_response(503, 0.5)
        gate, start = await _redis_state(limiter, "gate", "start")
        assert start == 100
        assert limiter._gate_until > asyncio.get_running_loop().time()
        assert gate > 0
    finally:
        await limiter.aclose()


def _slot_rate(slots: list[float], start: float, end: float) -> float:
    """Return the schedule's rate (slots per second) from the gaps between used slots.

    Slots are the Redis schedule itself (server TIME, exactly one interval apart),
    so no jitter enters this figure. A slot a late worker gave up makes one gap of
    two or more intervals; under two CPU hogs on the 2-core box more than half of
    the slots were given up (measured), so the median gap can be a double one. The
    10th percentile is the interval as long as one gap in ten joins two used slots.
    """
    window = sorted(s for s in slots if start <= s < end)
    gaps = sorted(b - a for a, b in itertools.pairwise(window))
    return 1.0 / gaps[len(gaps) // 10]


async def _scenario(
    redis_server: RedisServer,
    arrivals: Arrivals,
    answer: Callable[[float], tuple[int, dict[str, str]] | None],
    *,
    rate: float,
    duration: float,
) -> tuple[list[float], list[tuple[float, float, int]]]:
    """Run 4 worker processes; return the slots and (slot, arrival, status) of each request."""
    first: list[float] = []
    statuses: list[int] = []

    def respond(index: int) -> tuple[int, dict[str, str]] | None:
        t = arrivals.times[index]
        if not first:
            first.append(t)
        special = answer(t - first[0])
        statuses.append(200 if special is None else special[0])
        return special

    arrivals.answer = respond
    await run_workers(
        4, arrivals, redis_url=redis_server.url, rate=rate, coroutines=50, duration=duration
    )
    slots = [s for s in arrivals.slots if s is not None]
    assert len(slots) == len(arrivals.times)
    t0 = min(slots)
    rel = [s - t0 for s in slots]
    return rel, list(zip(rel, [t - first[0] for t in arrivals.times], statuses, strict=True))


async def test_redis_scenario_1_an_early_throttle_is_forgotten(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    answer = SimServer(lambda t: None, random.Random(0), throttle=(0.1, 0.4)).http_answer
    slots, log = await _scenario(redis_server, arrivals, answer, rate=50, duration=7.0)
    assert any(status == 429 for _, _, status in log)
    # The schedule: at least 95% of 50/s (less the 2% slack) from 5 s on.
    assert _slot_rate(slots, 5.0, 7.0) >= 0.95 * 50 / 1.02
    # Delivered: slots given up on a loaded 2-core box cost up to 60% (measured under
    # two CPU hogs); the delivered figures are in benchmarks/redis_limits.py.
    assert sum(1 for s in slots if 5.0 <= s < 7.0) / 2.0 >= 0.3 * 50


async def test_redis_scenario_2_stray_503s_do_not_cut_the_shared_rate(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    answer = SimServer(lambda t: None, random.Random(2), unavailable=0.05).http_answer
    slots, log = await _scenario(redis_server, arrivals, answer, rate=100, duration=5.0)
    assert sum(1 for _, _, status in log if status == 503) >= 5
    assert _slot_rate(slots, 3.0, 5.0) >= 0.9 * 100 / 1.02


async def test_redis_scenario_3_settles_at_a_hidden_limit(
    redis_server: RedisServer, arrivals: Arrivals
) -> None:
    # The same sliding-window server as the limiter's simulator (and the benchmark).
    answer = SimServer(lambda t: 30, random.Random(0)).http_answer
    slots, log = await _scenario(redis_server, arrivals, answer, rate=200, duration=9.0)
    # Judged from 5 s: under two CPU hogs the confirming 429 came up to 3.1 s in.
    after = [status for slot, _, status in log if slot >= 5.0]
    assert after.count(429) / len(after) < 0.02
    assert _slot_rate(slots, 5.0, 9.0) >= 0.9 * 30 / 1.02
    assert after.count(200) / 4.0 >= 0.3 * 30  # delivered: slots given up, as above


def test_a_limit_built_from_a_redis_url_is_the_one_from_url_builds() -> None:
    from gtmhub_async.redis_limits import RedisUrl

    a = RedisRateLimit.from_url("redis://h:1/0", 5, socket_keepalive=True)
    b = RedisRateLimit(RedisUrl("redis://h:1/0", {"socket_keepalive": True}), 5)
    expected = "RedisRateLimit(redis://h:1/0, max_rate=5, time_period=1, on_redis_error='raise')"
    assert repr(a) == repr(b) == expected
    assert a._client_kwargs == b._client_kwargs == {"socket_keepalive": True}
    with pytest.raises(ValueError, match=r"^url must start with redis://, rediss:// or unix://"):
        RedisUrl("http://h")
