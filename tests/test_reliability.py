"""Reliability under faults, and security at the edges, against the real FakeGtmhub server."""

from __future__ import annotations

import asyncio
import logging
import random
import tracemalloc
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import gtmhub_async
from gtmhub_async import (
    GtmhubClient,
    GtmhubError,
    KpiSnapshotRequest,
    RetryPolicy,
    UnexpectedRedirectError,
    UnknownOutcomeError,
    UpdateKpiRequest,
)
from gtmhub_async.testing import FakeGtmhub, Faults

PACKAGE = str(Path(gtmhub_async.__file__).parent)
TESTING = str(Path(gtmhub_async.__file__).parent / "testing")


def _sdk_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Return the bytes held by SDK code, the fake server's store excluded."""
    return sum(
        stat.size
        for stat in snapshot.statistics("filename")
        if stat.traceback[0].filename.startswith(PACKAGE)
        and not stat.traceback[0].filename.startswith(TESTING)
    )


def _client_tasks() -> set[asyncio.Task[Any]]:
    """Return the running tasks but the fake server's connection handlers."""
    return {t for t in asyncio.all_tasks() if "RequestHandler" not in repr(t.get_coro())}


async def test_mixed_workload_under_faults_loses_and_duplicates_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """5,000 calls at concurrency 64 with 10% 5xx, resets and 2-second stalls."""
    caplog.set_level(logging.DEBUG, logger="gtmhub_async")
    faults = Faults(
        error_rate=0.10,
        statuses=(500, 502, 503),
        retry_after=None,
        reset_rate=0.02,
        reset_after_write_rate=0.02,
        stall_rate=0.002,
        stall_seconds=2.0,
    )
    rng = random.Random(2026)
    async with FakeGtmhub(seed=11) as fake:
        kpis = [k["id"] for k in fake.add_kpis(50, aggregation="sum")]
        fake.set_faults(faults)
        policy = RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_max=0.05)
        outcomes: dict[str, list[str]] = {"ok": [], "failed": [], "unknown": []}
        idempotent_failures: list[BaseException] = []
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for i in range(5000):
            queue.put_nowait((i, rng.choice(["get", "get", "page", "patch", "post", "post"])))

        async with fake.client(rate_limit=None, retry=policy, seed=3, timeout=20) as client:

            async def worker() -> None:
                while not queue.empty():
                    i, kind = queue.get_nowait()
                    kpi_id = kpis[i % len(kpis)]
                    if kind == "post":
                        tag = f"item-{i}"
                        snap = KpiSnapshotRequest(
                            group=date(2026, 1, 1) + timedelta(days=i % 300),
                            value=1.0,
                            description=tag,
                        )
                        try:
                            await client.kpis.create_snapshot(kpi_id, snap)
                            outcomes["ok"].append(tag)
                        except UnknownOutcomeError:
                            outcomes["unknown"].append(tag)
                        except GtmhubError:
                            outcomes["failed"].append(tag)
                        continue
                    try:
                        if kind == "get":
                            await client.kpis.get(kpi_id)
                        elif kind == "page":
                            await client.kpis.list_page(skip=i % 40, take=10, sort="name")
                        else:
                            await client.kpis.update(kpi_id, UpdateKpiRequest(description=str(i)))
                    except GtmhubError as exc:
                        idempotent_failures.append(exc)

            before = _client_tasks()
            await asyncio.gather(*(worker() for _ in range(64)))
            # Memory: after the warm-up above, 1,000 more calls must leave nothing of the
            # SDK's behind (tracemalloc only sees what is allocated after it starts).
            tracemalloc.start(1)
            try:
                start = _sdk_bytes(tracemalloc.take_snapshot())
                for i in range(5000, 6000):
                    queue.put_nowait((i, "get" if i % 2 else "post"))
                await asyncio.gather(*(worker() for _ in range(64)))
                end = _sdk_bytes(tracemalloc.take_snapshot())
            finally:
                tracemalloc.stop()
            assert _client_tasks() == before
            stats = client.stats

        assert idempotent_failures == []
        assert sum(len(v) for v in outcomes.values()) == sum(
            1
            for i in range(6000)
            if f"item-{i}" in {*outcomes["ok"], *outcomes["failed"], *outcomes["unknown"]}
        )
        sent: dict[str, int] = {}
        for record in fake.requests:
            if record.method == "POST" and isinstance(record.json, dict):
                tag = record.json["description"]
                sent[tag] = sent.get(tag, 0) + 1
        # No write was sent twice: in this workload no failure proves a POST never left.
        assert max(sent.values()) == 1
        received: dict[str, int] = {}
        for kpi_id in kpis:
            for snap in fake.received_snapshots(kpi_id):
                received[snap["description"]] = received.get(snap["description"], 0) + 1
        # Nothing duplicated, every success stored once, every failure never stored.
        assert all(n == 1 for n in received.values())
        assert all(received.get(tag) == 1 for tag in outcomes["ok"])
        assert not any(tag in received for tag in outcomes["failed"])
        assert outcomes["unknown"], "the faults should leave some writes unknown"
        assert stats.retries > 300 and stats.server_errors > 300
        # The SDK's own memory does not grow with the number of calls.
        assert end - start < 64 * 1024, (start, end)
    token = fake.token
    assert all(token not in r.getMessage() for r in caplog.records)


async def test_redirect_is_not_followed_and_credentials_stay_home() -> None:
    other_hits: list[dict[str, str]] = []

    async def other(request: web.Request) -> web.Response:
        other_hits.append(dict(request.headers))
        return web.json_response({"id": "5e8c27e3dcdddaa4addbdee8"})

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", other)
    other_runner = web.AppRunner(other_app)
    await other_runner.setup()
    other_site = web.TCPSite(other_runner, "127.0.0.1", 0)
    await other_site.start()
    other_port = other_runner.addresses[0][1]

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{other_port}/steal")

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        token = "secret-token-abc"
        client = GtmhubClient(
            token, "5be26318e5274a0007f17f61", base_url=f"http://127.0.0.1:{port}/api"
        )
        async with client:
            with pytest.raises(UnexpectedRedirectError) as info:
                await client.kpis.get("5e8c27e3dcdddaa4addbdee8")
        assert info.value.status == 302
        assert f"unexpected redirect to http://127.0.0.1:{other_port}/steal" in str(info.value)
        assert other_hits == []
    finally:
        await runner.cleanup()
        await other_runner.cleanup()


async def test_trace_configs_see_no_token_beyond_the_authorization_header() -> None:
    seen: list[str] = []

    async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(str(params.url))
        seen.extend(f"{k}" for k in params.headers)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with FakeGtmhub(seed=1) as fake:
        (kpi,) = fake.add_kpis(1)
        async with fake.client(trace_configs=[trace]) as client:
            await client.kpis.get(kpi["id"])
        assert seen and all(fake.token not in s for s in seen)


async def test_path_parameters_cannot_change_the_route() -> None:
    async with FakeGtmhub(seed=1) as fake, fake.client() as client:
        for bad in ("../users", "5e8c27e3dcdddaa4addbdee8/../x", "5e8c27e3dcdddaa4addbdee8?a=1"):
            with pytest.raises(ValueError, match="kpi_id must be 24 hex digits"):
                await client.kpis.delete(bad)
        assert fake.requests == []
