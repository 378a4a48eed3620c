"""Benchmark the local rate limiter against a real sliding-window server.

Run from the repo root: ``.venv/bin/python -m benchmarks.rate_limit [N] [RUNS] [SECONDS]``.

A separate process serves HTTP on 127.0.0.1 and lets at most ``N`` requests
arrive in any closed one-second window, answering 429 with a Retry-After rounded
up to whole seconds. Each run saturates it with 64 coroutines for ``SECONDS``:
(a) limiter configured at N: 429s, achieved/N, worst one-second window of starts;
(b) limiter configured at 2N: settled rate and share of 429s after a 3 s warm-up.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
import multiprocessing
import statistics
import sys
import time

import aiohttp
from aiohttp import web

from gtmhub_async.limits import LocalLimiter, RateLimit

WORKERS = 64
WARM_UP = 3.0


def serve(limit: int, port_out: multiprocessing.connection.Connection) -> None:
    """Serve /r, allowing ``limit`` arrivals in any closed 1 s window (runs in a child)."""
    accepted: collections.deque[float] = collections.deque()

    async def handle(request: web.Request) -> web.Response:
        now = time.monotonic()
        while accepted and accepted[0] < now - 1.0:
            accepted.popleft()
        if len(accepted) < limit:
            accepted.append(now)
            return web.Response(text="ok")
        retry_after = max(1, math.ceil(accepted[0] + 1.0 - now))
        return web.Response(status=429, headers={"Retry-After": str(retry_after)})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/r", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def drive(url: str, configured: int, seconds: float) -> tuple[list[float], list[int]]:
    """Saturate the server through a limiter; return start times (from 0) and statuses."""
    limiter = RateLimit(configured).open(key="bench")
    assert isinstance(limiter, LocalLimiter)
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    statuses: list[int] = []
    t0 = loop.time()
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while True:
                await limiter.acquire()
                if loop.time() - t0 >= seconds:
                    return
                starts.append(loop.time() - t0)
                async with http.get(url) as response:
                    await response.read()
                    header = response.headers.get("Retry-After")
                statuses.append(response.status)
                await limiter.on_response(response.status, float(header) if header else None)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await limiter.aclose()
    return starts, statuses


def worst_window(starts: list[float]) -> int:
    """Return the most starts in any closed one-second window."""
    return max((bisect.bisect_right(starts, s + 1.0) - i for i, s in enumerate(starts)), default=0)


def main() -> None:
    """Run both scenarios a few times and print medians."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    ctx = multiprocessing.get_context("spawn")
    rows: dict[str, list[list[float]]] = {"a": [], "b": []}
    for run in range(runs):
        for scenario, configured in (("a", n), ("b", 2 * n)):
            # A fresh server per run: its window must start empty.
            receiver, sender = ctx.Pipe(duplex=False)
            server = ctx.Process(target=serve, args=(n, sender), daemon=True)
            server.start()
            try:
                url = f"http://127.0.0.1:{receiver.recv()}/r"
                starts, statuses = asyncio.run(drive(url, configured, seconds))
            finally:
                server.terminate()
                server.join()
            after = [st for s, st in zip(starts, statuses, strict=True) if s >= WARM_UP]
            ok_after = after.count(200)
            row = [
                statuses.count(429),
                statuses.count(200) / seconds / n,
                worst_window(starts),
                ok_after / (seconds - WARM_UP),
                after.count(429) / max(1, len(after)),
            ]
            rows[scenario].append(row)
            print(f"run {run + 1} ({scenario}) configured {configured}: {row}", file=sys.stderr)

    print(f"\nserver limit N = {n}/s (sliding 1 s window), {runs} runs of {seconds:g} s, medians")
    print(f"{'scenario':<22}{'429s':>6}{'ok/N':>8}{'worst 1 s':>11}{'ok/s >3s':>10}{'429 >3s':>9}")
    for scenario, label in (("a", f"(a) configured {n}"), ("b", f"(b) configured {2 * n}")):
        med = [statistics.median(col) for col in zip(*rows[scenario], strict=True)]
        print(f"{label:<22}{med[0]:>6g}{med[1]:>8.1%}{med[2]:>11g}{med[3]:>10.1f}{med[4]:>9.2%}")


if __name__ == "__main__":
    main()
