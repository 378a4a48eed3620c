"""Scenario 4, pagination: walk 100,000 KPIs with ``client.kpis.list(page_size=100)``.

The server generates each ``GET /v2/kpis?skip=&take=`` page on the fly (ids in
order, the ~1 KB KPI of scenario 1 with its own id and name), so it stays fast
and holds nothing. Variants: ``prefetch=1`` (the default: the next page is on
the wire while this one is consumed) and ``prefetch=0`` (one page at a time).

Every run is a fresh client process, ``rate_limit=None``. Reported: items/s by
the wall clock, and the peak memory growth of the walk: the peak RSS
(``ru_maxrss``) at the end minus the RSS just before the walk, which would grow
by about 100 MB if the walk kept its 100,000 ``Kpi`` objects. One extra run per
variant, not timed, measures the ``tracemalloc`` peak of the walk on fewer items.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

from benchmarks.harness import (
    Column,
    Options,
    Row,
    ScenarioResult,
    Server,
    interleave,
    medians,
    peak_rss_kib,
    run_child,
)
from benchmarks.servers import ACCOUNT_ID, TOKEN

__all__ = ["client_run", "run"]

VARIANTS = {"prefetch1": "kpis.list, prefetch=1 (default)", "prefetch0": "kpis.list, prefetch=0"}
PAGE_SIZE = 100


def _rss_now_kib() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def _walk(base_url: str, items: int, prefetch: int, trace: bool) -> dict[str, float]:
    from gtmhub_async import GtmhubClient

    async with GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=None) as client:
        # Warm up: the connection, cattrs' generated hooks, the first-call imports.
        async for _ in client.kpis.list(page_size=PAGE_SIZE, max_items=PAGE_SIZE * 2):
            pass
        gc.collect()
        rss0 = _rss_now_kib()
        if trace:
            tracemalloc.start()
        count = 0
        last = ""
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        async with client.kpis.list(
            page_size=PAGE_SIZE, max_items=items, prefetch=prefetch
        ) as kpis:
            async for kpi in kpis:
                count += 1
                last = kpi.id
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    if count != items or last != f"{items - 1:024x}":
        raise RuntimeError(f"walked {count} KPIs ending at {last!r}, expected {items}")
    return {
        "items_per_s": count / wall,
        "seconds": wall,
        "cpu_us_per_item": cpu / count * 1e6,
        "rss_growth_mib": max(0, peak_rss_kib() - rss0) / 1024,
        "tracemalloc_peak_mib": peak / 2**20,
    }


def client_run(base_url: str, items: int, prefetch: int, trace: bool) -> dict[str, float]:
    """Walk ``items`` KPIs in this (child) process and return the metrics."""
    result: dict[str, float] = asyncio.run(_walk(base_url, items, prefetch, trace))
    return result


def run(options: Options) -> ScenarioResult:
    """Run both variants, interleaved, then one traced run of each."""
    items = 20_000 if options.quick else 100_000
    traced_items = 2_000 if options.quick else 5_000
    title = f"4. Pagination: walk {items:,} KPIs, pages of {PAGE_SIZE}"
    params = {"items": items, "page_size": PAGE_SIZE, "runs": options.runs}
    columns = [
        Column("items_per_s", "items/s"),
        Column("cpu_us_per_item", "client CPU us/item", "{:.1f}"),
        Column("rss_growth_mib", "peak RSS growth MiB", "{:.1f}"),
        Column("tracemalloc_peak_mib", f"tracemalloc peak MiB ({traced_items:,} items)", "{:.2f}"),
    ]
    with Server("--total", str(items)) as server:

        def one(variant: str, _: int) -> dict[str, Any]:
            return run_child(
                "pagination",
                "client_run",
                base_url=server.base_url,
                items=items,
                prefetch=int(variant[-1]),
                trace=False,
            )

        runs = interleave(list(VARIANTS), options.runs, one, progress="pagination")
        traced = {
            variant: run_child(
                "pagination",
                "client_run",
                base_url=server.base_url,
                items=traced_items,
                prefetch=int(variant[-1]),
                trace=True,
            )
            for variant in VARIANTS
        }
    rows = []
    for variant, label in VARIANTS.items():
        med = medians(runs[variant])
        med["tracemalloc_peak_mib"] = traced[variant]["tracemalloc_peak_mib"]
        rows.append(Row(variant, label, med, runs[variant]))
    speedup = rows[0].median["items_per_s"] / rows[1].median["items_per_s"]
    return ScenarioResult(
        "pagination",
        title,
        params | {"traced_items": traced_items},
        columns,
        rows,
        notes=[
            f"prefetch=1 walks {speedup:.2f}x as fast as prefetch=0",
            "server: pages generated on the fly by the raw asyncio server in its own process",
            "RSS growth: ru_maxrss after the walk minus RSS before it, in a fresh process "
            "(keeping the 100,000 KPIs would cost about 100 MiB)",
        ],
    )
