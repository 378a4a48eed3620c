"""The demo's steps: create KPIs (settling unknown outcomes), upload, list back, read back.

Each step records what it found in a ``DemoReport`` and prints one line; the
report says at the end whether anything was lost, duplicated or left unknown.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Final

import attrs
import click

from gtmhub_async.bulk import BulkResult, SnapshotUpload
from gtmhub_async.cli.app import CliError, plural, row_reason
from gtmhub_async.cli.progress import Progress
from gtmhub_async.client import GtmhubClient
from gtmhub_async.errors import UnknownOutcomeError
from gtmhub_async.models import (
    Aggregation,
    CreateKpiRequest,
    Kpi,
    KpiFormatting,
    KpiSnapshot,
    KpiSnapshotRequest,
    TargetOperator,
)

if TYPE_CHECKING:
    from gtmhub_async.cli.demo_faults import DemoFaults
    from gtmhub_async.testing import FakeGtmhub

__all__ = [
    "DemoConfig",
    "DemoReport",
    "count_duplicates",
    "create_kpis",
    "list_back",
    "upload",
    "verify",
]

_RECONCILE_ROUNDS: Final = 5


@attrs.frozen
class DemoConfig:
    """The demo's knobs: sizes, the fake server's rate limit and latency, faults, seed."""

    # A plain list of fields with defaults (its shape resembles session.py's settings).
    kpis: int = 30
    days: int = 365
    #: The fake's rate limit, requests per second; the client is configured with the same.
    rate: int = 800
    concurrency: int = 32
    latency: float = 0.01
    faults: bool = True
    seed: int = 7
    first_day: date = date(2025, 1, 1)

    def days_list(self) -> list[date]:
        """Return the days the demo uploads, from ``first_day`` on."""
        start = self.first_day.toordinal()
        return [date.fromordinal(start + d) for d in range(self.days)]


@attrs.define
class DemoReport:
    """What the demo did and found, for its summary and exit status."""

    created: int = 0
    create_reconciled: int = 0
    uploaded: BulkResult = attrs.field(factory=BulkResult)
    upload_seconds: float = 0.0
    upload_requests: int = 0
    unresolved: list[SnapshotUpload] = attrs.field(factory=list)
    listed: int = 0
    list_ok: bool = False
    checked: int = 0
    mismatches: list[str] = attrs.field(factory=list)
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        """Return True when nothing was lost, duplicated or left unresolved."""
        return (
            self.uploaded.failed_count == 0
            and self.uploaded.not_attempted_count == 0
            and not self.unresolved
            and self.list_ok
            and not self.mismatches
            and self.duplicates == 0
        )


def _demo_value(rng_seed: int, kpi: int, day: int) -> float:
    # Deterministic per (seed, KPI, day) and distinct enough to catch a swapped value.
    x = (rng_seed * 1_000_003 + kpi * 7_919 + day * 104_729) % 1_000_003
    return round(x / 1000.0, 3)


async def _create_one(client: GtmhubClient, request: CreateKpiRequest, report: DemoReport) -> Kpi:
    """Create a KPI; after an unknown outcome, look it up by its unique name before retrying."""
    for _ in range(_RECONCILE_ROUNDS):
        try:
            created = await client.kpis.create(request)
            if isinstance(created, Kpi):
                return created
            # Applied, but the body is not a KPI [I]: read it back by its unique name.
            page = await client.kpis.list_page(filter={"name": request.name}, take=2)
            if page.items:
                return page.items[0]
            raise CliError(f"KPI {request.name!r} was created but cannot be found by its name")
        except UnknownOutcomeError:
            page = await client.kpis.list_page(filter={"name": request.name}, take=2)
            report.create_reconciled += 1
            if page.items:
                return page.items[0]
    raise CliError(f"could not create KPI {request.name!r}: every attempt had an unknown outcome")


async def create_kpis(client: GtmhubClient, config: DemoConfig, report: DemoReport) -> list[Kpi]:
    """Create the demo's KPIs (last, sum and avg in turn) and print how it went."""
    aggregations = [Aggregation.LAST, Aggregation.SUM, Aggregation.AVG]
    requests = [
        CreateKpiRequest(
            name=f"demo KPI {i + 1:02d} ({aggregations[i % 3].value})",
            aggregation=aggregations[i % 3],
            target_operator=TargetOperator.SHOULD_INCREASE,
            formatting=KpiFormatting(suffix=" units", fraction_size=3),
        )
        for i in range(config.kpis)
    ]
    created = await asyncio.gather(*(_create_one(client, r, report) for r in requests))
    report.created = len(created)
    reconciled = (
        f"; {plural(report.create_reconciled, 'create')} with an unknown outcome "
        "settled by looking the name up"
        if report.create_reconciled
        else ""
    )
    click.echo(f"created {plural(len(created), 'KPI')} (last, sum, avg){reconciled}")
    return list(created)


