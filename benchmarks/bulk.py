"""Scenario 2, bulk upload: 2,000 snapshot POSTs to a server that answers after 20 ms.

Variants, each in a fresh client process:

- ``requests``: the vendor's reference page, a sequential loop of
  ``requests.post(url, data=json.dumps(body), headers=headers)`` with no Session
  (so a new TCP connection per request), the baseline;
- ``requests_session``: the same loop through one ``requests.Session``;
- ``aiohttp_seq``: a sequential loop over one ``aiohttp.ClientSession``;
- ``sdk``: ``client.kpis.upload_snapshots(items, concurrency=32)``, ``rate_limit=None``;
- ``sdk_journal_none`` / ``_group`` / ``_line``: the same with a write-ahead journal in a
  temporary directory and that ``fsync`` mode (group: the default).

Measured once each, in a fresh process (not per run): the read-back cost per reconciled
item (``client.kpis.reconcile`` against FakeGtmhub after an upload with 20% of the POSTs
applied and then dropped), and the time and peak extra memory to read a journal of
``JOURNAL_ITEMS`` finished items (two lines each), generated in a temporary directory at run
time and deleted after, with the longest event-loop stall while it is read.

A sequential loop needs 2,000 x 20 ms = 40+ s per run, too long for 5 runs: the
three sequential loops send a subset (``SEQUENTIAL_SUBSET`` requests) and their
requests/s is per-request throughput, which is what a longer loop would get too
(the 20 ms are a fixed timer on the server; nothing else grows with the count).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
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
    "sdk_journal_none": "SDK upload_snapshots, journal, fsync=none",
    "sdk_journal_group": "SDK upload_snapshots, journal, fsync=group (default)",
    "sdk_journal_line": "SDK upload_snapshots, journal, fsync=line",
}
JOURNAL_ITEMS = 1_000_000
READBACK_ITEMS = 2_000
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


async def _sdk(base_url: str, n: int, fsync: str | None = None) -> float:
    from gtmhub_async import GtmhubClient, KpiSnapshotRequest
    from gtmhub_async.bulk import SnapshotUpload

    items = [
        SnapshotUpload(
            kpi_id, KpiSnapshotRequest(group=date.fromisoformat(b["group"]), value=b["value"])
        )
        for kpi_id, b in _bodies(n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "journal.jsonl") if fsync else None
        async with GtmhubClient(TOKEN, ACCOUNT_ID, base_url=base_url, rate_limit=None) as client:
            t0 = time.perf_counter()
            result = await client.kpis.upload_snapshots(
                items,
                concurrency=CONCURRENCY,
                keep_succeeded=False,
                journal=journal,
                fsync=fsync or "group",  # type: ignore[arg-type]  # a mode name from VARIANTS
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

    fsyncs = [0]
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        fsyncs[0] += 1
        real_fsync(fd)

    os.fsync = counted_fsync
    cpu0 = time.process_time()
    if variant.startswith("sdk"):
        fsync = variant.rpartition("_")[2] if "journal" in variant else None
        seconds = asyncio.run(_sdk(base_url, n, fsync))
    elif variant == "aiohttp_seq":
        seconds = asyncio.run(_aiohttp_loop(base_url, n))
    else:
        seconds = _requests_loop(base_url, n, session=variant == "requests_session")
    cpu = time.process_time() - cpu0
    return {
        "rps": n / seconds,
        "seconds": seconds,
        "requests": n,
        "cpu_us": cpu / n * 1e6,
        "fsyncs": fsyncs[0],
    }


def run(options: Options) -> ScenarioResult:
    """Run the variants interleaved against one server with 20 ms of latency."""
    n = 400 if options.quick else 2_000
    subset = 40 if options.quick else SEQUENTIAL_SUBSET
    variants = list(VARIANTS)
    with Server("--latency", str(LATENCY)) as server:

        def one(variant: str, _: int) -> dict[str, Any]:
            count = n if variant.startswith("sdk") else subset
            return run_child(
                "bulk", "client_run", variant=variant, base_url=server.base_url, n=count
            )

        runs = interleave(variants, options.runs, one, progress="bulk")
    base = medians(runs[BASELINE])
    rows = []
    for variant in variants:
        med = medians(runs[variant])
        med["ratio"] = med["rps"] / base["rps"]
        note = f"{subset} of {n:,} requests" if not variant.startswith("sdk") else ""
        rows.append(Row(variant, VARIANTS[variant], med, runs[variant], note))
    targets = []
    notes = [
        f"server answers every POST after {LATENCY * 1000:.0f} ms (a timer); "
        f"the sequential loops send {subset} requests per run, req/s is per-request throughput",
        "seconds: the median time of one run (for the subset on the sequential rows)",
    ]
    ratio = next(r for r in rows if r.variant == "sdk").median["ratio"]
    targets.append(Target("SDK upload_snapshots vs the requests loop", ratio, 25, ratio >= 25))
    notes.append(f"paired ratio SDK/requests: {paired_ratio(runs, 'sdk', BASELINE, 'rps'):.1f}")
    for mode in ("none", "group", "line"):
        paired = paired_ratio(runs, f"sdk_journal_{mode}", "sdk", "rps")
        notes.append(f"journal with fsync={mode} vs no journal (paired): {paired:.2f}x req/s")
    items = 100_000 if options.quick else JOURNAL_ITEMS
    read = run_child("bulk", "journal_read", items=items)
    back = run_child("bulk", "readback_cost", n=400 if options.quick else READBACK_ITEMS)
    notes.append(
        f"journal of {items:,} finished items ({read['lines']:,} lines, {read['mb']:.0f} MB) "
        f"read on re-run in {read['seconds']:.2f} s with {read['extra_mib']:.0f} MiB extra peak "
        f"memory, in a worker thread (longest event-loop stall {read['stall_ms']:.0f} ms)"
    )
    notes.append(
        f"read-back: {back['reconciled']:,} reconciled items in {back['seconds']:.3f} s, "
        f"{back['us_per_item']:.0f} us and {back['gets_per_item']:.3f} GETs per item "
        f"(FakeGtmhub in-process, {back['kpis']} KPIs)"
    )
    for what, value, limit, unit in (
        ("read time", read["seconds"], 10, "s"),
        ("extra peak memory", read["extra_mib"], 150, "MiB"),
    ):
        verdict = "met" if value < limit else "MISSED"
        notes.append(f"target: 1M-item journal {what} < {limit} {unit}: {value:.2f} ({verdict})")
    return ScenarioResult(
        name="bulk",
        title=f"2. Bulk upload: {n:,} snapshot POSTs, {LATENCY * 1000:.0f} ms server latency",
        params={
            "requests": n,
            "sequential_subset": subset,
            "latency_s": LATENCY,
            "concurrency": CONCURRENCY,
            "runs": options.runs,
            "journal_items": items,
            "journal_read_s": read["seconds"],
            "journal_read_extra_mib": read["extra_mib"],
            "journal_read_stall_ms": read["stall_ms"],
            "readback_us_per_item": back["us_per_item"],
            "readback_gets_per_item": back["gets_per_item"],
        },
        columns=[
            Column("rps", "req/s", "{:,.1f}"),
            Column("seconds", "s per run", "{:.2f}"),
            Column("cpu_us", "client CPU us/req", "{:,.0f}"),
            Column("fsyncs", "fsyncs per run", "{:,.0f}"),
            Column("ratio", "x requests loop", "{:.1f}"),
        ],
        rows=rows,
        targets=targets,
        notes=notes,
    )


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _write_journal(path: str, items: int) -> None:
    import hashlib

    import orjson

    chunk: list[bytes] = []
    with open(path, "wb") as f:
        for i in range(items):
            key = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).hexdigest()
            group = (date(2020, 1, 1) + timedelta(days=i % 3000)).isoformat()
            chunk.append(
                orjson.dumps(
                    {"id": i, "intent": key, "kpiId": KPI_IDS[i % 40], "group": group, "value": i}
                )
            )
            chunk.append(orjson.dumps({"id": i, "outcome": "succeeded", "key": key, "index": i}))
            if len(chunk) >= 20_000:
                f.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            f.write(b"\n".join(chunk) + b"\n")


def _generate(path: str, items: int) -> dict[str, float]:
    _write_journal(path, items)
    return {"bytes": os.path.getsize(path)}


def journal_read(items: int) -> dict[str, float]:
    """Generate a journal of ``items`` finished items, then read it as a re-run does."""
    from gtmhub_async.journal import read_journal

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "journal.jsonl")
        # Written by another process, so that this one's peak memory is the read's alone.
        size = run_child("bulk", "_generate", path=path, items=items)["bytes"]
        rss0 = _rss_kib("VmRSS")

        async def read() -> tuple[float, float]:
            stall = 0.0
            done = False

            async def ticker() -> None:
                nonlocal stall
                last = time.perf_counter()
                while not done:
                    await asyncio.sleep(0.001)
                    now = time.perf_counter()
                    stall = max(stall, now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            t0 = time.perf_counter()
            state = await asyncio.to_thread(read_journal, path)
            seconds = time.perf_counter() - t0
            done = True
            await tick
            if len(state.succeeded) != items:
                raise RuntimeError(f"read {len(state.succeeded)} items, wrote {items}")
            return seconds, stall

        seconds, stall = asyncio.run(read())
        extra = (_rss_kib("VmHWM") - rss0) / 1024
    return {
        "seconds": seconds,
        "extra_mib": extra,
        "stall_ms": stall * 1000,
        "lines": 2 * items,
        "mb": size / 1e6,
    }


def readback_cost(n: int) -> dict[str, float]:
    """Time ``client.kpis.reconcile`` over the unknown items of an upload with drops."""

    async def main() -> dict[str, float]:
        from gtmhub_async import KpiSnapshotRequest
        from gtmhub_async.bulk import SnapshotUpload
        from gtmhub_async.testing import FakeGtmhub, Faults

        kpis = 20
        async with FakeGtmhub(seed=1) as fake:
            ids = [k["id"] for k in fake.add_kpis(kpis, aggregation="sum")]
            items = [
                SnapshotUpload(
                    ids[i % kpis],
                    KpiSnapshotRequest(
                        group=date(2026, 1, 1) + timedelta(days=i // kpis), value=i
                    ),
                )
                for i in range(n)
            ]
            fake.set_faults(Faults(reset_after_write_rate=0.2))
            async with fake.client(rate_limit=None) as client:
                result = await client.kpis.upload_snapshots(items, concurrency=CONCURRENCY)
                fake.set_faults(None)
                gets0 = fake.count("GET")
                t0 = time.perf_counter()
                await client.kpis.reconcile(result, concurrency=CONCURRENCY)
                seconds = time.perf_counter() - t0
                gets = fake.count("GET") - gets0
        if result.unknown_count or not result.reconciled_count:
            raise RuntimeError(f"reconcile left {result!r}")
        count = result.reconciled_count
        return {
            "reconciled": count,
            "seconds": seconds,
            "us_per_item": seconds / count * 1e6,
            "gets_per_item": gets / count,
            "kpis": kpis,
        }

    return asyncio.run(main())
