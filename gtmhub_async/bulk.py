"""Upload many KPI snapshots: a bounded worker pool, four outcomes, an optional journal.

Every item read from ``items`` ends in exactly one outcome of ``BulkResult``:

- ``succeeded``: the server stored it (or a journal says an earlier run did: ``skipped``);
- ``failed``: it was definitely not applied (a bad item, a 4xx, a refused write...);
- ``unknown``: it may have been applied (``UnknownOutcomeError``, cancellation while
  in flight, a 2xx answer that could not be read, or a journal entry of unknown outcome);
- ``not_attempted``: it was read but never sent, because the upload was stopping.

Items that were never read from ``items`` (after a stop) are in no outcome: the counts add
up to ``BulkResult.consumed``, the number of items read.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from typing import IO, TYPE_CHECKING, Any, Final

import attrs
import orjson

from gtmhub_async.errors import (
    ClientStateError,
    GtmhubError,
    ResponseDecodeError,
    UnknownOutcomeError,
    excerpt,
)
from gtmhub_async.models import KpiSnapshotRequest, check_object_id
from gtmhub_async.session import last_call_in_flight

if TYPE_CHECKING:
    from gtmhub_async.client import GtmhubClient

__all__ = ["BulkResult", "ItemResult", "SnapshotUpload", "snapshot_key", "upload_snapshots"]

logger = logging.getLogger("gtmhub_async.bulk")

#: Most workers one upload may run: beyond this the rate limit, not the pool, is the bound.
MAX_CONCURRENCY: Final = 1000

ProgressCallback = Callable[[int, int | None], object]


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

    def __repr__(self) -> str:
        return (
            f"BulkResult(succeeded={self.succeeded_count} (skipped {self.skipped_count}), "
            f"failed={self.failed_count}, unknown={self.unknown_count}, "
            f"not_attempted={self.not_attempted_count})"
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


def _check_item(item: object) -> SnapshotUpload:
    if not isinstance(item, SnapshotUpload):
        raise TypeError(f"each item must be a SnapshotUpload, got {type(item).__name__}")
    check_object_id(item.kpi_id, "kpi_id")
    if not isinstance(item.snapshot, KpiSnapshotRequest):
        raise TypeError(
            f"snapshot must be a KpiSnapshotRequest, got {type(item.snapshot).__name__}"
        )
    return item


def _read_journal(path: str) -> tuple[dict[str, int], dict[str, int], bool]:
    """Count the succeeded and unknown lines per key; say whether the last line is complete."""
    succeeded: dict[str, int] = {}
    unknown: dict[str, int] = {}
    try:
        f = open(path, "rb")  # noqa: SIM115  # closed below; a missing file is a fresh journal
    except FileNotFoundError:
        return succeeded, unknown, True
    complete = True
    with f:
        for number, line in enumerate(f, 1):
            complete = line.endswith(b"\n")
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                key, outcome = entry.get("key"), entry["outcome"]
            except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
                # A line cut by a crash: its item is sent again, as if never finished.
                logger.warning("ignoring unreadable line %d of journal %s", number, path)
                continue
            if not isinstance(key, str):
                continue
            if outcome == "succeeded":
                succeeded[key] = succeeded.get(key, 0) + 1
            elif outcome == "unknown":
                unknown[key] = unknown.get(key, 0) + 1
    return succeeded, unknown, complete


def _take(counts: dict[str, int], key: str) -> bool:
    # Each journal line stands for one occurrence: two identical items need two lines.
    left = counts.get(key)
    if not left:
        return False
    if left == 1:
        del counts[key]
    else:
        counts[key] = left - 1
    return True


class _Journal:
    """Append one JSON line per finished item, flushed at once so a crash loses none."""

    def __init__(
        self, path: str, succeeded: dict[str, int], unknown: dict[str, int], complete: bool
    ) -> None:
        self.path = path
        self.succeeded = succeeded
        self.unknown = unknown
        self._file: IO[bytes] | None = open(path, "ab")  # noqa: SIM115  # closed by close()
        if not complete:
            # Never glue a new line onto one that a crash cut short.
            self._file.write(b"\n")

    def write(
        self,
        outcome: str,
        index: int,
        key: str | None,
        item: SnapshotUpload | None,
        error: BaseException | None,
    ) -> None:
        if self._file is None:
            return
        entry: dict[str, Any] = {"outcome": outcome, "key": key, "index": index}
        if item is not None:
            entry["kpiId"] = item.kpi_id
            entry["group"] = item.snapshot.group.isoformat()
            entry["value"] = item.snapshot.value
        if error is not None:
            entry["error"] = f"{type(error).__name__}: {excerpt(str(error))}"
        self._file.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_END: Final = object()
#: Items settled without a request, in a row, after which a worker yields to the loop.
_YIELD_EVERY: Final = 256


class _Upload:
    """One run of ``upload_snapshots``: the source, the workers' shared state, the result."""

    def __init__(
        self,
        client: GtmhubClient,
        items: Iterable[object] | AsyncIterable[object],
        *,
        on_progress: ProgressCallback | None,
        stop_on_error: bool,
        journal: _Journal | None,
        retry_unknown: bool,
        keep_succeeded: bool,
        result: BulkResult,
    ) -> None:
        self._create = client.kpis.create_snapshot
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
            self._lock = asyncio.Lock()
        else:
            self._sync = iter(items)
        self._total = len(items) if isinstance(items, Sized) else None
        self._on_progress = on_progress
        self._stop_on_error = stop_on_error
        self._journal = journal
        self._retry_unknown = retry_unknown
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
            upload = _check_item(item)
        except (TypeError, ValueError) as exc:
            self._failed(index, item, None, exc)
            return False
        key = None
        journal = self._journal
        if journal is not None:
            key = snapshot_key(upload.kpi_id, upload.snapshot)
            if _take(journal.succeeded, key):
                self.result.skipped_count += 1
                self._succeeded(upload)
                return False
            if not self._retry_unknown and _take(journal.unknown, key):
                error = UnknownOutcomeError(
                    f"journal {journal.path} records an earlier upload of this snapshot whose "
                    "outcome is unknown: it may have been applied, so it was not sent again; "
                    "check the server, or pass retry_unknown=True to send it",
                    method="POST",
                )
                self._unknown(index, upload, None, error, from_journal=True)
                return False
        try:
            await self._create(upload.kpi_id, upload.snapshot)
        except asyncio.CancelledError as exc:
            if not last_call_in_flight():
                # Cancelled while waiting for the limiter or a backoff: nothing was sent.
                self._not_attempted(index, upload)
                raise
            error = UnknownOutcomeError(
                "the upload was cancelled while this request was in flight: it may have "
                "been applied",
                method="POST",
            )
            error.__cause__ = exc
            self._unknown(index, upload, key, error)
            raise
        except (UnknownOutcomeError, ResponseDecodeError) as exc:
            # A 2xx whose body could not be read was applied, most likely: never resend it.
            self._unknown(index, upload, key, exc)
        except ClientStateError as exc:
            self._failed(index, upload, key, exc)
            self._stop(exc)
        except GtmhubError as exc:
            # The session raises UnknownOutcomeError whenever a write may have arrived,
            # so any other GtmhubError means the server did not apply it.
            self._failed(index, upload, key, exc)
        except Exception as exc:
            self._unknown(index, upload, key, exc)
        else:
            if journal is not None:
                journal.write("succeeded", index, key, upload, None)
            self._succeeded(upload)
        return True

    # --- Recording -------------------------------------------------------------------

    def _succeeded(self, upload: SnapshotUpload) -> None:
        result = self.result
        result.succeeded_count += 1
        if self._keep_succeeded:
            result.succeeded.append(upload)
        self._progress()

    def _not_attempted(self, index: int, item: object) -> None:
        self.result.not_attempted.append(ItemResult(index, item))
        self.result.not_attempted_count += 1

    def _failed(self, index: int, item: object, key: str | None, error: BaseException) -> None:
        self.result.failed.append(ItemResult(index, item, error))
        self.result.failed_count += 1
        if self._journal is not None:
            upload = item if isinstance(item, SnapshotUpload) else None
            self._journal.write("failed", index, key, upload, error)
        self._progress()
        if self._stop_on_error:
            self.stopping = True

    def _unknown(
        self,
        index: int,
        upload: SnapshotUpload,
        key: str | None,
        error: BaseException,
        *,
        from_journal: bool = False,
    ) -> None:
        self.result.unknown.append(ItemResult(index, upload, error))
        self.result.unknown_count += 1
        if self._journal is not None and not from_journal:
            self._journal.write("unknown", index, key, upload, error)
        self._progress()
        if self._stop_on_error and not from_journal:
            self.stopping = True

    def _progress(self) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(self.result.done, self._total)
        except Exception as exc:
            self._stop(exc)

    def _stop(self, exc: BaseException) -> None:
        self.stopping = True
        if self.fatal is None:
            self.fatal = exc