async def upload(
    client: GtmhubClient,
    fake: FakeGtmhub,
    chaos: DemoFaults,
    created: list[Kpi],
    config: DemoConfig,
    report: DemoReport,
    *,
    progress: bool,
) -> dict[str, dict[date, float]]:
    """Upload every KPI's days with reconcile=True; return the values expected on the server."""
    # Day by day across the KPIs, so that every KPI is in progress all along.
    expected: dict[str, dict[date, float]] = {k.id: {} for k in created}
    items: list[SnapshotUpload] = []
    for d, day in enumerate(config.days_list()):
        for k, kpi in enumerate(created):
            value = _demo_value(config.seed, k, d)
            expected[kpi.id][day] = value
            items.append(SnapshotUpload(kpi.id, KpiSnapshotRequest(group=day, value=value)))
    click.echo(
        f"uploading {len(items):,} snapshots ({config.kpis} KPIs x {config.days} days), "
        f"{config.concurrency} at a time"
    )
    bar = Progress(len(items), stream=sys.stderr, enabled=progress, label="uploading")
    result = report.uploaded

    def on_progress(done: int, total: int | None) -> None:
        bar.update(done, failed=result.failed_count, unknown=result.unknown_count)
        chaos.on_progress(done)

    before = len(fake.requests)
    t0 = time.monotonic()
    try:
        await client.kpis.upload_snapshots(
            items,
            concurrency=config.concurrency,
            on_progress=on_progress,
            keep_succeeded=False,
            result=result,
            reconcile=True,
        )
    finally:
        bar.close()
    report.upload_seconds = time.monotonic() - t0
    report.upload_requests = len(fake.requests) - before
    click.echo(
        f"uploaded in {report.upload_seconds:.1f} s: {result.succeeded_count:,} "
        f"succeeded, {result.failed_count:,} failed, {result.unknown_count:,} unknown, "
        f"{result.not_attempted_count:,} not attempted "
        f"({report.upload_requests / report.upload_seconds:,.0f} requests/s)"
    )
    for failure in result.failed[:5]:
        click.echo(f"  failed: {row_reason(failure.error)}")
    settled = result.reconciled_count + result.resent_count + result.conflict_count
    if settled or result.unknown_count:
        report.unresolved = [r.item for r in result.unknown if isinstance(r.item, SnapshotUpload)]
        click.echo(
            "reconciled the unknown outcomes by reading the day back (the library's "
            f"reconcile=True): {result.reconciled_count:,} had been applied, "
            f"{result.resent_count:,} had not and were sent again"
            + (f", {result.conflict_count:,} conflicting" if result.conflict_count else "")
            + (f", {len(report.unresolved):,} still unknown" if report.unresolved else "")
        )
    for failure in result.failed:
        if isinstance(failure.item, SnapshotUpload):
            expected[failure.item.kpi_id].pop(failure.item.snapshot.group, None)
    return expected


async def list_back(
    client: GtmhubClient, created: list[Kpi], config: DemoConfig, report: DemoReport
) -> None:
    """List the demo's KPIs page by page: every one there, none twice."""
    ids = {k.id for k in created}
    listed: list[str] = []
    page_size = max(1, math.ceil(config.kpis / 4))
    async with client.kpis.list(
        filter={"name": {"$regex": "^demo KPI "}}, page_size=page_size
    ) as walk:
        async for kpi in walk:
            listed.append(kpi.id)
    report.listed = len(listed)
    report.list_ok = len(listed) == len(set(listed)) and set(listed) == ids
    pages = math.ceil(len(listed) / page_size) if listed else 0
    click.echo(
        f"listed {plural(len(listed), 'KPI')} back in {plural(pages, 'page')} of "
        f"{page_size}: {'all there, no duplicates' if report.list_ok else 'MISMATCH'}"
    )


async def verify(
    client: GtmhubClient,
    expected: dict[str, dict[date, float]],
    config: DemoConfig,
    report: DemoReport,
) -> None:
    """Read every KPI's daily values back and compare them with what was uploaded."""
    days = config.days_list()
    first, last = days[0], days[-1]
    skip = {(i.kpi_id, i.snapshot.group) for i in report.unresolved}

    async def one(kpi_id: str) -> list[KpiSnapshot]:
        return await client.kpi_snapshots.list(ids=[kpi_id], from_date=first, to_date=last)

    answers = await asyncio.gather(*(one(kpi_id) for kpi_id in expected))
    for kpi_id, rows in zip(expected, answers, strict=True):
        want = expected[kpi_id]
        got = {r.group: r.value for r in rows if r.kpi_id == kpi_id and r.group is not None}
        for day in sorted(set(want) | set(got)):
            if (kpi_id, day) in skip:
                continue
            report.checked += 1
            if day not in got:
                report.mismatches.append(f"KPI {kpi_id} {day}: missing")
            elif day not in want:
                report.mismatches.append(f"KPI {kpi_id} {day}: unexpected value {got[day]}")
            elif (value := got[day]) is None or not math.isclose(value, want[day], rel_tol=1e-9):
                report.mismatches.append(
                    f"KPI {kpi_id} {day}: {got[day]} on the server, {want[day]} uploaded"
                )
    verdict = "all match" if not report.mismatches else plural(len(report.mismatches), "mismatch")
    click.echo(
        f"read back {report.checked:,} daily values of {plural(len(expected), 'KPI')}: "
        f"{verdict}" + (f" ({len(skip):,} unknown days not checked)" if skip else "")
    )
    for line in report.mismatches[:10]:
        click.echo(f"  {line}")


def count_duplicates(fake: FakeGtmhub, created: list[Kpi], report: DemoReport) -> None:
    """Count snapshots stored twice, on the fake's store (the API cannot show it for 'last')."""
    for kpi in created:
        per_day: dict[str, int] = {}
        for snapshot in fake.received_snapshots(kpi.id):
            per_day[snapshot["group"]] = per_day.get(snapshot["group"], 0) + 1
        report.duplicates += sum(n - 1 for n in per_day.values() if n > 1)
