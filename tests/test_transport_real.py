"""The transport against real sockets on 127.0.0.1: resets, pooled connections, the session."""

from __future__ import annotations

import asyncio
import errno
from datetime import date
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gtmhub_async import (
    GtmhubClient,
    KpiSnapshotRequest,
    RetryPolicy,
    TransportError,
    UnexpectedRedirectError,
    UnknownOutcomeError,
)
from gtmhub_async.testing import FakeGtmhub, Faults

ONE = RetryPolicy(max_attempts=1)
ACCOUNT = "5be26318e5274a0007f17f61"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
FAST = RetryPolicy(backoff_base=0.0)


def snapshot() -> KpiSnapshotRequest:
    return KpiSnapshotRequest(group=date(2026, 11, 1), value=1.0)


async def test_a_post_reset_by_the_peer_after_it_was_sent_is_not_resent() -> None:
    async with FakeGtmhub(seed=3) as fake:
        kpi = fake.add_kpi(name="k")
        fake.script(["rst"])
        async with fake.client(retry=FAST, rate_limit=None) as client:
            with pytest.raises(UnknownOutcomeError) as info:
                await client.kpis.create_snapshot(kpi["id"], snapshot())
        assert client.stats.attempts == 1
        assert client.stats.transport_errors == 1
    message = str(info.value)
    assert "may have been applied: the connection failed after the request was sent" in message
    assert info.value.attempts == 1
    # A real reset (ECONNRESET), not the clean end of stream of the "reset" fault.
    cause = info.value.__cause__
    assert isinstance(cause, aiohttp.ClientOSError), repr(cause)
    assert cause.errno == errno.ECONNRESET
    assert [r.method for r in fake.requests] == ["POST"]
    assert fake.requests[0].dropped and fake.requests[0].fault == "rst"
    assert len(fake.received_snapshots(kpi["id"])) == 1


async def test_a_get_reset_by_the_peer_is_retried_and_answered() -> None:
    async with FakeGtmhub(seed=3) as fake:
        kpi = fake.add_kpi(name="k")
        # aiohttp itself sends a GET again once after a reset, inside one SDK attempt:
        # two resets in a row reach the SDK, which retries.
        fake.script(["rst", "rst"])
        async with fake.client(retry=FAST, rate_limit=None) as client:
            got = await client.kpis.get(kpi["id"])
            assert (client.stats.attempts, client.stats.retries) == (2, 1)
            assert client.stats.transport_errors == 1
    assert got.id == kpi["id"]
    assert [r.fault for r in fake.requests] == ["rst", "rst", None]


async def test_the_injected_session_is_the_one_that_sends() -> None:
    started: list[str] = []

    async def on_start(
        session: Any, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        started.append(params.method)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with FakeGtmhub(seed=4) as fake:
        kpi = fake.add_kpi(name="k")
        async with aiohttp.ClientSession(
            headers={"X-Injected": "yes"}, trace_configs=[trace]
        ) as http:
            async with fake.client(session=http, rate_limit=None) as client:
                await client.kpis.get(kpi["id"])
            assert not http.closed  # the caller's session stays the caller's
        assert started == ["GET"]
        assert fake.requests[0].headers.get("X-Injected") == "yes"


async def test_an_attempt_waits_for_a_pooled_connection_only_up_to_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gtmhub_async.session.CONNECT_TIMEOUT", 0.05)
    async with FakeGtmhub(seed=5, faults=Faults(stall_seconds=60.0)) as fake:
        kpi = fake.add_kpi(name="k")
        fake.script(["stall"])
        sent = asyncio.Event()

        async def on_sent(session: Any, context: Any, params: Any) -> None:
            sent.set()

        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(on_sent)
        connector = aiohttp.TCPConnector(limit=1)
        http = aiohttp.ClientSession(connector=connector, trace_configs=[trace])
        async with http, fake.client(session=http, rate_limit=None, retry=ONE) as client:
            # The only connection is held by a stalled GET.
            stalled = asyncio.create_task(client.kpis.get(kpi["id"], timeout=60.0))
            await sent.wait()
            with pytest.raises(TransportError) as info:
                await client.kpis.create_snapshot(kpi["id"], snapshot(), timeout=2.0)
            stalled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stalled
    # Nothing was sent, so the write is a plain transport error, not an unknown outcome.
    assert type(info.value) is TransportError
    assert str(info.value).startswith(
        f"POST /v1/kpis/{kpi['id']}/snapshots failed after 1 attempt: ConnectionTimeoutError"
    )
    assert [r.method for r in fake.requests] == ["GET"]


async def test_a_redirect_is_not_followed() -> None:
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("/api/v1/kpis/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"id": KPI_ID})

    app = web.Application()
    app.router.add_get(f"/api/v1/kpis/{KPI_ID}", moved)
    app.router.add_get("/api/v1/kpis/elsewhere", elsewhere)
    async with TestServer(app, host="127.0.0.1") as server:
        base = str(server.make_url("/api"))
        client = GtmhubClient("tok", ACCOUNT, base_url=base, rate_limit=None, retry=ONE)
        async with client:
            with pytest.raises(UnexpectedRedirectError) as info:
                await client.kpis.get(KPI_ID)
    assert hits == [f"/api/v1/kpis/{KPI_ID}"]
    assert info.value.status == 302
    assert "unexpected redirect to /api/v1/kpis/elsewhere; not followed" in str(info.value)
