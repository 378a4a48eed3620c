"""The transport against real sockets on 127.0.0.1: resets, pooled connections, the session."""

from __future__ import annotations

import asyncio
import errno
from datetime import date
from typing import Any

import aiohttp
import pytest

from gtmhub_async import (
    KpiSnapshotRequest,
    RetryPolicy,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.testing import FakeGtmhub, Faults

ONE = RetryPolicy(max_attempts=1)
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
