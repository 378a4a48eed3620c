"""Bulk snapshot uploads against FakeGtmhub (faults, cancellation, journal) and a fast stub."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from gtmhub_async import (
    BulkResult,
    GtmhubClient,
    KpiSnapshotRequest,
    NotFoundError,
    RateLimit,
    RetryPolicy,
    SnapshotUpload,
    UnknownOutcomeError,
)
from gtmhub_async.bulk import ItemResult, snapshot_key
from gtmhub_async.routes import CREATE_SNAPSHOT
from gtmhub_async.testing import FakeGtmhub, Faults

DAY = date(2026, 11, 1)
GOOD_ID = "5e8c27e3dcdddaa4addbdee8"


def upload(kpi_id: str, value: float, **kwargs: Any) -> SnapshotUpload:
    return SnapshotUpload(kpi_id, KpiSnapshotRequest(group=DAY, value=value, **kwargs))


def uploads(
    kpi_ids: list[str], n: int, counter: list[int] | None = None
) -> Iterator[SnapshotUpload]:
    """Yield ``n`` uploads with distinct values (the value identifies the item)."""
    for i in range(n):
        if counter is not None:
            counter[0] += 1
        yield upload(kpi_ids[i % len(kpi_ids)], float(i))


def applied_values(fake: FakeGtmhub) -> Counter[float]:
    """Count how often the server applied each value (snapshots stored, even if deleted)."""
    return Counter(r.json["value"] for r in fake.requests if r.applied)


def posts_by_value(fake: FakeGtmhub) -> Counter[float]:
    return Counter(r.json["value"] for r in fake.requests if r.method == "POST")


def values(items: list[ItemResult]) -> set[float]:
    return {i.item.snapshot.value for i in items}


def assert_partition(result: BulkResult, consumed: int) -> None:
    assert result.consumed == consumed
    assert (
        result.succeeded_count
        + result.failed_count
        + result.unknown_count
        + result.not_attempted_count
        == consumed
    )
    assert result.failed_count == len(result.failed)
    assert result.unknown_count == len(result.unknown)
    assert result.not_attempted_count == len(result.not_attempted)
    indexes = [i.index for i in result.failed + result.unknown + result.not_attempted]
    assert len(indexes) == len(set(indexes))


def client_side_tasks() -> list[asyncio.Task[Any]]:
    """Return the pending tasks that are not the test's nor the fake server's own."""
    current = asyncio.current_task()
    left = []
    for task in asyncio.all_tasks():
        if task is current:
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        server = "aiohttp/web" in filename or "asyncio/locks" in filename
        if not server or task.get_name().startswith("gtmhub_async"):
            left.append(task)
    return left


@pytest.fixture
async def fake() -> AsyncIterator[FakeGtmhub]:
    async with FakeGtmhub(seed=11) as server:
        yield server


@pytest.fixture
async def client(fake: FakeGtmhub) -> AsyncIterator[GtmhubClient]:
    async with fake.client(rate_limit=None, seed=1) as c:
        yield c


async def test_uploads_each_item_once_and_reports_progress(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    kpis = [k["id"] for k in fake.add_kpis(3)]
    items = list(uploads(kpis, 50))
    progress: list[tuple[int, int | None]] = []
    result = await client.kpis.upload_snapshots(
        items, concurrency=8, on_progress=lambda d, t: progress.append((d, t))
    )
    assert result.ok
    assert result.succeeded_count == 50 and sorted(
        result.succeeded, key=lambda u: u.snapshot.value
    ) == sorted(items, key=lambda u: u.snapshot.value)
    assert applied_values(fake) == Counter(float(i) for i in range(50))
    assert progress == [(d, 50) for d in range(1, 51)]
    assert repr(result) == (
        "BulkResult(succeeded=50 (skipped 0), failed=0, unknown=0, not_attempted=0)"
    )


async def test_bad_items_fail_alone_with_their_error(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = [k["id"] for k in fake.add_kpis(1)]
    items: list[Any] = [
        upload(kpi, 1.0),
        {"kpi_id": kpi, "value": 2.0},
        SnapshotUpload("not-an-id", KpiSnapshotRequest(group=DAY, value=3.0)),
        SnapshotUpload(kpi, {"group": "2026-11-01", "value": 4.0}),  # type: ignore[arg-type]
        upload(GOOD_ID, 5.0),  # a well-formed id of no KPI: the server answers 404
        upload(kpi, 6.0),
    ]
    result = await client.kpis.upload_snapshots(items, concurrency=3)
    assert_partition(result, 6)
    assert not result.ok
    assert {u.snapshot.value for u in result.succeeded} == {1.0, 6.0}
    failed = {f.index: f for f in result.failed}
    assert sorted(failed) == [1, 2, 3, 4]
    assert isinstance(failed[1].error, TypeError)
    assert str(failed[1].error) == "each item must be a SnapshotUpload, got dict"
    assert isinstance(failed[2].error, ValueError)
    assert str(failed[2].error) == "kpi_id must be 24 hex digits, got 'not-an-id'"
    assert isinstance(failed[3].error, TypeError)
    assert str(failed[3].error) == "snapshot must be a KpiSnapshotRequest, got dict"
    assert isinstance(failed[4].error, NotFoundError)
    assert failed[4].item is items[4]
    assert fake.count("POST") == 3  # the bad items were never sent


async def test_2000_items_under_throttling_errors_and_resets_land_in_one_outcome_each() -> None:
    faults = Faults(
        error_rate=0.12,
        statuses=(429, 503, 429, 500),
        retry_after=0,
        reset_rate=0.03,
        reset_after_write_rate=0.03,
        error_after_write_rate=0.02,
    )
    async with FakeGtmhub(seed=7, faults=faults) as fake:
        kpis = [k["id"] for k in fake.add_kpis(20)]
        retry = RetryPolicy(max_attempts=6, backoff_base=0.001, backoff_max=0.005)
        async with fake.client(rate_limit=None, retry=retry, seed=7) as client:
            result = await client.kpis.upload_snapshots(uploads(kpis, 2000), concurrency=32)
        applied = applied_values(fake)
        attempts: dict[float, list[str]] = {}
        for r in fake.requests:
            outcome = "dropped" if r.dropped else str(r.status)
            attempts.setdefault(r.json["value"], []).append(outcome)
    assert_partition(result, 2000)
    assert result.succeeded_count > 1500
    # Exact, whatever the order in which the 32 workers reach the server: the k-th request
    # gets the k-th fault draw, every refusal causes exactly one more request, and every
    # other answer ends its item, so the 2000 endings are the first 2000 ending draws.
    # No item is refused 6 times in a row with this seed, so none fails.
    assert (result.succeeded_count, result.unknown_count, result.failed_count) == (1768, 232, 0)
    succeeded = {u.snapshot.value for u in result.succeeded}
    unknown = values(result.unknown)
    failed = values(result.failed)
    assert len(succeeded) == result.succeeded_count
    assert succeeded | unknown | failed == {float(i) for i in range(2000)}
    # Each succeeded item was applied exactly once, however often it was throttled.
    assert all(applied[v] == 1 for v in succeeded)
    # A failed item was definitely not applied.
    assert all(applied[v] == 0 for v in failed)
    # Only refusals (429, 503 with Retry-After) were ever followed by another attempt: an
    # unknown item was never sent again after the attempt that left its outcome unknown.
    for v, seen in attempts.items():
        assert all(a in ("429", "503") for a in seen[:-1]), (v, seen)
    assert all(attempts[v][-1] in ("dropped", "500") and applied[v] <= 1 for v in unknown)
    assert all(attempts[v][-1] == "201" for v in succeeded)
    assert all(isinstance(u.error, UnknownOutcomeError) for u in result.unknown)
    assert sum(applied.values()) == result.succeeded_count + sum(applied[v] for v in unknown)


async def test_stop_on_error_stops_reading_and_reports_the_items_read_meanwhile(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = [k["id"] for k in fake.add_kpis(1)]
    release = asyncio.Event()
    produced = 0

    async def source() -> AsyncIterator[SnapshotUpload]:
        nonlocal produced
        for i in range(100):
            if i == 1:
                await release.wait()  # the second item comes only after the first failed
            produced += 1
            yield upload(kpi, float(i))

    fake.script([400])
    result = await client.kpis.upload_snapshots(
        source(), concurrency=2, stop_on_error=True, on_progress=lambda d, t: release.set()
    )
    assert_partition(result, 2)
    assert produced == 2
    assert [f.index for f in result.failed] == [0]
    assert [n.index for n in result.not_attempted] == [1]
    assert result.not_attempted[0].error is None
    assert not result.ok
    assert fake.count("POST") == 1


async def test_stop_on_error_with_a_list_leaves_the_rest_unread(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = [k["id"] for k in fake.add_kpis(1)]
    items: list[Any] = [upload(kpi, float(i)) for i in range(10)]
    items[4] = "bad"
    result = await client.kpis.upload_snapshots(items, concurrency=1, stop_on_error=True)
    assert_partition(result, 5)
    assert result.succeeded_count == 4 and result.failed[0].index == 4


async def test_cancel_while_waiting_for_the_limiter_is_not_attempted_not_unknown() -> None:
    async with FakeGtmhub(seed=3) as fake:
        kpis = [k["id"] for k in fake.add_kpis(2)]
        # One start per second: after the first item, every worker waits in the limiter.
        async with fake.client(rate_limit=RateLimit(1)) as client:
            counter = [0]
            first = asyncio.Event()
            result = BulkResult()
            task = asyncio.create_task(
                client.kpis.upload_snapshots(
                    uploads(kpis, 100, counter),
                    concurrency=4,
                    result=result,
                    on_progress=lambda done, total: first.set(),
                )
            )
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert_partition(result, counter[0])
            assert result.succeeded_count == 1
            assert result.unknown_count == 0
            assert result.not_attempted_count == counter[0] - 1 >= 3
            assert fake.count("POST") == 1


async def test_cancel_mid_upload_leaves_no_task_and_keeps_the_partial_result(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "upload.jsonl"
    async with FakeGtmhub(seed=3, latency=0.005) as fake:
        kpis = [k["id"] for k in fake.add_kpis(5)]
        async with fake.client(rate_limit=None) as client:
            counter = [0]
            reached = asyncio.Event()
            result = BulkResult()
            task = asyncio.create_task(
                client.kpis.upload_snapshots(
                    uploads(kpis, 100_000, counter),
                    concurrency=8,
                    journal=journal,
                    # No fsync to wait for: every worker is in its POST when cancelled.
                    fsync="none",
                    result=result,
                    on_progress=lambda done, total: reached.set() if done >= 100 else None,
                )
            )
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client_side_tasks() == []
            consumed = counter[0]
            assert_partition(result, consumed)
            assert 100 <= result.succeeded_count < consumed
            # The requests in flight when it was cancelled may have been applied.
            assert 1 <= result.unknown_count <= 8
            assert all("cancelled while" in str(u.error) for u in result.unknown)
            lines = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
            intents = [line for line in lines if "intent" in line]
            assert len(intents) == result.succeeded_count + result.unknown_count
            assert Counter(line["outcome"] for line in lines if "outcome" in line) == {
                "succeeded": result.succeeded_count,
                "unknown": result.unknown_count,
            }
            first_applied = applied_values(fake)
            assert all(first_applied[u.snapshot.value] == 1 for u in result.succeeded)

            # The same job again, with the same journal: nothing is sent twice.
            fake.clear_requests()
            again = await client.kpis.upload_snapshots(
                uploads(kpis, consumed + 20), concurrency=8, journal=journal
            )
            assert_partition(again, consumed + 20)
            assert again.skipped_count == result.succeeded_count
            assert again.succeeded_count == result.succeeded_count + 20
            assert values(again.unknown) == values(result.unknown)
            assert all("retry_unknown=True" in str(u.error) for u in again.unknown)
            assert set(posts_by_value(fake)) == {float(i) for i in range(consumed, consumed + 20)}


async def test_journal_rerun_resends_failed_but_not_unknown_unless_asked(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    faults = Faults(error_rate=0.2, statuses=(400,), reset_after_write_rate=0.1)
    async with FakeGtmhub(seed=21, faults=faults) as fake:
        kpis = [k["id"] for k in fake.add_kpis(4)]
        async with fake.client(rate_limit=None) as client:
            first = await client.kpis.upload_snapshots(
                uploads(kpis, 300), journal=journal, keep_succeeded=False
            )
            assert first.failed_count and first.unknown_count
            assert first.succeeded == [] and first.succeeded_count > 0
            fake.set_faults(None)
            fake.clear_requests()
            second = await client.kpis.upload_snapshots(uploads(kpis, 300), journal=journal)
            assert_partition(second, 300)
            assert second.skipped_count == first.succeeded_count
            # Failed items were not applied: they are sent again. Unknown ones are not.
            assert set(posts_by_value(fake)) == values(first.failed)
            assert values(second.unknown) == values(first.unknown)
            assert second.failed_count == 0

            fake.clear_requests()
            third = await client.kpis.upload_snapshots(
                uploads(kpis, 300), journal=journal, retry_unknown=True
            )
            assert third.ok
            assert set(posts_by_value(fake)) == values(first.unknown)
            assert third.skipped_count == 300 - first.unknown_count


async def test_journal_counts_identical_items_and_survives_a_cut_line(
    tmp_path: Path, fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = [k["id"] for k in fake.add_kpis(1)]
    journal = tmp_path / "j.jsonl"
    same = [upload(kpi, 1.0), upload(kpi, 1.0)]
    assert (await client.kpis.upload_snapshots(same[:1], journal=journal)).ok
    # A crash cut the last line short: it is ignored, and the next line starts afresh.
    with journal.open("ab") as f:
        f.write(b'{"outcome": "succ')
    again = await client.kpis.upload_snapshots(same, journal=journal)
    assert again.skipped_count == 1 and again.succeeded_count == 2
    assert fake.count("POST") == 2
    third = await client.kpis.upload_snapshots(same, journal=journal)
    assert third.skipped_count == 2 and fake.count("POST") == 2
    key = snapshot_key(kpi, same[0].snapshot)
    assert key == snapshot_key(kpi.upper(), KpiSnapshotRequest(group=DAY, value=1))
    assert key != snapshot_key(kpi, KpiSnapshotRequest(group=DAY, value=1.0, time_zone="UTC"))
    intent, outcome = (orjson.loads(line) for line in journal.read_bytes().splitlines()[:2])
    assert intent == {"id": 0, "intent": key, "kpiId": kpi, "group": "2026-11-01", "value": 1.0}
    assert outcome == {"id": 0, "outcome": "succeeded", "key": key, "index": 0}


async def test_an_error_of_the_source_or_the_callback_ends_the_upload(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    (kpi,) = [k["id"] for k in fake.add_kpis(1)]

    def broken() -> Iterator[SnapshotUpload]:
        yield from uploads([kpi], 10)
        raise OSError("the CSV file went away")

    result = BulkResult()
    with pytest.raises(OSError, match="went away"):
        await client.kpis.upload_snapshots(broken(), concurrency=4, result=result)
    assert_partition(result, 10)
    assert result.succeeded_count == 10

    def progress(done: int, total: int | None) -> None:
        if done == 3:
            raise RuntimeError("dashboard down")

    result = BulkResult()
    with pytest.raises(RuntimeError, match="dashboard down"):
        await client.kpis.upload_snapshots(
            uploads([kpi], 1000), concurrency=4, on_progress=progress, result=result
        )
    # The items in flight finished: none was left of unknown outcome.
    assert result.unknown_count == 0 and 3 <= result.succeeded_count <= 6
    assert client_side_tasks() == []


async def test_a_closed_client_fails_before_reading_anything(fake: FakeGtmhub) -> None:
    client = fake.client(rate_limit=None)
    read = [0]
    with pytest.raises(Exception, match="async with"):
        await client.kpis.upload_snapshots(uploads([GOOD_ID], 5, read))
    assert read == [0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"items": upload(GOOD_ID, 1)}, TypeError, "items must be an iterable"),
        ({"items": "abc"}, TypeError, "items must be an iterable"),
        ({"concurrency": 0}, ValueError, "concurrency must be between 1 and 1000, got 0"),
        ({"concurrency": True}, TypeError, "concurrency must be an int, got bool"),
        ({"on_progress": 3}, TypeError, "on_progress must be callable"),
        ({"journal": 3}, TypeError, "journal must be a path"),
        ({"result": {}}, TypeError, "result must be a BulkResult"),
        ({"result": BulkResult(failed_count=1)}, ValueError, "must be a new, empty"),
    ],
)
async def test_arguments_are_checked_before_anything_is_sent(
    fake: FakeGtmhub, client: GtmhubClient, kwargs: dict[str, Any], error: type, message: str
) -> None:
    kwargs.setdefault("items", [upload(GOOD_ID, 1)])
    with pytest.raises(error, match=message):
        await client.kpis.upload_snapshots(**kwargs)
    assert fake.requests == []


class _StubKpis:
    def __init__(self) -> None:
        self.calls = 0


class _StubSession:
    """Stands for the client's Session: every call is a create_snapshot that succeeds."""

    def __init__(self, kpis: _StubKpis) -> None:
        self.kpis = kpis

    async def call(self, route: object, params: object, *, state: object = None) -> None:
        assert route is CREATE_SNAPSHOT
        self.kpis.calls += 1
        await asyncio.sleep(0)


