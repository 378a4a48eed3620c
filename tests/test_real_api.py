"""Survive the real API: FakeGtmhub with ``Quirks`` plays a server as FINDINGS.md allows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from gtmhub_async import (
    GtmhubClient,
    Kpi,
    KpiSnapshot,
    KpiSnapshotRequest,
    PaginationError,
    ResponseDecodeError,
    UnknownOutcomeError,
    UpdateKpiRequest,
    VirtualKpiGroup,
    WriteResult,
)
from gtmhub_async.bulk import SnapshotUpload
from gtmhub_async.converter import unstructure
from gtmhub_async.models import time_zone_form
from gtmhub_async.testing import FakeGtmhub, Quirks

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")


@pytest.fixture
async def fake() -> AsyncIterator[FakeGtmhub]:
    async with FakeGtmhub(seed=15) as server:
        yield server


@pytest.fixture
async def client(fake: FakeGtmhub) -> AsyncIterator[GtmhubClient]:
    async with fake.client(rate_limit=None) as c:
        yield c


def pages(fake: FakeGtmhub) -> list[tuple[str, str]]:
    return [(r.query["skip"], r.query["take"]) for r in fake.requests if r.path == "/v2/kpis"]


# --- Pagination -------------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_a_page_cap_below_the_page_size_still_yields_every_kpi_once(
    fake: FakeGtmhub, client: GtmhubClient, prefetch: int
) -> None:
    fake.add_kpis(350)
    fake.quirks = Quirks(page_cap=100)
    seen = [kpi.id async for kpi in client.kpis.list(page_size=250, prefetch=prefetch)]
    assert len(seen) == len(set(seen)) == 350
    assert seen == sorted(fake.kpis)
    # After the first short page the walk asks for the size it was served.
    assert pages(fake)[:2] == [("0", "250"), ("100", "100")]


async def test_a_server_ignoring_take_or_paging_by_limit_is_walked_to_the_end(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(230)
    for param in ("limit", "none"):
        fake.quirks = Quirks(page_param=param)
        fake.clear_requests()
        seen = [kpi.id async for kpi in client.kpis.list(page_size=40)]
        assert seen == sorted(fake.kpis), param
        # Served 100 for 40: the walk goes on from 100 (not 40) and asks for 100.
        assert pages(fake) == [("0", "40"), ("100", "100"), ("200", "30")]


async def test_a_walk_ends_on_an_empty_page_when_the_total_is_unreadable(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(120)
    # totalCount is inferred [I]: without it, only an empty page ends the walk.
    fake.quirks = Quirks(total_count=False)
    seen = [kpi.id async for kpi in client.kpis.list(page_size=50, prefetch=0)]
    assert seen == sorted(fake.kpis)
    assert pages(fake) == [("0", "50"), ("50", "50"), ("100", "50"), ("120", "20")]


@pytest.mark.parametrize("page_cap", [None, 30])
async def test_a_server_ignoring_skip_raises_pagination_error_and_does_not_hang(
    fake: FakeGtmhub, client: GtmhubClient, page_cap: int | None
) -> None:
    fake.add_kpis(250)
    fake.quirks = Quirks(ignore_skip=True, page_cap=page_cap)
    first = page_cap or 100
    seen: list[str] = []
    async with asyncio.timeout(10):
        with pytest.raises(PaginationError) as info:
            async for kpi in client.kpis.list(page_size=100):
                seen.append(kpi.id)
    assert seen == sorted(fake.kpis)[:first]
    assert info.value.position == first
    assert info.value.yielded == first
    assert str(info.value) == (
        f"listing KPIs made no progress at position {first} after {first} items: the page "
        "holds only KPIs already yielded (does the server ignore skip?); stopped instead "
        "of looping"
    )
    assert len(pages(fake)) <= 3


# --- Writes -----------------------------------------------------------------------------

REPLIES = ["empty", "{}", "id", "text"]


@pytest.mark.parametrize("reply", REPLIES)
async def test_every_write_reply_form_returns_normally(
    fake: FakeGtmhub, client: GtmhubClient, reply: str
) -> None:
    (kpi,) = fake.add_kpis(1)
    fake.quirks = Quirks(write_reply=reply)  # type: ignore[arg-type]  # parametrized literal
    created = await client.kpis.create_snapshot(
        kpi["id"], KpiSnapshotRequest(group=date(2026, 11, 1), value=42.5, time_zone="UTC+2")
    )
    assert isinstance(created, WriteResult)
    assert created.status == 201
    assert len(fake.snapshots[kpi["id"]]) == 1
    stored_id = fake.snapshots[kpi["id"]][0]["id"]
    assert created.id == (stored_id if reply == "id" else None)
    updated = await client.kpis.update(kpi["id"], UpdateKpiRequest(name="renamed"))
    assert isinstance(updated, WriteResult) and updated.status == 200
    assert fake.kpis[kpi["id"]]["name"] == "renamed"
    made = await client.kpis.create(_create_request())
    assert isinstance(made, WriteResult) and made.status == 201
    await client.users.favorite_kpi_virtual_group(group=VirtualKpiGroup.MY_KPIS)
    await client.kpis.delete(kpi["id"])
    assert fake.favorites[VirtualKpiGroup.MY_KPIS] is True
    assert kpi["id"] not in fake.kpis


def _create_request() -> Any:
    from gtmhub_async import CreateKpiRequest

    return CreateKpiRequest(name="made")


async def test_a_write_answering_its_object_returns_the_model(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = fake.add_kpis(1)
    created = await client.kpis.create_snapshot(
        kpi["id"], KpiSnapshotRequest(group=date(2026, 11, 1), value=1.0)
    )
    assert isinstance(created, KpiSnapshot) and created.value == 1.0
    # An object missing every field the SDK infers is still that model.
    fake.quirks = Quirks(kpi_overrides={"ownerIds": [{"id": 1}], "name": "still"})
    updated = await client.kpis.update(kpi["id"], UpdateKpiRequest(description="d"))
    assert isinstance(updated, Kpi) and updated.unread == {"ownerIds": [{"id": 1}]}


async def test_an_upload_of_30_answered_with_empty_bodies_counts_30_succeeded(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    kpis = fake.add_kpis(3)
    for reply in ("empty", "id"):
        fake.quirks = Quirks(write_reply=reply)
        items = [
            SnapshotUpload(
                k["id"],
                KpiSnapshotRequest(group=date(2026, 11, day), value=day, time_zone="UTC-7"),
            )
            for k in kpis
            for day in range(1, 11)
        ]
        result = await client.kpis.upload_snapshots(items)
        assert (result.succeeded_count, result.unknown_count, result.failed_count) == (30, 0, 0)
    assert sum(len(v) for v in fake.snapshots.values()) == 60


async def test_the_journal_records_writes_with_empty_bodies_as_succeeded(
    fake: FakeGtmhub, client: GtmhubClient, tmp_path: Any
) -> None:
    kpis = fake.add_kpis(3)
    fake.quirks = Quirks(write_reply="empty")
    items = [
        SnapshotUpload(k["id"], KpiSnapshotRequest(group=date(2026, 11, day), value=day))
        for k in kpis
        for day in range(1, 11)
    ]
    journal = tmp_path / "upload.journal"
    first = await client.kpis.upload_snapshots(items, journal=journal)
    assert (first.succeeded_count, first.unknown_count) == (30, 0)
    # A re-run with the same journal sends nothing: it records all 30 as succeeded.
    again = await client.kpis.upload_snapshots(items, journal=journal)
    assert (again.succeeded_count, again.skipped_count, again.unknown_count) == (30, 30, 0)
    assert sum(len(v) for v in fake.snapshots.values()) == 30


async def test_a_read_whose_body_is_not_the_model_stays_a_decode_error(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = fake.add_kpis(1)
    fake.quirks = Quirks(kpi_overrides={"id": 7})
    with pytest.raises(ResponseDecodeError) as info:
        await client.kpis.get(kpi["id"])
    assert "the body of kpis.get does not have the expected shape: expected a string" in str(
        info.value
    )


# --- Odd fields -------------------------------------------------------------------------


async def test_odd_inferred_kpi_fields_read_and_are_kept_unread(
    fake: FakeGtmhub, client: GtmhubClient, caplog: pytest.LogCaptureFixture
) -> None:
    (kpi,) = fake.add_kpis(1, ownerIds=[fake.user_id], formatting={"prefix": "$"})
    odd = {
        "formatting": {"fractionSize": None, "prefix": None},
        "dateCreated": 1700000000,
        "ownerIds": [{"id": fake.user_id}],
        "groupIds": None,
        "aggregation": 3,
    }
    fake.quirks = Quirks(kpi_overrides=odd)
    with caplog.at_level(logging.DEBUG, logger="gtmhub_async.models"):
        read = await client.kpis.get(kpi["id"])
        (listed,) = [k async for k in client.kpis.list()]
    for got in (read, listed):
        assert got.id == kpi["id"] and got.name == kpi["name"]
        assert got.formatting is not None
        assert got.formatting.fraction_size is None and got.formatting.prefix is None
        assert got.date_created is None and got.owner_ids == () and got.aggregation is None
        assert got.unread == {
            "dateCreated": 1700000000,
            "ownerIds": [{"id": fake.user_id}],
            "groupIds": None,
            "aggregation": 3,
        }
        # Nothing unread leaks into extra: sending extra back never echoes it.
        assert "ownerIds" not in got.extra and "dateCreated" not in got.extra
        assert unstructure(UpdateKpiRequest(name="n", extra=got.extra)) == {"name": "n"}
    assert any("Kpi.dateCreated could not be read" in r.getMessage() for r in caplog.records)


# --- Time zones -------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "UTC+2", "UTC-7", "UTC+05:30", "UTC-11:00"])
async def test_utc_offsets_are_sent_as_the_real_api_accepts_them(
    fake: FakeGtmhub, client: GtmhubClient, zone: str
) -> None:
    (kpi,) = fake.add_kpis(1)
    fake.quirks = Quirks(time_zone_forms=frozenset({"utc"}))
    assert time_zone_form(zone) == "utc"
    await client.kpis.create_snapshot(
        kpi["id"], KpiSnapshotRequest(group=date(2026, 11, 1), value=1, time_zone=zone)
    )
    assert fake.snapshots[kpi["id"]][0]["timeZone"] == zone


def test_time_zone_forms() -> None:
    assert time_zone_form("Europe/Sofia") == "iana"
    for unknown in ("UTC+15", "GMT+2", "Mars/Olympus", "+02:00", "utc+2", "UTC+2:60"):
        assert time_zone_form(unknown) is None, unknown
    with pytest.raises(TypeError, match="time_zone must be a str, got int"):
        KpiSnapshotRequest(group=date(2026, 1, 1), value=1, time_zone=2)  # type: ignore[arg-type]  # checked at run time


async def test_the_fake_refuses_a_time_zone_form_it_is_told_not_to_accept(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    from gtmhub_async import BadRequestError

    (kpi,) = fake.add_kpis(1)
    fake.quirks = Quirks(time_zone_forms=frozenset({"utc"}))
    with pytest.raises(BadRequestError) as info:
        await client.kpis.create_snapshot(
            kpi["id"],
            KpiSnapshotRequest(group=date(2026, 11, 1), value=1, time_zone="Europe/Sofia"),
        )
    assert info.value.message == (
        "timeZone 'Europe/Sofia' does not match the account's report settings"
    )


# --- The favourite PUT ------------------------------------------------------------------


async def test_the_favourite_put_is_not_resent_once_it_may_have_arrived(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    # Whether the PUT sets or toggles is unknown [I]: a resent toggle would undo it.
    fake.script(["500-after-write"])
    with pytest.raises(UnknownOutcomeError) as info:
        await client.users.favorite_kpi_virtual_group(group=VirtualKpiGroup.UNGROUPED)
    assert "may have been applied" in str(info.value)
    assert fake.count("PUT", "/v1/users/kpi-virtual-group/favorite") == 1
    assert fake.favorites[VirtualKpiGroup.UNGROUPED] is True
