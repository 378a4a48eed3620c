"""Scenario 1, overhead: GET /v1/kpis/{id} at concurrency 64, the SDK against raw aiohttp.

Variants (each run in a fresh client process against one server process):

- ``aiohttp_json``: the hand-written baseline: one ClientSession, the SDK's headers,
  64 worker coroutines, ``raise_for_status()`` and ``await resp.json()`` into dicts;
- ``aiohttp_read``: the same with ``await resp.read()`` and no parsing: the ceiling;
- ``sdk``: ``client.kpis.get(id)`` returning ``Kpi`` objects, ``rate_limit=None``;
- ``sdk_limited``: the same with ``RateLimit(1_000_000)``, far above the achieved rate.

Each run first sends a warm-up (opens the 64 connections), then times ``n``
requests: requests/s by the wall clock, CPU microseconds per request by
``time.process_time`` of the client process.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.harness import (
    Column,
    Options,
    Row,
    ScenarioResult,
    Server,
    Target,
    interleave,
    medians,
    paired_ratio,
    run_child,
)
from benchmarks.servers import ACCOUNT_ID, KPI_BODY, KPI_IDS, TOKEN

__all__ = ["client_run", "run"]

VARIANTS = {
    "aiohttp_json": "raw aiohttp + resp.json() (baseline)",
    "aiohttp_read": "raw aiohttp + read(), no parsing (ceiling)",
    "sdk": "SDK kpis.get -> Kpi, rate_limit=None",
    "sdk_limited": "SDK kpis.get -> Kpi, RateLimit(1_000_000)",
}
BASELINE = "aiohttp_json"


async def _load(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> None:
    indices = iter(range(n))  # shared by the workers: next() never awaits

    async def worker() -> None:
        for i in indices:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _measure(
    n: int, warmup: int, concurrency: int, one: Callable[[int], Awaitable[Any]]
) -> dict[str, float]:
    await _load(warmup, concurrency, one)
    gc.collect()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await _load(n, concurrency, one)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return {
        "rps": n / wall,
        "cpu_us": cpu / n * 1e6,
        "cpu_rps": n / cpu,
        "seconds": wall,
        # Minor page faults: about 1 per request means the allocator gives memory back
        # and faults it in again on every answer (see harness.MALLOC_ENV).
        "faults_per_req": faults / n,
    }


async def _client(variant: str, base_url: str, n: int, warmup: int, concurrency: int) -> Any:
    import aiohttp

    from gtmhub_async import GtmhubClient, RateLimit

    ids = KPI_IDS
    count = len(ids)
    if variant.startswith("aiohttp"):
        async with GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url) as probe:
            headers = probe._headers()  # exactly the SDK's headers
        parse = variant == "aiohttp_json"
        async with aiohttp.ClientSession() as http:

            async def one(i: int) -> Any:
                async with http.get(f"{base_url}/v1/kpis/{ids[i % count]}", headers=headers) as r:
                    r.raise_for_status()
                    return await (r.json() if parse else r.read())

            return await _measure(n, warmup, concurrency, one)
    rate_limit = RateLimit(1_000_000) if variant == "sdk_limited" else None
    async with GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=rate_limit) as c:
        get = c.kpis.get

        def one_sdk(i: int) -> Awaitable[Any]:
            return get(ids[i % count])

        return await _measure(n, warmup, concurrency, one_sdk)


def client_run(
    variant: str, base_url: str, n: int, warmup: int, concurrency: int
) -> dict[str, float]:
    """Run one variant in this (child) process and return its metrics."""
    result: dict[str, float] = asyncio.run(_client(variant, base_url, n, warmup, concurrency))
    return result


def _getter(client: Any) -> Callable[[int], Awaitable[Any]]:
    get = client.kpis.get
    ids = KPI_IDS
    count = len(ids)

    def one(i: int) -> Awaitable[Any]:
        return get(ids[i % count])  # type: ignore[no-any-return]

    return one


async def _ab(base_url: str, blocks: int, block: int, concurrency: int) -> Any:
    from gtmhub_async import GtmhubClient, RateLimit

    off = GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=None)
    on = GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=RateLimit(1_000_000))
    out: dict[str, list[float]] = {"off_cpu_us": [], "on_cpu_us": [], "off_rps": [], "on_rps": []}
    async with off, on:
        clients = {"off": off, "on": on}
        for client in clients.values():
            await _measure(block, block, concurrency, _getter(client))
        for b in range(blocks):
            # Alternate which goes first, so that neither always follows the other.
            for name in ("off", "on") if b % 2 == 0 else ("on", "off"):
                m = await _measure(block, 0, concurrency, _getter(clients[name]))
                out[f"{name}_cpu_us"].append(m["cpu_us"])
                out[f"{name}_rps"].append(m["rps"])
    return out


def ab_run(base_url: str, blocks: int, block: int, concurrency: int) -> dict[str, list[float]]:
    """Limiter off vs on in one process, alternating blocks of requests (a paired A/B)."""
    result: dict[str, list[float]] = asyncio.run(_ab(base_url, blocks, block, concurrency))
    return result


def run(options: Options) -> ScenarioResult:
    """Run the scenario: every variant, interleaved, ``options.runs`` times."""
    n = 4_000 if options.quick else 20_000
    concurrency = 64
    warmup = 1_000
    with Server() as server:

        def one(variant: str, _: int) -> dict[str, float]:
            cpu0 = server.cpu_seconds()
            result = run_child(
                "overhead",
                "client_run",
                variant=variant,
                base_url=server.base_url,
                n=n,
                warmup=warmup,
                concurrency=concurrency,
            )
            # Warm-up requests count too: the server cannot tell them apart.
            result["server_cpu_us"] = (server.cpu_seconds() - cpu0) / (n + warmup) * 1e6
            return result

        runs = interleave(list(VARIANTS), options.runs, one, progress="overhead")
        blocks = 6 if options.quick else 20
        ab = run_child(
            "overhead",
            "ab_run",
            base_url=server.base_url,
            blocks=blocks,
            block=1_000,
            concurrency=concurrency,
        )
    ab_cpu = statistics.median(
        a / b for a, b in zip(ab["off_cpu_us"], ab["on_cpu_us"], strict=True)
    )
    ab_rps = statistics.median(a / b for a, b in zip(ab["on_rps"], ab["off_rps"], strict=True))
    rows = []
    base = medians(runs[BASELINE])
    for variant, label in VARIANTS.items():
        med = medians(runs[variant])
        med["ratio"] = med["rps"] / base["rps"]
        med["cpu_ratio"] = base["cpu_us"] / med["cpu_us"]
        rows.append(Row(variant, label, med, runs[variant]))
    sdk = next(r for r in rows if r.variant == "sdk").median
    limited = next(r for r in rows if r.variant == "sdk_limited").median
    targets = [
        Target("SDK req/s vs the hand-written baseline", sdk["ratio"], 1.00, sdk["ratio"] >= 1.0),
        Target(
            "SDK CPU efficiency (req per client CPU-second) vs the baseline",
            sdk["cpu_ratio"],
            1.00,
            sdk["cpu_ratio"] >= 1.0,
        ),
        Target(
            "SDK with RateLimit(1_000_000) req/s vs the baseline (paired)",
            paired_ratio(runs, "sdk_limited", BASELINE, "rps"),
            1.00,
            paired_ratio(runs, "sdk_limited", BASELINE, "rps") >= 1.0,
        ),
        Target(
            "SDK with RateLimit(1_000_000) req per CPU-second vs the baseline (paired)",
            paired_ratio(runs, "sdk_limited", BASELINE, "cpu_rps"),
            1.00,
            paired_ratio(runs, "sdk_limited", BASELINE, "cpu_rps") >= 1.0,
        ),
        Target(
            "SDK limiter on vs off (req/s, rows above)",
            limited["rps"] / sdk["rps"],
            0.97,
            limited["rps"] / sdk["rps"] >= 0.97,
        ),
        Target(
            f"SDK limiter on vs off (req/s, paired A/B of {blocks} x 1,000-request blocks)",
            ab_rps,
            0.97,
            ab_rps >= 0.97,
        ),
        Target(
            "SDK limiter on vs off (CPU efficiency, paired A/B)",
            ab_cpu,
            0.97,
            ab_cpu >= 0.97,
        ),
    ]
    notes = [
        "paired ratios (median of per-round ratios): SDK/baseline req/s "
        f"{paired_ratio(runs, 'sdk', BASELINE, 'rps'):.2f}, req/CPU-s "
        f"{paired_ratio(runs, 'sdk', BASELINE, 'cpu_rps'):.2f}; limiter on/off req/s "
        f"{paired_ratio(runs, 'sdk_limited', 'sdk', 'rps'):.2f}, req/CPU-s "
        f"{paired_ratio(runs, 'sdk_limited', 'sdk', 'cpu_rps'):.2f}; SDK with "
        f"RateLimit(1_000_000)/baseline req/s "
        f"{paired_ratio(runs, 'sdk_limited', BASELINE, 'rps'):.2f}, req/CPU-s "
        f"{paired_ratio(runs, 'sdk_limited', BASELINE, 'cpu_rps'):.2f}",
        "every process (server, each client run) runs with the same glibc "
        "MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ (harness.MALLOC_ENV): with the "
        "default dynamic threshold aiohttp's 256 KiB read buffer costs an mmap + munmap per "
        "answer in some processes and not in others, 12-15 us/request apart for the same "
        "code; with only the mmap threshold pinned, a buffer at the top of the heap is "
        "trimmed and faulted in again per answer in some processes (1 minor fault/request, "
        "about 10 us) and not in others: 'faults/req' shows it",
        "limiter paired A/B: one process holds both clients and alternates blocks of 1,000 "
        "requests (off/on, then on/off); the figure is the median of per-block-pair ratios. "
        "Separate 4 s runs differ by about 5% on this shared machine, more than the 0.97 "
        "threshold; adjacent blocks cancel that drift",
        "server: raw asyncio protocol in its own process, using a fraction of the client's "
        "CPU per request (so it is not the bottleneck); client CPU us/req is the client "
        "process's time.process_time over the timed requests; 'x baseline (CPU)' compares "
        "requests per client CPU-second, which neighbours' load on a shared machine "
        "disturbs far less than wall-clock req/s",
    ]
    return ScenarioResult(
        name="overhead",
        title=f"1. Overhead: {n:,} GET /v1/kpis/{{id}}, concurrency {concurrency}, "
        f"{len(KPI_BODY)} B body",
        params={"requests": n, "warmup": warmup, "concurrency": concurrency, "runs": options.runs},
        columns=[
            Column("rps", "req/s"),
            Column("cpu_us", "client CPU us/req", "{:,.1f}"),
            Column("server_cpu_us", "server CPU us/req", "{:,.1f}"),
            Column("faults_per_req", "faults/req", "{:.2f}"),
            Column("ratio", "x baseline (req/s)", "{:.2f}"),
            Column("cpu_ratio", "x baseline (CPU)", "{:.2f}"),
        ],
        rows=rows,
        targets=targets,
        notes=notes,
    )


def profile(variant: str = "sdk", n: int = 10_000, top: int = 30) -> None:
    """Profile one variant with cProfile against a fresh server; print the top entries."""
    import cProfile
    import pstats

    with Server() as server:
        client_run(variant, server.base_url, 2_000, 200, 64)  # imports, hooks, connections
        profiler = cProfile.Profile()
        profiler.enable()
        result = client_run(variant, server.base_url, n, 0, 64)
        profiler.disable()
    print(f"{variant}: {result}")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    # python -m benchmarks.overhead [VARIANT]: where the client's CPU goes (cProfile).
    import sys

    profile(sys.argv[1] if len(sys.argv) > 1 else "sdk")
