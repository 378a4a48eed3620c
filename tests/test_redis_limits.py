"""RedisRateLimit against a real redis-server and a real HTTP server that records arrivals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from redis_server import RedisServer, worker_command, worker_env, worst_window

from gtmhub_async.limits import LimiterFactory
from gtmhub_async.redis_limits import RedisRateLimit


class Arrivals:
    """An aiohttp server on 127.0.0.1 that records when each request arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.workers: list[str] = []
        #: Called with the arrival index; return (status, headers) to answer other than 200.
        self.answer: Callable[[int], tuple[int, dict[str, str]] | None] = lambda i: None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        index = len(self.times)
        self.times.append(time.monotonic())
        self.workers.append(request.query.get("w", ""))
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
    assert worst_window(arrivals.times, 1.0) <= 40
    # The strict guarantee above is exact; the utilisation floor is lenient (90%) because
    # a loaded 2-core CI box runs five processes here. The benchmark reports the real
    # figure (about 97%, see benchmarks/redis_limits.py).
    assert achieved_rate(arrivals.times) >= 0.90 * 40


async def test_is_a_limiter_factory(redis_server: RedisServer) -> None:
    limit = RedisRateLimit.from_url(redis_server.url, 10)
    assert isinstance(limit, LimiterFactory)
    limiter = limit.open(key="https://app.example|acc")
    try:
        await limiter.acquire()
        assert limiter.stats.acquired == 1
    finally:
        await limiter.aclose()