def _check_args(
    items: object,
    concurrency: object,
    on_progress: object,
    journal: object,
    result: object,
) -> None:
    if not isinstance(items, Iterable | AsyncIterable) or isinstance(items, str | bytes):
        raise TypeError(
            f"items must be an iterable or async iterable of SnapshotUpload, "
            f"got {type(items).__name__}"
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise TypeError(f"concurrency must be an int, got {type(concurrency).__name__}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
    if journal is not None and not isinstance(journal, str | os.PathLike):
        raise TypeError(f"journal must be a path, got {type(journal).__name__}")
    if result is not None:
        if not isinstance(result, BulkResult):
            raise TypeError(f"result must be a BulkResult, got {type(result).__name__}")
        if result.consumed:
            raise ValueError("result must be a new, empty BulkResult")


async def upload_snapshots(
    client: GtmhubClient,
    items: Iterable[SnapshotUpload] | AsyncIterable[SnapshotUpload],
    *,
    concurrency: int = 16,
    on_progress: ProgressCallback | None = None,
    stop_on_error: bool = False,
    journal: str | os.PathLike[str] | None = None,
    retry_unknown: bool = False,
    keep_succeeded: bool = True,
    result: BulkResult | None = None,
) -> BulkResult:
    """Post every snapshot of ``items`` with at most ``concurrency`` in flight; see ``Kpis``."""
    _check_args(items, concurrency, on_progress, journal, result)
    client._session()  # a closed client fails here, before any item is read
    result = BulkResult() if result is None else result
    opened: _Journal | None = None
    if journal is not None:
        path = os.fspath(journal)
        # A long journal is read off the loop; the append handle is opened on it, so
        # that a cancellation during the read cannot leave an open file behind.
        succeeded, unknown, complete = await asyncio.to_thread(_read_journal, path)
        opened = _Journal(path, succeeded, unknown, complete)
    try:
        upload = _Upload(
            client,
            items,
            on_progress=on_progress,
            stop_on_error=bool(stop_on_error),
            journal=opened,
            retry_unknown=bool(retry_unknown),
            keep_succeeded=bool(keep_succeeded),
            result=result,
        )
        workers = concurrency
        if upload._total is not None:
            workers = max(1, min(workers, upload._total))
        try:
            # A pool pulling from one iterator, not a task per item: the number of items
            # held at once is the number of workers, whatever the length of ``items``.
            async with asyncio.TaskGroup() as group:
                for n in range(workers):
                    group.create_task(upload.worker(), name=f"gtmhub_async upload worker {n}")
        finally:
            await upload.close_source()
    finally:
        if opened is not None:
            opened.close()
    if upload.fatal is not None:
        raise upload.fatal
    return result
