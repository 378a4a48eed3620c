"""Scenario 2, bulk upload: 2,000 snapshot POSTs to a server that answers after 20 ms.

Variants, each in a fresh client process:

- ``requests``: the vendor's reference page, a sequential loop of
  ``requests.post(url, data=json.dumps(body), headers=headers)`` with no Session
  (so a new TCP connection per request), the baseline;
- ``requests_session``: the same loop through one ``requests.Session``;
- ``aiohttp_seq``: a sequential loop over one ``aiohttp.ClientSession``;
- ``sdk``: ``client.kpis.upload_snapshots(items, concurrency=32)``, ``rate_limit=None``.

A sequential loop needs 2,000 x 20 ms = 40+ s per run, too long for 5 runs: the
three sequential loops send a subset (``SEQUENTIAL_SUBSET`` requests) and their
requests/s is per-request throughput, which is what a longer loop would get too
(the 20 ms are a fixed timer on the server; nothing else grows with the count).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, timedelta
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
from benchmarks.servers import ACCOUNT_ID, KPI_IDS, TOKEN

__all__ = ["client_run", "run"]

LATENCY = 0.020
CONCURRENCY = 32
SEQUENTIAL_SUBSET = 100
VARIANTS = {
    "requests": "requests.post loop, no Session (vendor's page; baseline)",
    "requests_session": "requests.Session().post loop",
    "aiohttp_seq": "aiohttp sequential loop, one ClientSession",
    "sdk": f"SDK upload_snapshots, concurrency={CONCURRENCY}",
}
BASELINE = "requests"


def _bodies(n: int) -> list[tuple[str, dict[str, Any]]]:
    first = date(2026, 1, 1)
    return [
        (
            KPI_IDS[i % 40],
            {"group": (first + timedelta(days=i // 40)).isoformat(), "value": i * 1.5},
        )
        for i in range(n)
    ]


def _headers() -> dict[str, str]:
    # As on the vendor's page: the token, the account id and the content type.
    return {
        "Authorization": f"Bearer {TOKEN}",
        "gtmhub-accountId": ACCOUNT_ID,
        "Content-Type": "application/json",
    }


def _requests_loop(base_url: str, n: int, session: bool) -> float:
    import requests

    headers = _headers()
    work = _bodies(n)
    t0 = time.perf_counter()
    if session:
        with requests.Session() as s:
            for kpi_id, body in work:
                r = s.post(
                    f"{base_url}/v1/kpis/{kpi_id}/snapshots",
                    data=json.dumps(body),
                    headers=headers,
                )
                r.raise_for_status()
    else:
        for kpi_id, body in work:
            r = requests.post(
                f"{base_url}/v1/kpis/{kpi_id}/snapshots", data=json.dumps(body), headers=headers
            )
            r.raise_for_status()
    return time.perf_counter() - t0


async def _aiohttp_loop(base_url: str, n: int) -> float:
    import aiohttp

    headers = _headers()
    work = _bodies(n)
    async with aiohttp.ClientSession() as http:
        t0 = time.perf_counter()
        for kpi_id, body in work:
            async with http.post(
                f"{base_url}/v1/kpis/{kpi_id}/snapshots", data=json.dumps(body), headers=headers
            ) as r:
                r.raise_for_status()
                await r.read()
        return time.perf_counter() - t0


async def _sdk(base_url: str, n: int) -> float:
    from gtmhub_async import GtmhubClient, KpiSnapshotRequest
    from gtmhub_async.bulk import SnapshotUpload

    items = [
        SnapshotUpload(
            kpi_id, KpiSnapshotRequest(group=date.fromisoformat(b["group"]), value=b["value"])
        )
        for kpi_id, b in _bodies(n)
    ]
    async with GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=None) as client:
        t0 = time.perf_counter()
        result = await client.kpis.upload_snapshots(
            items, concurrency=CONCURRENCY, keep_succeeded=False
        )
        seconds = time.perf_counter() - t0
    if not result.ok or result.succeeded_count != n:
        raise RuntimeError(f"the upload did not succeed for every item: {result!r}")
    return seconds


def client_run(variant: str, base_url: str, n: int) -> dict[str, float]:
    """Send ``n`` snapshots with one variant in this (child) process."""
    import aiohttp  # noqa: F401  # imported before the clock starts, as the loops' own imports
    import requests  # noqa: F401

    import gtmhub_async  # noqa: F401

    cpu0 = time.process_time()
    if variant == "sdk":
        seconds = asyncio.run(_sdk(base_url, n))
    elif variant == "aiohttp_seq":
        seconds = asyncio.run(_aiohttp_loop(base_url, n))
    else:
        seconds = _requests_loop(base_url, n, session=variant == "requests_session")
    cpu = time.process_time() - cpu0
    return {"rps": n / seconds, "seconds": seconds, "requests": n, "cpu_us": cpu / n * 1e6}


def run(options: Options) -> ScenarioResult:
    """Run the variants interleaved against one server with 20 ms of latency."""
    n = 400 if options.quick else 2_000
    subset = 40 if options.quick else SEQUENTIAL_SUBSET
    variants = list(VARIANTS)
    with Server("--latency", str(LATENCY)) as server:

        def one(variant: str, _: int) -> dict[str, Any]:
            count = n if variant == "sdk" else subset
            return run_child(
                "bulk", "client_run", variant=variant, base_url=server.base_url, n=count
            )

        runs = interleave(variants, options.runs, one, progress="bulk")
    base = medians(runs[BASELINE])
    rows = []
    for variant in variants:
        med = medians(runs[variant])
        med["ratio"] = med["rps"] / base["rps"]
        note = f"{subset} of {n:,} requests" if variant != "sdk" else ""
        rows.append(Row(variant, VARIANTS[variant], med, runs[variant], note))
    targets = []
    notes = [
        f"server answers every POST after {LATENCY * 1000:.0f} ms (a timer); "
        f"the sequential loops send {subset} requests per run, req/s is per-request throughput",
        "seconds: the median time of one run (for the subset on the sequential rows)",
    ]
    ratio = rows[-1].median["ratio"]
    targets.append(Target("SDK upload_snapshots vs the requests loop", ratio, 25, ratio >= 25))
    notes.append(f"paired ratio SDK/requests: {paired_ratio(runs, 'sdk', BASELINE, 'rps'):.1f}")
    return ScenarioResult(
        name="bulk",
        title=f"2. Bulk upload: {n:,} snapshot POSTs, {LATENCY * 1000:.0f} ms server latency",
        params={
            "requests": n,
            "sequential_subset": subset,
            "latency_s": LATENCY,
            "concurrency": CONCURRENCY,
            "runs": options.runs,
        },
        columns=[
            Column("rps", "req/s", "{:,.1f}"),
            Column("seconds", "s per run", "{:.2f}"),
            Column("cpu_us", "client CPU us/req", "{:,.0f}"),
            Column("ratio", "x requests loop", "{:.1f}"),
        ],
        rows=rows,
        targets=targets,
        notes=notes,
    )
