"""What a bulk upload reports (``BulkResult``), its items, and the checks of its arguments."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, Iterable
from datetime import date
from typing import Any, Final

import attrs
import orjson

from gtmhub_async._validate import check_int_range, check_number, check_object_id
from gtmhub_async.journal import FSYNC_MODES
from gtmhub_async.models import KpiSnapshotRequest

__all__ = [
    "MAX_CONCURRENCY",
    "BulkResult",
    "DayKey",
    "ItemResult",
    "SnapshotUpload",
    "check_args",
    "check_item",
    "day_key",
    "snapshot_key",
]

#: Most workers one upload may run: beyond this the rate limit, not the pool, is the bound.
MAX_CONCURRENCY: Final = 1000


@attrs.frozen
class SnapshotUpload:
    """One snapshot for one KPI; checked when it is uploaded, so that a bad row fails alone."""

    kpi_id: str
    snapshot: KpiSnapshotRequest


@attrs.frozen
class ItemResult:
    """An item that did not succeed: its index in ``items``, the item, and why."""

    index: int
    item: Any
    error: BaseException | None = None


@attrs.define(eq=False, repr=False)
class BulkResult:
    """The outcome of every item read by ``upload_snapshots``, filled in as items finish.

    ``succeeded`` holds the items only when the upload keeps them (``keep_succeeded``);
    the counts are always exact. ``skipped_count`` is the part of ``succeeded_count``
    that a journal showed an earlier run had already uploaded (nothing was sent).
    Pass a fresh ``BulkResult`` as ``result=`` to keep the partial result of an
    upload that is cancelled.
    """

    succeeded: list[SnapshotUpload] = attrs.field(factory=list)
    failed: list[ItemResult] = attrs.field(factory=list)
    unknown: list[ItemResult] = attrs.field(factory=list)
    not_attempted: list[ItemResult] = attrs.field(factory=list)
    succeeded_count: int = 0
    skipped_count: int = 0
    failed_count: int = 0
    unknown_count: int = 0
    not_attempted_count: int = 0
    #: Unknown items that read-back showed applied (now part of ``succeeded``).
    reconciled_count: int = 0
    #: Unknown items that read-back showed absent and were sent again and stored.
    resent_count: int = 0
    #: Unknown items whose day holds something else (``SnapshotConflictError``).
    conflict_count: int = 0

    @property
    def consumed(self) -> int:
        """Return how many items were read from ``items``: the sum of the four counts."""
        return (
            self.succeeded_count
            + self.failed_count
            + self.unknown_count
            + self.not_attempted_count
        )

    @property
    def done(self) -> int:
        """Return how many items finished (succeeded, failed or unknown)."""
        return self.succeeded_count + self.failed_count + self.unknown_count

    @property
    def ok(self) -> bool:
        """Return True when every item read succeeded."""
        return not (self.failed_count or self.unknown_count or self.not_attempted_count)

    def settle_unknown(self, item: ItemResult, error: BaseException | None, *, keep: bool) -> None:
        """Move an unknown item to succeeded (``error`` None) or to failed with ``error``."""
        self.unknown.remove(item)
        self.unknown_count -= 1
        if error is None:
            self.succeeded_count += 1
            if keep:
                self.succeeded.append(item.item)
        else:
            self.failed.append(ItemResult(item.index, item.item, error))
            self.failed_count += 1

    def replace_unknown(self, item: ItemResult, error: BaseException) -> None:
        """Give an unknown item a new error: a conflict, or a resend that ended unknown."""
        self.unknown[self.unknown.index(item)] = ItemResult(item.index, item.item, error)

    def __repr__(self) -> str:
        return (
            f"BulkResult(succeeded={self.succeeded_count} (skipped {self.skipped_count}), "
            f"failed={self.failed_count}, unknown={self.unknown_count}, "
            f"not_attempted={self.not_attempted_count}"
            + (
                f", reconciled={self.reconciled_count}, resent={self.resent_count}, "
                f"conflicts={self.conflict_count})"
                if self.reconciled_count or self.resent_count or self.conflict_count
                else ")"
            )
        )


def snapshot_key(kpi_id: str, snapshot: KpiSnapshotRequest) -> str:
    """Return the journal key of a snapshot: a hash of kpi id, group, value, zone, description."""
    data = orjson.dumps(
        [
            kpi_id.lower(),
            snapshot.group.isoformat(),
            float(snapshot.value),
            snapshot.time_zone,
            snapshot.description,
        ]
    )
    return hashlib.blake2b(data, digest_size=16).hexdigest()


#: A KPI day: kpi id (lower case), day, time zone.
DayKey = tuple[str, date, str | None]


def day_key(upload: SnapshotUpload) -> DayKey:
    """Return the KPI day an upload writes: its KPI, day and time zone."""
    snapshot = upload.snapshot
    return (upload.kpi_id.lower(), snapshot.group, snapshot.time_zone)


def check_item(item: object) -> SnapshotUpload:
    if not isinstance(item, SnapshotUpload):
        raise TypeError(f"each item must be a SnapshotUpload, got {type(item).__name__}")
    check_object_id(item.kpi_id, "kpi_id")
    if not isinstance(item.snapshot, KpiSnapshotRequest):
        raise TypeError(
            f"snapshot must be a KpiSnapshotRequest, got {type(item.snapshot).__name__}"
        )
    return item


def check_args(
    items: object,
    concurrency: object,
    on_progress: object,
    journal: object,
    result: object,
    fsync: object,
    fsync_interval: object,
) -> None:
    if not isinstance(items, Iterable | AsyncIterable) or isinstance(items, str | bytes):
        raise TypeError(
            f"items must be an iterable or async iterable of SnapshotUpload, "
            f"got {type(items).__name__}"
        )
    check_int_range("concurrency", concurrency, 1, MAX_CONCURRENCY)
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
    if journal is not None and not isinstance(journal, str | os.PathLike):
        raise TypeError(f"journal must be a path, got {type(journal).__name__}")
    if fsync not in FSYNC_MODES:
        raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
    if not 0 <= check_number("fsync_interval", fsync_interval) <= 1:
        raise ValueError(f"fsync_interval must be between 0 and 1 second, got {fsync_interval}")
    if result is not None:
        if not isinstance(result, BulkResult):
            raise TypeError(f"result must be a BulkResult, got {type(result).__name__}")
        if result.consumed:
            raise ValueError("result must be a new, empty BulkResult")
