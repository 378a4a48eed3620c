"""RedisRateLimit against a real redis-server and a real HTTP server that records arrivals."""

from __future__ import annotations

import asyncio
import json
import logging
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


def achieved_rate(times: list[float]) -> float:
    """Return the starts per second between the first and the last arrival."""
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


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
    # (3-6 per worker). Hence the two floors: 95% of the slots, 80% delivered.
    slots_handed = sum(r["sent"] + r["forfeited"] for r in results)
    assert slots_handed >= 0.95 * 3.0 * 40 / 1.02
    assert achieved_rate(arrivals.times) >= 0.80 * 40


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
    loop = asyncio.get_running_loop()
    try:
        await limiter.acquire()
        await asyncio.to_thread(redis_server.stop)
        started = loop.time()
        with pytest.raises(RateLimiterUnavailableError, match="unavailable") as info:
            async with asyncio.timeout(2.0):  # the call's deadline
                await limiter.acquire()
        assert loop.time() - started < 1.0
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
    loop = asyncio.get_running_loop()
    try:
        await limiter.acquire()
        await admin.execute_command("CLIENT", "PAUSE", "1500")
        started = loop.time()
        with pytest.raises(RateLimiterUnavailableError, match=r"no answer within 0\.2 s"):
            async with asyncio.timeout(2.0):
                await limiter.acquire()
        assert loop.time() - started < 0.6
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
