"""Read-back reconciliation: applied, absent (resent once), conflict; under seeded faults."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aioresponses import aioresponses

from gtmhub_async import (
    BadRequestError,
    BulkResult,
    GtmhubClient,
    KpiSnapshotRequest,
    RetryPolicy,
    SnapshotConflictError,
    SnapshotUpload,
    UnknownOutcomeError,
)
from gtmhub_async.bulk import ItemResult
from gtmhub_async.reconcile import WINDOW_DAYS, decide
from gtmhub_async.testing import FakeGtmhub, Faults

FIRST = date(2026, 1, 1)
SNAPSHOTS = "/v1/kpis/{kpiId}/snapshots"


def items_for(kpis: list[str], days: int) -> list[SnapshotUpload]:
    """One snapshot per KPI and day, each with its own value."""
    return [
        SnapshotUpload(k, KpiSnapshotRequest(group=FIRST + timedelta(days=d), value=d * 10.0 + i))
        for d in range(days)
        for i, k in enumerate(kpis)
    ]


def stored_per_day(fake: FakeGtmhub, kpis: list[str]) -> Counter[tuple[str, str, float]]:
    """Count the snapshots the fake stored per (KPI, day, value)."""
    return Counter((k, s["group"], s["value"]) for k in kpis for s in fake.received_snapshots(k))


def expected(items: list[SnapshotUpload]) -> Counter[tuple[str, str, float]]:
    return Counter((u.kpi_id, u.snapshot.group.isoformat(), u.snapshot.value) for u in items)


async def test_faulty_upload_with_reconcile_stores_every_item_exactly_once() -> None:
    faults = Faults(
        reset_after_write_rate=0.03, error_rate=0.02, statuses=(500,), retry_after=None
    )
    async with FakeGtmhub(seed=21) as fake:
        kpis = [k["id"] for k in fake.add_kpis(4, aggregation="sum")]
        items = items_for(kpis, 150)
        fake.set_faults(faults)
        async with fake.client(rate_limit=None, seed=2, retry=RetryPolicy(max_attempts=6)) as c:
            result = await c.kpis.upload_snapshots(items, concurrency=16, reconcile=True)
        posts = [r for r in fake.requests if r.route == SNAPSHOTS]
        drops = sum(1 for r in posts if r.fault == "reset" and r.applied)
        post_500s = sum(1 for r in posts if r.fault == "500")
        reads = sum(1 for r in fake.requests if r.route == "/v1/kpi-snapshots")
    assert result.ok and result.unknown_count == 0 and result.unknown == []
    assert result.succeeded_count == len(items) == 600
    assert stored_per_day(fake, kpis) == expected(items)  # 0 duplicates, 0 missing
    assert drops >= 5 and post_500s >= 5  # the faults did happen
    assert result.reconciled_count == drops
    # Each resent item had a 500 first (never applied); a 500 may repeat on the resend.
    assert 1 <= result.resent_count <= post_500s
    # A resent item: its earlier POSTs got a 500 (never applied), its last one succeeded.
    per_item: dict[tuple[str, str], list[str | None]] = {}
    for r in posts:
        per_item.setdefault((r.path, r.json["group"]), []).append(r.fault)
    resent = sum(1 for f in per_item.values() if len(f) > 1 and f[-1] is None)
    assert result.resent_count == resent
    assert result.conflict_count == 0
    # Read-back is batched per KPI and 31-day window (4 KPIs x 5 windows, 3 rounds at most;
    # a GET that got a 500 is retried).
    assert reads > 0
    assert reads <= 4 * 5 * 3 + post_500s
    assert "reconciled=" in repr(result) and f"resent={result.resent_count}" in repr(result)


def test_decide_applied_absent_conflict() -> None:
    item = SnapshotUpload("5e8c27e3dcdddaa4addbdee8", KpiSnapshotRequest(group=FIRST, value=2.5))
    assert decide(item, [2.5], 1) == "applied"
    assert decide(item, [2.5 + 1e-12], 1) == "applied"
    assert decide(item, [], 1) == "absent"
    assert decide(item, [5.0], 1) == "conflict"  # e.g. a sum KPI that got it twice
    assert decide(item, [None], 1) == "conflict"
    assert decide(item, [2.5, 2.5], 1) == "conflict"  # two raw snapshots on the day
    assert decide(item, [2.5], 2) == "conflict"  # another item of the upload writes the day
    assert decide(item, [], 2) == "absent"


async def test_conflict_stays_unknown_and_says_what_the_day_holds() -> None:
    async with FakeGtmhub(seed=4) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1, aggregation="sum")]
        day = FIRST.isoformat()
        fake.add_snapshot(kpi, day, 7.0)  # someone else wrote the day
        items = [
            SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST, value=3.0)),
            SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST + timedelta(days=1), value=4.0)),
        ]
        fake.script(["reset", "reset"])  # both applied, both answers lost
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(items, concurrency=1, reconcile=True)
    assert result.conflict_count == 1 and result.unknown_count == 1
    assert result.reconciled_count == 1 and result.resent_count == 0
    (left,) = result.unknown
    assert left.item == items[0]
    assert isinstance(left.error, SnapshotConflictError)
    assert isinstance(left.error, UnknownOutcomeError)
    assert str(left.error) == (
        f"KPI {kpi} on 2026-01-01 holds 10, not only the intended 3: cannot tell whether this "
        "snapshot was applied, so it was not sent again"
    )
    assert left.error.found == [10.0] and left.error.kpi_id == kpi
    assert len(fake.received_snapshots(kpi)) == 3  # nothing was resent


async def test_items_sharing_a_day_are_a_conflict_even_if_the_value_matches() -> None:
    async with FakeGtmhub(seed=4) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1, aggregation="last")]
        items = [
            SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST, value=3.0)),
            SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST, value=3.0)),
        ]
        fake.script(["reset", "reset"])
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(items, concurrency=1, reconcile=True)
    assert result.conflict_count == 2 and result.reconciled_count == 0
    assert all(
        str(r.error).endswith(
            "not only the intended 3; 1 other item(s) of this upload write that day: cannot "
            "tell whether this snapshot was applied, so it was not sent again"
        )
        for r in result.unknown
    )


@pytest.mark.parametrize("envelope", [False, True], ids=["array", "items-envelope"])
async def test_both_snapshot_list_shapes_are_read_back(envelope: bool) -> None:
    kpi = "5e8c27e3dcdddaa4addbdee8"
    base = "https://app.us.gtmhub.com/api"
    rows: list[dict[str, Any]] = [{"kpiId": kpi, "group": "2026-01-01", "value": 1.5}]
    body: Any = {"items": rows} if envelope else rows
    applied = SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST, value=1.5))
    absent = SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST + timedelta(days=2), value=9.0))
    result = BulkResult()
    for n, item in enumerate((applied, absent)):
        result.unknown.append(ItemResult(n, item, UnknownOutcomeError("dropped")))
    result.unknown_count = 2
    async with GtmhubClient(token="t", account_id=kpi, base_url=base, rate_limit=None) as client:
        with aioresponses() as mock:
            mock.get(
                f"{base}/v1/kpi-snapshots?from=2026-01-01&ids={kpi}&to=2026-01-03",
                payload=body,
            )
            mock.post(f"{base}/v1/kpis/{kpi}/snapshots", payload={"id": "x"})
            same = await client.kpis.reconcile(result)
    assert same is result
    assert result.reconciled_count == 1 and result.resent_count == 1
    assert result.unknown_count == 0 and result.unknown == [] and result.succeeded_count == 2
    assert result.succeeded == [applied, absent]


async def test_a_long_range_is_read_in_windows_of_31_days() -> None:
    async with FakeGtmhub(seed=5) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = [
            SnapshotUpload(kpi, KpiSnapshotRequest(group=FIRST + timedelta(days=d), value=d))
            for d in range(70)
        ]
        fake.script(["reset"] * 70)
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(items, concurrency=4, reconcile=True)
        reads = [r.query for r in fake.requests if r.route == "/v1/kpi-snapshots"]
    assert result.reconciled_count == 70 and result.ok
    spans = sorted((q["from"], q["to"]) for q in reads)
    assert spans == [
        ("2026-01-01", "2026-01-31"),
        ("2026-02-01", "2026-03-03"),
        ("2026-03-04", "2026-03-11"),
    ]
    assert WINDOW_DAYS == 31


async def test_reconcile_settles_journal_unknowns_on_a_rerun(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with FakeGtmhub(seed=6) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1, aggregation="sum")]
        items = items_for([kpi], 4)
        fake.script(["reset", None, 500, None])  # applied-then-dropped; 500: not applied
        async with fake.client(rate_limit=None) as client:
            first = await client.kpis.upload_snapshots(items, concurrency=1, journal=journal)
            assert first.unknown_count == 2
            again = await client.kpis.upload_snapshots(
                items, concurrency=1, journal=journal, reconcile=True
            )
            assert (again.skipped_count, again.reconciled_count, again.resent_count) == (2, 1, 1)
            assert again.ok
            third = await client.kpis.upload_snapshots(items, journal=journal, reconcile=True)
    assert third.skipped_count == 4 and third.reconciled_count == 0
    assert stored_per_day(fake, [kpi]) == expected(items)
    outcomes = [e for e in map(orjson.loads, journal.read_bytes().splitlines()) if e.get("was")]
    assert sorted((e["outcome"], e.get("reconciled", False)) for e in outcomes) == [
        ("failed", False),
        ("succeeded", True),
    ]


async def test_a_failed_read_back_leaves_the_item_unknown_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeGtmhub(seed=7) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = items_for([kpi], 1)
        fake.script(["reset", 400])  # the POST is dropped after applying; the read is refused
        with caplog.at_level(logging.WARNING, logger="gtmhub_async.reconcile"):
            async with fake.client(rate_limit=None) as client:
                result = await client.kpis.upload_snapshots(items, reconcile=True)
        reads = fake.count("GET", "/v1/kpi-snapshots")
    assert result.unknown_count == 1 and result.reconciled_count == 0 and reads == 1
    (left,) = result.unknown
    assert type(left.error) is UnknownOutcomeError  # the POST's own error, not a conflict
    assert f"reading back KPI {kpi} failed: " in caplog.text and "HTTP 400" in caplog.text


async def test_a_resend_that_is_refused_ends_failed() -> None:
    async with FakeGtmhub(seed=8) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = items_for([kpi], 1)
        fake.script([500, None, 400])  # POST refused (unknown); read: absent; resend: 400
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(items, reconcile=True)
    assert (result.unknown_count, result.failed_count, result.resent_count) == (0, 1, 0)
    (failed,) = result.failed
    assert isinstance(failed.error, BadRequestError) and failed.error.status == 400
    assert fake.received_snapshots(kpi) == []
