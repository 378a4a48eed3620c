"""Rules of gtmhub_async.reconcile that mutation testing found unchecked (tests/MUTATION.md)."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_bulk import GOOD_ID
from test_bulk_mutants import key, seen
from test_journal import lines

from gtmhub_async import BulkResult, KpiSnapshotRequest, SnapshotUpload, UnknownOutcomeError
from gtmhub_async.bulk import ItemResult
from gtmhub_async.errors import BadRequestError, SnapshotConflictError, excerpt
from gtmhub_async.journal import Journal, JournalState
from gtmhub_async.models import KpiSnapshot
from gtmhub_async.reconcile import reconcile_result
from gtmhub_async.routes import CREATE_SNAPSHOT, LIST_SNAPSHOTS
from gtmhub_async.session import CallState

OTHER_ID = "5e8c27e3dcdddaa4addbdee9"
CONFLICT_END = ": cannot tell whether this snapshot was applied, so it was not sent again"


def day(n: int) -> date:
    return date(2026, 11, n)


def on(n: int, value: float, kpi: str = GOOD_ID, zone: str | None = None) -> SnapshotUpload:
    return SnapshotUpload(kpi, KpiSnapshotRequest(group=day(n), value=value, time_zone=zone))


def row(n: int | None, value: float | None, kpi: str | None = GOOD_ID) -> KpiSnapshot:
    return KpiSnapshot(kpi_id=kpi, group=None if n is None else day(n), value=value)


def unknown(*items: SnapshotUpload) -> BulkResult:
    result = BulkResult()
    for n, item in enumerate(items):
        result.unknown.append(ItemResult(n, item, UnknownOutcomeError(f"lost {n}")))
    result.unknown_count = len(items)
    return result


class Server:
    """Answer read-backs with ``rows`` and each POST with the next of ``answers`` (None: ok)."""

    def __init__(self, rows: list[KpiSnapshot], answers: list[BaseException | None]) -> None:
        self.rows = rows
        self.answers = answers
        self.reads: list[object] = []
        self.posts: list[float] = []
        self.reading = 0
        self.most_reading = 0
        self.read_error: BaseException | None = None

    def open_session(self) -> Server:
        return self

    async def call(self, route: object, params: Any, *, state: CallState | None = None) -> Any:
        if route is LIST_SNAPSHOTS:
            self.reads.append(params)
            if self.read_error is not None:
                raise self.read_error
            self.reading += 1
            self.most_reading = max(self.most_reading, self.reading)
            for _ in range(3):
                await asyncio.sleep(0)
            self.reading -= 1
            return list(self.rows)  # every KPI's rows, as an API that ignored ``ids``
        assert route is CREATE_SNAPSHOT
        self.posts.append(params.snapshot.value)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return None


async def test_the_read_back_asks_in_the_items_zone_and_keeps_only_its_kpis_dated_rows() -> None:
    item = on(1, 3.0, zone="Europe/Sofia")
    server = Server([], [])
    server.rows = [
        row(1, 9.0, kpi=OTHER_ID),  # another KPI on that day: not this item's day
        row(None, 4.0),  # no day: ignored
        row(1, 3.0, kpi=GOOD_ID.upper()),  # ids compare without case
    ]
    result = unknown(item)
    assert await reconcile_result(server, result) is result
    assert server.reads == [
        LIST_SNAPSHOTS.params(
            ids=[GOOD_ID], time_zone="Europe/Sofia", from_date=day(1), to_date=day(1)
        )
    ]
    assert server.posts == []
    assert (result.reconciled_count, result.conflict_count, result.succeeded) == (1, 0, [item])


async def test_a_result_with_nothing_to_settle_is_returned_as_is() -> None:
    server = Server([], [])
    result = BulkResult()
    assert await reconcile_result(server, result) is result
    assert server.reads == []


async def test_a_failed_read_back_is_logged_with_the_kpi_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server([], [])
    refused = BadRequestError(400, "no such KPI")
    server.read_error = refused
    result = unknown(on(1, 3.0))
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.reconcile"):
        await reconcile_result(server, result)
    assert [r.getMessage() for r in caplog.records if r.name == "gtmhub_async.reconcile"] == [
        f"reading back KPI {GOOD_ID} failed: {refused}"
    ]
    assert seen(result.unknown) == [(0, on(1, 3.0), UnknownOutcomeError, "lost 0")]


async def test_a_day_the_counts_do_not_name_has_one_item_and_a_conflict_names_each_value() -> None:
    applied, clash, absent = on(2, 5.0), on(1, 3.0), on(3, 7.0)
    server = Server([row(1, 3.0), row(1, None), row(2, 5.0)], [None])
    result = unknown(clash, applied, absent)
    await reconcile_result(server, result, day_counts={})
    assert seen(result.unknown) == [
        (
            0,
            clash,
            SnapshotConflictError,
            f"KPI {GOOD_ID} on 2026-11-01 holds 3, no value, not only the intended 3"
            + CONFLICT_END,
        )
    ]
    error = result.unknown[0].error
    assert isinstance(error, SnapshotConflictError) and error.found == [3.0, None]
    assert result.succeeded == [applied, absent] and server.posts == [7.0]
    # The resend needed no second round: the conflict is not read back again.
    assert (result.conflict_count, result.reconciled_count, result.resent_count) == (1, 1, 1)
    assert len(server.reads) == 1


async def test_without_day_counts_unknown_items_sharing_a_day_are_counted() -> None:
    first, second = on(1, 1.0), on(1, 1.0)
    server = Server([row(1, 1.0)], [])
    result = unknown(first, second)
    await reconcile_result(server, result)
    message = (
        f"KPI {GOOD_ID} on 2026-11-01 holds 1, not only the intended 1; 1 other item(s) of "
        "this upload write that day" + CONFLICT_END
    )
    assert seen(result.unknown) == [
        (0, first, SnapshotConflictError, message),
        (1, second, SnapshotConflictError, message),
    ]
    assert result.conflict_count == 2 and result.reconciled_count == 0


async def test_the_journal_closes_each_entry_and_records_each_resend(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path), JournalState(next_id=10), fsync="none")
    items = [on(1, 1.0), on(2, 2.0), on(3, 3.0), on(4, 4.0)]
    k0, k1, k2, k3 = map(key, items)
    refused = BadRequestError(400, "value is bad")
    dropped = UnknownOutcomeError("connection reset")
    server = Server([row(1, 1.0)], [refused, None, dropped, None])
    entries = {0: 4, 1: 5, 2: 6, 3: 7}
    result = unknown(*items)
    await reconcile_result(server, result, journal=journal, entries=entries)
    await journal.aclose()
    assert server.posts == [2.0, 3.0, 4.0, 4.0]
    assert entries == {}
    assert seen(result.failed) == [(1, items[1], BadRequestError, str(refused))]
    assert result.succeeded == [items[0], items[2], items[3]] and result.unknown == []
    assert (result.reconciled_count, result.resent_count) == (1, 2)

    def resent(old: int, new: int, k: str, n: int) -> list[dict[str, Any]]:
        return [
            {"id": old, "outcome": "failed", "key": k, "index": n, "was": "unknown"},
            {
                "id": new,
                "intent": k,
                "kpiId": GOOD_ID,
                "group": f"2026-11-0{n + 1}",
                "value": n + 1,
            },
        ]

    assert lines(path) == [
        {
            "id": 4,
            "outcome": "succeeded",
            "key": k0,
            "index": 0,
            "was": "unknown",
            "reconciled": True,
        },
        *resent(5, 10, k1, 1),
        {
            "id": 10,
            "outcome": "failed",
            "key": k1,
            "index": 1,
            "error": f"BadRequestError: {excerpt(str(refused))}",
        },
        *resent(6, 11, k2, 2),
        {"id": 11, "outcome": "succeeded", "key": k2, "index": 2},
        *resent(7, 12, k3, 3),
        {
            "id": 12,
            "outcome": "unknown",
            "key": k3,
            "index": 3,
            "error": "UnknownOutcomeError: connection reset",
        },
        # The second round reads day 4 back: absent again, so entry 12 is closed and resent.
        *resent(12, 13, k3, 3),
        {"id": 13, "outcome": "succeeded", "key": k3, "index": 3},
    ]


async def test_a_journal_without_entries_closes_nothing_by_id(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path), JournalState(), fsync="none")
    item = on(1, 1.0)
    await reconcile_result(Server([row(1, 1.0)], []), unknown(item), journal=journal)
    await journal.aclose()
    assert lines(path) == [
        {
            "outcome": "succeeded",
            "key": key(item),
            "index": 0,
            "was": "unknown",
            "reconciled": True,
        }
    ]


async def test_a_resend_that_stays_unknown_keeps_its_latest_error_for_three_rounds() -> None:
    item = on(1, 1.0)
    answers: list[BaseException | None] = [UnknownOutcomeError(f"reset {n}") for n in range(3)]
    server = Server([], answers)
    result = unknown(item)
    await reconcile_result(server, result)
    assert server.posts == [1.0, 1.0, 1.0] and len(server.reads) == 3
    assert seen(result.unknown) == [(0, item, UnknownOutcomeError, "reset 2")]
    assert (result.unknown_count, result.resent_count) == (1, 0)


async def test_at_most_16_read_backs_run_at_once_by_default() -> None:
    kpis = [f"5e8c27e3dcdddaa4addb{n:04x}" for n in range(20)]
    server = Server([], [])
    result = unknown(*(on(1, 1.0, kpi=k) for k in kpis))
    await reconcile_result(server, result)
    assert server.most_reading == 16 and len(server.reads) == 20
    assert server.posts == [1.0] * 20 and result.resent_count == 20
