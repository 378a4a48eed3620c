"""Settle uploads of unknown outcome by reading their KPI days back; see docs/design.md.

Each unknown item is applied (succeeded), absent (sent once more) or a conflict (stays
unknown with a ``SnapshotConflictError``); docs/design.md, "Notes by module", says how.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Final, Literal

from gtmhub_async.bulk_result import BulkResult, DayKey, ItemResult, SnapshotUpload, day_key
from gtmhub_async.bulk_result import snapshot_key as _snapshot_key
from gtmhub_async.errors import (
    GtmhubError,
    ResponseDecodeError,
    SnapshotConflictError,
    UnknownOutcomeError,
)
from gtmhub_async.journal import Journal
from gtmhub_async.routes import CREATE_SNAPSHOT, LIST_SNAPSHOTS
from gtmhub_async.session import SessionSource

__all__ = ["WINDOW_DAYS", "Verdict", "decide", "reconcile_result"]

logger = logging.getLogger("gtmhub_async.reconcile")

#: Most days one read-back query spans.
WINDOW_DAYS: Final = 31
#: Rounds of read-back and resend at most; an item still unknown after them stays unknown.
ROUNDS: Final = 3

Verdict = Literal["applied", "absent", "conflict"]


def decide(upload: SnapshotUpload, held: Sequence[float | None], items_on_day: int) -> Verdict:
    """Judge one item from the values its day holds and how many upload items share the day."""
    if not held:
        return "absent"
    if items_on_day == 1 and len(held) == 1:
        value = held[0]
        if value is not None and math.isclose(value, upload.snapshot.value, rel_tol=1e-9):
            return "applied"
    return "conflict"


def _windows(items: list[ItemResult]) -> list[tuple[date, date, list[ItemResult]]]:
    items = sorted(items, key=lambda r: _upload(r).snapshot.group)
    out: list[tuple[date, date, list[ItemResult]]] = []
    for item in items:
        day = _upload(item).snapshot.group
        if out and (day - out[-1][0]).days < WINDOW_DAYS:
            first, _, members = out[-1]
            members.append(item)
            out[-1] = (first, day, members)
        else:
            out.append((day, day, [item]))
    return out


def _upload(item: ItemResult) -> SnapshotUpload:
    assert isinstance(item.item, SnapshotUpload)
    return item.item


class _Round:
    """One read-back round over the unknown items of a result."""

    def __init__(
        self,
        client: SessionSource,
        result: BulkResult,
        journal: Journal | None,
        day_counts: Mapping[DayKey, int],
        entries: dict[int, int],
        concurrency: int,
        keep_succeeded: bool,
    ) -> None:
        self.client = client
        self.result = result
        self.journal = journal
        self.day_counts = day_counts
        self.entries = entries
        self.gate = asyncio.Semaphore(concurrency)
        self.keep_succeeded = keep_succeeded
        self.absent: list[ItemResult] = []

    async def read_back(
        self, kpi_id: str, zone: str | None, window: tuple[date, date]
    ) -> dict[date, list[float | None]] | None:
        async with self.gate:
            try:
                params = LIST_SNAPSHOTS.params(
                    ids=[kpi_id], time_zone=zone, from_date=window[0], to_date=window[1]
                )
                rows = await self.client.open_session().call(LIST_SNAPSHOTS, params)
            except GtmhubError as exc:
                logger.warning("reading back KPI %s failed: %s", kpi_id, exc)
                return None
        by_day: dict[date, list[float | None]] = {}
        for row in rows:
            if row.group is None or (
                row.kpi_id is not None and row.kpi_id.lower() != kpi_id.lower()
            ):
                continue
            by_day.setdefault(row.group, []).append(row.value)
        return by_day

    async def judge(
        self, kpi_id: str, zone: str | None, window: tuple[date, date], items: list[ItemResult]
    ) -> None:
        by_day = await self.read_back(kpi_id, zone, window)
        if by_day is None:
            return  # the read failed: the items stay unknown, with their error
        for item in items:
            upload = _upload(item)
            held = by_day.get(upload.snapshot.group, [])
            verdict = decide(upload, held, self.day_counts.get(day_key(upload), 1))
            if verdict == "applied":
                self._settle_applied(item)
            elif verdict == "absent":
                self.absent.append(item)
            else:
                self._conflict(item, kpi_id, held)

    def _settle_applied(self, item: ItemResult) -> None:
        self.result.settle_unknown(item, None, keep=self.keep_succeeded)
        self.result.reconciled_count += 1
        if self.journal is not None:
            upload = _upload(item)
            key = _snapshot_key(upload.kpi_id, upload.snapshot)
            ident = self.entries.pop(item.index, None)
            self.journal.outcome(
                ident, "succeeded", key, item.index, was="unknown", reconciled=True
            )

    def _conflict(self, item: ItemResult, kpi_id: str, held: Sequence[float | None]) -> None:
        upload = _upload(item)
        day = upload.snapshot.group
        others = self.day_counts.get(day_key(upload), 1) - 1
        found = ", ".join("no value" if v is None else f"{v:g}" for v in held)
        also = f"; {others} other item(s) of this upload write that day" if others else ""
        error = SnapshotConflictError(
            f"KPI {kpi_id} on {day} holds {found}, not only the intended "
            f"{upload.snapshot.value:g}{also}: cannot tell whether this snapshot was "
            "applied, so it was not sent again",
            kpi_id=kpi_id,
            found=list(held),
        )
        self.result.replace_unknown(item, error)
        self.result.conflict_count += 1

    async def resend(self, item: ItemResult) -> None:
        upload = _upload(item)
        journal = self.journal
        async with self.gate:
            ident = None
            if journal is not None:
                key = _snapshot_key(upload.kpi_id, upload.snapshot)
                # The earlier entry was proved not applied: close it, then write a new intent.
                journal.outcome(
                    self.entries.pop(item.index, None), "failed", key, item.index, was="unknown"
                )
                ident = journal.intent(key, upload.kpi_id, upload.snapshot)
                await journal.durable()
            try:
                params = CREATE_SNAPSHOT.params(upload.kpi_id, upload.snapshot)
                await self.client.open_session().call(CREATE_SNAPSHOT, params)
            except (UnknownOutcomeError, ResponseDecodeError) as exc:
                self._again_unknown(item, ident, exc)
            except GtmhubError as exc:
                self._settle_resend(item, ident, exc)
            else:
                self._settle_resend(item, ident, None)

    def _again_unknown(self, item: ItemResult, ident: int | None, exc: BaseException) -> None:
        self.result.replace_unknown(item, exc)
        if self.journal is not None and ident is not None:
            upload = _upload(item)
            key = _snapshot_key(upload.kpi_id, upload.snapshot)
            self.journal.outcome(ident, "unknown", key, item.index, exc)
            self.entries[item.index] = ident

    def _settle_resend(
        self, item: ItemResult, ident: int | None, exc: BaseException | None
    ) -> None:
        self.result.settle_unknown(item, exc, keep=self.keep_succeeded)
        if exc is None:
            self.result.resent_count += 1
        if self.journal is not None and ident is not None:
            upload = _upload(item)
            key = _snapshot_key(upload.kpi_id, upload.snapshot)
            outcome = "succeeded" if exc is None else "failed"
            self.journal.outcome(ident, outcome, key, item.index, exc)


async def reconcile_result(
    client: SessionSource,
    result: BulkResult,
    *,
    journal: Journal | None = None,
    day_counts: Mapping[DayKey, int] | None = None,
    entries: dict[int, int] | None = None,
    concurrency: int = 16,
    keep_succeeded: bool = True,
) -> BulkResult:
    """Settle ``result``'s unknown items by read-back: applied, absent (resent) or conflict.

    ``day_counts`` says how many items of the whole upload write each KPI day; without it,
    the unknown items themselves are counted (an item that shares its day with another
    unknown one is a conflict). Updates and returns ``result``.
    """
    if day_counts is None:
        counts: dict[DayKey, int] = {}
        for item in result.unknown:
            if isinstance(item.item, SnapshotUpload):
                key = day_key(item.item)
                counts[key] = counts.get(key, 0) + 1
        day_counts = counts
    entries = {} if entries is None else entries
    for _ in range(ROUNDS):
        pending = [
            r
            for r in result.unknown
            if isinstance(r.item, SnapshotUpload)
            and not isinstance(r.error, SnapshotConflictError)
        ]
        if not pending:
            break
        work = _Round(client, result, journal, day_counts, entries, concurrency, keep_succeeded)
        groups: dict[tuple[str, str | None], list[ItemResult]] = {}
        for item in pending:
            upload = _upload(item)
            groups.setdefault((upload.kpi_id, upload.snapshot.time_zone), []).append(item)
        await asyncio.gather(
            *(
                work.judge(kpi_id, zone, (first, last), members)
                for (kpi_id, zone), items in groups.items()
                for first, last, members in _windows(items)
            )
        )
        if not work.absent:
            break
        await asyncio.gather(*(work.resend(item) for item in work.absent))
    return result
