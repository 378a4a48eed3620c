"""Upload many KPI snapshots: a bounded worker pool, four outcomes, an optional journal.

Every item read ends in exactly one outcome of ``BulkResult`` (succeeded, failed,
unknown, not_attempted; docs/design.md, "Exactly-once uploads"). The journal is in
``journal.py``, the read-back in ``reconcile.py``, the result types in ``bulk_result.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from typing import Final

from gtmhub_async.bulk_result import (
    MAX_CONCURRENCY,
    BulkResult,
    DayKey,
    ItemResult,
    SnapshotUpload,
    check_args,
    check_item,
    day_key,
    snapshot_key,
)
from gtmhub_async.errors import (
    ClientStateError,
    GtmhubError,
    ResponseDecodeError,
    UnknownOutcomeError,
)
from gtmhub_async.journal import FsyncMode, Journal, read_journal
from gtmhub_async.reconcile import reconcile_result
from gtmhub_async.routes import CREATE_SNAPSHOT
from gtmhub_async.session import CallState, SessionSource

__all__ = [
    "MAX_CONCURRENCY",
    "BulkResult",
    "ItemResult",
    "SnapshotUpload",
    "snapshot_key",
    "upload_snapshots",
]

logger = logging.getLogger("gtmhub_async.bulk")

ProgressCallback = Callable[[int, int | None], object]


_END: Final = object()
#: Items settled without a request, in a row, after which a worker yields to the loop.
_YIELD_EVERY: Final = 256


class _Upload:
    """One run of ``upload_snapshots``: the source, the workers' shared state, the result."""

    def __init__(
        self,
        client: SessionSource,
        items: Iterable[object] | AsyncIterable[object],
        *,
        on_progress: ProgressCallback | None,
        stop_on_error: bool,
        journal: Journal | None,
        retry_unknown: bool,
        reconcile: bool,
        keep_succeeded: bool,
        result: BulkResult,
    ) -> None:
        self._client = client
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
            self._lock = asyncio.Lock()
        else:
            self._sync = iter(items)
        #: How many items there are, when ``items`` knows its length.
        self.total = len(items) if isinstance(items, Sized) else None
        self._on_progress = on_progress
        self._stop_on_error = stop_on_error
        self._journal = journal
        self._retry_unknown = retry_unknown
        #: With reconcile: how many items of this upload fall on each KPI day.
        self.day_counts: dict[DayKey, int] | None = {} if reconcile else None
        #: Index of an unknown item -> its journal entry.
        self.entries: dict[int, int] = {}
        self._keep_succeeded = keep_succeeded
        self.result = result
        self._index = 0
        self.stopping = False
        self.exhausted = False
        #: The first error that must end the upload once the items in flight are done.
        self.fatal: BaseException | None = None

    # --- Reading ---------------------------------------------------------------------

    async def _next(self) -> object:
        if self._sync is not None:
            try:
                return next(self._sync)
            except StopIteration:
                self.exhausted = True
                return _END
        assert self._async is not None
        # An async generator may not be advanced by two workers at once.
        async with self._lock:
            if self.stopping:
                return _END
            try:
                return await anext(self._async)
            except StopAsyncIteration:
                self.exhausted = True
                return _END

    async def close_source(self) -> None:
        """Close an async generator left part-read, so its ``finally`` runs now."""
        source = self._async
        if source is None or self.exhausted:
            return
        aclose = getattr(source, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception:
            logger.warning("closing the items' async iterator failed", exc_info=True)

    # --- Working ---------------------------------------------------------------------

    async def worker(self) -> None:
        quick = 0
        while not self.stopping:
            try:
                item = await self._next()
            except Exception as exc:
                self._stop(exc)
                return
            if item is _END:
                self.stopping = True
                return
            index = self._index
            self._index = index + 1
            if self.stopping:
                # Read while another worker was stopping the upload: never sent.
                self._not_attempted(index, item)
                continue
            if await self._one(index, item):
                quick = 0
            else:
                quick += 1
                if quick >= _YIELD_EVERY:
                    # Skipped and bad items finish without awaiting: give the loop (and a
                    # cancellation) a turn now and then, as a long rerun may skip millions.
                    quick = 0
                    await asyncio.sleep(0)

    async def _one(self, index: int, item: object) -> bool:
        """Settle one item; return whether a request was sent for it."""
        try:
            upload = check_item(item)
        except (TypeError, ValueError) as exc:
            self._failed(index, item, None, exc)
            return False
        if self.day_counts is not None:
            day = day_key(upload)
            self.day_counts[day] = self.day_counts.get(day, 0) + 1
        key = None
        ident = None
        journal = self._journal
        if journal is not None:
            key = snapshot_key(upload.kpi_id, upload.snapshot)
            if self._from_journal(index, upload, key, journal):
                return False
            try:
                ident = journal.intent(key, upload.kpi_id, upload.snapshot)
                # Write-ahead: the POST leaves only once its intent is durable.
                await journal.durable()
            except (OSError, ValueError) as exc:
                self._not_attempted(index, upload, ident, key)
                self._stop(exc)
                return False
            except asyncio.CancelledError:
                self._not_attempted(index, upload, ident, key)
                raise
        call = CallState()
        try:
            params = CREATE_SNAPSHOT.params(upload.kpi_id, upload.snapshot)
            await self._client.open_session().call(CREATE_SNAPSHOT, params, state=call)
        except asyncio.CancelledError as exc:
            if not call.in_flight:
                # Cancelled while waiting for the limiter or a backoff: nothing was sent.
                self._not_attempted(index, upload, ident, key)
                raise
            error = UnknownOutcomeError(
                "the upload was cancelled while this request was in flight: it may have "
                "been applied",
                method="POST",
            )
            error.__cause__ = exc
            self._unknown(index, upload, key, error, ident)
            raise
        except (UnknownOutcomeError, ResponseDecodeError) as exc:
            # A 2xx whose body could not be read was applied, most likely: never resend it.
            self._unknown(index, upload, key, exc, ident)
        except ClientStateError as exc:
            self._failed(index, upload, key, exc, ident)
            self._stop(exc)
        except GtmhubError as exc:
            # The session raises UnknownOutcomeError whenever a write may have arrived,
            # so any other GtmhubError means the server did not apply it.
            self._failed(index, upload, key, exc, ident)
        except Exception as exc:
            self._unknown(index, upload, key, exc, ident)
        else:
            # Recorded before the journal line: an applied write is never missing from the result.
            self._succeeded(upload)
            self._write_outcome(ident, "succeeded", key, index)
        return True

    def _from_journal(
        self, index: int, upload: SnapshotUpload, key: str, journal: Journal
    ) -> bool:
        """Settle an item from what the journal says about earlier runs; return if settled."""
        recalled = journal.recall(key, retry_unknown=self._retry_unknown)
        if recalled is None:
            return False
        if recalled.error is None:
            self.result.skipped_count += 1
            self._succeeded(upload)
            return True
        ident = recalled.orphan
        self._unknown(index, upload, key, recalled.error, ident, from_journal=True)
        if ident is not None:
            # An orphan is recorded as unknown now, so that a reconciliation settles it later.
            self._write_outcome(ident, "unknown", key, index, recalled.error)
        return True

    # --- Recording -------------------------------------------------------------------

    def _succeeded(self, upload: SnapshotUpload) -> None:
        result = self.result
        result.succeeded_count += 1
        if self._keep_succeeded:
            result.succeeded.append(upload)
        self._progress()

    def _not_attempted(
        self, index: int, item: object, ident: int | None = None, key: str | None = None
    ) -> None:
        self.result.not_attempted.append(ItemResult(index, item))
        self.result.not_attempted_count += 1
        if ident is not None and self._journal is not None:
            # Its intent was written but the POST never left: close the entry.
            self._write_outcome(ident, "failed", key, index)

    def _failed(
        self,
        index: int,
        item: object,
        key: str | None,
        error: BaseException,
        ident: int | None = None,
    ) -> None:
        self.result.failed.append(ItemResult(index, item, error))
        self.result.failed_count += 1
        if key is not None:
            self._write_outcome(ident, "failed", key, index, error)
        self._progress()
        if self._stop_on_error:
            self.stopping = True

    def _unknown(
        self,
        index: int,
        upload: SnapshotUpload,
        key: str | None,
        error: BaseException,
        ident: int | None,
        *,
        from_journal: bool = False,
    ) -> None:
        self.result.unknown.append(ItemResult(index, upload, error))
        self.result.unknown_count += 1
        if ident is not None:
            self.entries[index] = ident
        if not from_journal:
            self._write_outcome(ident, "unknown", key, index, error)
        self._progress()
        if self._stop_on_error and not from_journal:
            self.stopping = True

    # Journal.outcome's parameters, forwarded (a known pair): the upload decides what a
    # failed write means here.
    def _write_outcome(
        self,
        ident: int | None,
        outcome: str,
        key: str | None,
        index: int,
        error: BaseException | None = None,
    ) -> None:
        """Journal an item's outcome; a journal that cannot be written stops the upload."""
        if self._journal is None:
            return
        try:
            self._journal.outcome(ident, outcome, key, index, error)
        except OSError as exc:
            # The item is already in the result; the caller gets this error, not a group.
            self._stop(exc)

    def _progress(self) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(self.result.done, self.total)
        except Exception as exc:
            self._stop(exc)

    def _stop(self, exc: BaseException) -> None:
        self.stopping = True
        if self.fatal is None:
            self.fatal = exc


# The keywords below are those of Kpis.upload_snapshots (resources.py), which forwards
# them one by one: an explicit public signature there, the work here (a known pair).
async def upload_snapshots(
    client: SessionSource,
    items: Iterable[SnapshotUpload] | AsyncIterable[SnapshotUpload],
    *,
    concurrency: int = 16,
    on_progress: ProgressCallback | None = None,
    stop_on_error: bool = False,
    journal: str | os.PathLike[str] | None = None,
    retry_unknown: bool = False,
    keep_succeeded: bool = True,
    result: BulkResult | None = None,
    reconcile: bool = False,
    fsync: FsyncMode = "group",
    fsync_interval: float = 0.0,
) -> BulkResult:
    """Post every snapshot of ``items`` with at most ``concurrency`` in flight; see ``Kpis``."""
    check_args(items, concurrency, on_progress, journal, result, fsync, fsync_interval)
    client.open_session()  # a closed client fails here, before any item is read
    result = BulkResult() if result is None else result
    opened: Journal | None = None
    if journal is not None:
        path = os.fspath(journal)
        # A long journal is read off the loop; the append handle is opened on it, so
        # that a cancellation during the read cannot leave an open file behind.
        state = await asyncio.to_thread(read_journal, path)
        opened = Journal(path, state, fsync=fsync, fsync_interval=float(fsync_interval))
    try:
        upload = _Upload(
            client,
            items,
            on_progress=on_progress,
            stop_on_error=bool(stop_on_error),
            journal=opened,
            retry_unknown=bool(retry_unknown),
            reconcile=bool(reconcile),
            keep_succeeded=bool(keep_succeeded),
            result=result,
        )
        workers = concurrency
        if upload.total is not None:
            workers = max(1, min(workers, upload.total))
        try:
            # A pool pulling from one iterator, not a task per item: the number of items
            # held at once is the number of workers, whatever the length of ``items``.
            async with asyncio.TaskGroup() as group:
                for n in range(workers):
                    group.create_task(upload.worker(), name=f"gtmhub_async upload worker {n}")
        finally:
            await upload.close_source()
        if upload.fatal is None and reconcile and result.unknown:
            await reconcile_result(
                client,
                result,
                journal=opened,
                day_counts=upload.day_counts,
                entries=upload.entries,
                concurrency=concurrency,
                keep_succeeded=bool(keep_succeeded),
            )
    finally:
        if opened is not None:
            await opened.aclose()
    if upload.fatal is not None:
        raise upload.fatal
    return result
