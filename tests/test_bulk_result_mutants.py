"""Rules of gtmhub_async.bulk_result that mutation testing found unchecked (tests/MUTATION.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gtmhub_async import BulkResult, KpiSnapshotRequest, SnapshotUpload
from gtmhub_async.bulk import ItemResult, snapshot_key
from gtmhub_async.bulk_result import check_args

KPI_ID = "5e8c27e3dcdddaa4addbdee8"


def item(index: int, value: float) -> ItemResult:
    return ItemResult(
        index, SnapshotUpload(KPI_ID, KpiSnapshotRequest(group=date(2026, 11, 1), value=value))
    )


def test_an_unknown_item_settled_as_failed_keeps_its_index_item_and_the_error() -> None:
    result = BulkResult(failed=[item(0, 0.0), item(1, 1.0)], failed_count=2)
    unknown = item(7, 7.0)
    result.unknown.append(unknown)
    result.unknown_count = 1
    error = ValueError("no")
    result.settle_unknown(unknown, error, keep=True)
    assert result.failed[-1] == ItemResult(7, unknown.item, error)
    assert (result.failed_count, result.unknown_count, result.unknown) == (3, 0, [])
    assert result.succeeded == [] and result.succeeded_count == 0


def test_an_unknown_item_given_a_new_error_keeps_its_index_and_item() -> None:
    result = BulkResult()
    first, second = item(3, 3.0), item(5, 5.0)
    result.unknown.extend([first, second])
    error = ValueError("conflict")
    result.replace_unknown(second, error)
    assert result.unknown == [first, ItemResult(5, second.item, error)]


@pytest.mark.parametrize(
    ("counts", "tail"),
    [
        ({"reconciled_count": 1}, ", reconciled=1, resent=0, conflicts=0)"),
        ({"resent_count": 2}, ", reconciled=0, resent=2, conflicts=0)"),
        ({"conflict_count": 3}, ", reconciled=0, resent=0, conflicts=3)"),
        ({}, ")"),
    ],
)
def test_the_repr_names_the_reconciliation_counts_when_any_is_set(
    counts: dict[str, int], tail: str
) -> None:
    head = "BulkResult(succeeded=0 (skipped 0), failed=0, unknown=0, not_attempted=0"
    assert repr(BulkResult(**counts)) == head + tail


def test_the_journal_key_of_a_snapshot_is_stable_across_versions() -> None:
    # Journals written by earlier runs must still match: the key is part of the file format.
    snapshot = KpiSnapshotRequest(
        group=date(2026, 11, 1), value=1.5, time_zone="Europe/Sofia", description="d"
    )
    assert snapshot_key(KPI_ID.upper(), snapshot) == "69d7c9614bb80d97089a43ce03df5696"
    plain = KpiSnapshotRequest(group=date(2026, 11, 1), value=1.5)
    assert snapshot_key(KPI_ID, plain) == "11d80789479f5793b91411eb2686996f"


ARGS: dict[str, Any] = {
    "items": [],
    "concurrency": 4,
    "on_progress": None,
    "journal": None,
    "result": None,
    "fsync": "group",
    "fsync_interval": 0.0,
}


@pytest.mark.parametrize(
    ("change", "exc", "message"),
    [
        (
            {"items": 5},
            TypeError,
            "items must be an iterable or async iterable of SnapshotUpload, got int",
        ),
        ({"on_progress": 5}, TypeError, "on_progress must be callable, got int"),
        ({"journal": 5}, TypeError, "journal must be a path, got int"),
        ({"result": 5}, TypeError, "result must be a BulkResult, got int"),
        (
            {"result": BulkResult(failed_count=1)},
            ValueError,
            "result must be a new, empty BulkResult",
        ),
        (
            {"fsync_interval": 1.5},
            ValueError,
            "fsync_interval must be between 0 and 1 second, got 1.5",
        ),
    ],
)
def test_bad_upload_arguments_say_exactly_what_is_wrong(
    change: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc) as info:
        check_args(**{**ARGS, **change})
    assert str(info.value) == message


def test_the_upload_argument_bounds_are_inclusive(tmp_path: Path) -> None:
    check_args(**{**ARGS, "fsync_interval": 1, "journal": tmp_path / "j.jsonl"})
    check_args(**{**ARGS, "fsync_interval": 0, "result": BulkResult()})