class _StubClient:
    def __init__(self) -> None:
        self.kpis = _StubKpis()
        self._session = _StubSession(self.kpis)

    def open_session(self) -> _StubSession:
        return self._session


async def test_items_are_read_lazily_and_successes_can_be_counted_only() -> None:
    from gtmhub_async.bulk import upload_snapshots

    stub = _StubClient()
    produced = [0]
    most_in_flight = 0

    def progress(done: int, total: int | None) -> None:
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, produced[0] - done)

    n = 50_000
    result = await upload_snapshots(
        stub,  # type: ignore[arg-type]
        uploads([GOOD_ID], n, produced),
        concurrency=32,
        keep_succeeded=False,
        on_progress=progress,
    )
    assert result.succeeded_count == n == stub.kpis.calls and result.succeeded == []
    # Never more items read than workers busy: the generator is not drained into a list.
    assert most_in_flight <= 32


async def test_a_rerun_that_skips_everything_still_lets_the_loop_run(tmp_path: Path) -> None:
    from gtmhub_async.bulk import upload_snapshots

    journal = tmp_path / "j.jsonl"
    stub = _StubClient()
    first = await upload_snapshots(stub, uploads([GOOD_ID], 3000), journal=journal)  # type: ignore[arg-type]
    assert first.ok and stub.kpis.calls == 3000
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    seen: dict[int, int] = {}

    def progress(done: int, total: int | None) -> None:
        seen[done] = ticks

    again = await upload_snapshots(
        stub,  # type: ignore[arg-type]
        uploads([GOOD_ID], 3000),
        concurrency=2,
        journal=journal,
        on_progress=progress,
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert again.skipped_count == 3000 and stub.kpis.calls == 3000
    # The workers yielded to the loop while skipping, although nothing was sent.
    assert seen[3000] - seen[1] >= 5
