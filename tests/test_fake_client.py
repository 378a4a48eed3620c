"""Tests of the SDK client against the fake server, through the pytest plugin's fixtures."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from gtmhub_async import (
    AuthenticationError,
    CreateKpiRequest,
    GtmhubClient,
    KpiSnapshotRequest,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    UnknownOutcomeError,
    UpdateKpiRequest,
)
from gtmhub_async.testing import FakeGtmhub, Faults
from gtmhub_async.testing.plugin import fake_gtmhub, gtmhub_client

__all__ = ["fake_gtmhub", "gtmhub_client"]  # fixtures, imported for pytest to find


@pytest.fixture
def fake_gtmhub_options() -> dict[str, Any]:
    return {"seed": 5, "faults": Faults(retry_after=0)}


@pytest.fixture
def gtmhub_client_options() -> dict[str, Any]:
    return {"retry": RetryPolicy(backoff_base=0.0), "rate_limit": None}


async def test_round_trip(fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient) -> None:
    client = gtmhub_client
    kpi = await client.kpis.create(CreateKpiRequest(name="Revenue", aggregation="sum"))
    assert fake_gtmhub.kpis[kpi.id]["name"] == "Revenue"
    for value in (1.0, 2.5):
        await client.kpis.create_snapshot(
            kpi.id, KpiSnapshotRequest(group=date(2024, 1, 1), value=value)
        )
    rows = await client.kpis.snapshots(ids=[kpi.id])
    assert [(r.group, r.value) for r in rows] == [(date(2024, 1, 1), 3.5)]
    updated = await client.kpis.update(kpi.id, UpdateKpiRequest(description="d"))
    assert updated.description == "d" and updated.name == "Revenue"
    await client.kpis.bulk_update({kpi.id: UpdateKpiRequest(name="R")})
    assert (await client.kpis.get(kpi.id)).name == "R"
    await client.users.favorite_kpi_virtual_group(group="myKpis", favorite=True)
    assert fake_gtmhub.favorites == {"myKpis": True}
    await client.kpis.delete(kpi.id)
    with pytest.raises(NotFoundError) as caught:
        await client.kpis.get(kpi.id)
    assert caught.value.request_id == fake_gtmhub.requests[-1].request_id


async def test_token_never_reaches_the_log(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_gtmhub.script([503, 429, None])
    await gtmhub_client.kpis.list_page()
    kpi = fake_gtmhub.add_kpi(name="k")
    fake_gtmhub.script(["reset"])
    with pytest.raises(UnknownOutcomeError):
        await gtmhub_client.kpis.create_snapshot(
            kpi["id"], KpiSnapshotRequest(group=date(2024, 1, 1), value=1.0)
        )
    # The SDK logged its retries (at every level, from every logger) without the token...
    sdk = [r for r in caplog.records if r.name.startswith("gtmhub_async")]
    assert sum("retrying GET /v2/kpis" in r.getMessage() for r in sdk) == 2
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text}" for r in caplog.records)
    assert fake_gtmhub.token not in logged
    # ...and the fake's own request log keeps the account but not the credentials.
    assert fake_gtmhub.requests[0].headers["gtmhub-accountId"] == fake_gtmhub.account_id
    assert all(fake_gtmhub.token not in repr(r) for r in fake_gtmhub.requests)


async def test_list_walks_more_than_two_pages(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    created = fake_gtmhub.add_kpis(1050)
    seen = [kpi.id async for kpi in gtmhub_client.kpis.list(page_size=500)]
    assert sorted(seen) == sorted(k["id"] for k in created)
    assert fake_gtmhub.count("GET", "/v2/kpis") == 3


async def test_reads_are_retried_after_injected_errors(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    fake_gtmhub.script([503, 502, None])
    page = await gtmhub_client.kpis.list_page()
    assert page.total_count == 0
    assert fake_gtmhub.count("GET", "/v2/kpis") == 3


async def test_a_snapshot_is_not_resent_after_a_500(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    kpi = fake_gtmhub.add_kpi(name="k")
    fake_gtmhub.script(["500-after-write"])
    with pytest.raises(UnknownOutcomeError, match="applied: the server answered 500"):
        await gtmhub_client.kpis.create_snapshot(
            kpi["id"], KpiSnapshotRequest(group=date(2024, 1, 1), value=1.0)
        )
    assert len(fake_gtmhub.received_snapshots(kpi["id"])) == 1
    assert fake_gtmhub.count("POST", "/v1/kpis/{kpiId}/snapshots") == 1


async def test_a_reset_after_write_is_an_unknown_outcome(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    kpi = fake_gtmhub.add_kpi(name="k")
    fake_gtmhub.script(["reset"])
    with pytest.raises(UnknownOutcomeError):
        await gtmhub_client.kpis.create_snapshot(
            kpi["id"], KpiSnapshotRequest(group=date(2024, 1, 1), value=1.0)
        )
    assert len(fake_gtmhub.received_snapshots(kpi["id"])) == 1


async def test_a_snapshot_is_resent_after_a_429(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    kpi = fake_gtmhub.add_kpi(name="k")
    fake_gtmhub.script([429])
    await gtmhub_client.kpis.create_snapshot(
        kpi["id"], KpiSnapshotRequest(group=date(2024, 1, 1), value=1.0)
    )
    assert len(fake_gtmhub.received_snapshots(kpi["id"])) == 1
    assert fake_gtmhub.count("POST", "/v1/kpis/{kpiId}/snapshots") == 2


async def test_malformed_answer(fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient) -> None:
    fake_gtmhub.script(["malformed"])
    with pytest.raises(ResponseDecodeError):
        await gtmhub_client.kpis.list_page()


async def test_wrong_token(fake_gtmhub: FakeGtmhub) -> None:
    client = GtmhubClient("wrong", fake_gtmhub.account_id, base_url=fake_gtmhub.base_url)
    async with client:
        with pytest.raises(AuthenticationError):
            await client.kpis.list_page()


async def test_server_rate_limit_reaches_the_client() -> None:
    async with FakeGtmhub(rate_limit=(1, 30.0)) as fake:
        retry = RetryPolicy(max_attempts=1)
        async with fake.client(retry=retry, rate_limit=None) as client:
            await client.kpis.list_page()
            with pytest.raises(RateLimitError) as caught:
                await client.kpis.list_page()
    assert caught.value.retry_after == 30
