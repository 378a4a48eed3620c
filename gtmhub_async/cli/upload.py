"""``snapshots upload``: stream a file's rows to the API, stop cleanly on Ctrl-C, report rows.

The file is read in passes (see ``files``): one to count and check the rows, one
feeding the upload lazily, and, only when some rows failed or are unknown, one
more to name them by row and line. The first Ctrl-C lets the requests in flight
finish; a second one cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterable, Iterator

import attrs
import click

from gtmhub_async.bulk import BulkResult, SnapshotUpload
from gtmhub_async.cli.app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    explain,
    fail,
    plural,
    row_reason,
    run,
)
from gtmhub_async.cli.files import SnapshotFile
from gtmhub_async.cli.options import ApiOptions, api_options
from gtmhub_async.cli.progress import Progress, progress_enabled
from gtmhub_async.cli.rows import BadRow, SnapshotRow
from gtmhub_async.cli.snapshots import snapshots
from gtmhub_async.client import GtmhubClient
from gtmhub_async.errors import (
    AuthenticationError,
    GtmhubError,
    PermissionDeniedError,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.journal import FsyncMode
from gtmhub_async.limits import LimiterFactory, RateLimit

__all__ = ["UploadRun", "snapshots_upload", "upload_rows"]


class _StopUpload(Exception):
    """Raised from the progress callback to stop an upload; the reason is kept."""

    def __init__(self, reason: BaseException | None = None) -> None:
        super().__init__("upload stopped")
        self.reason = reason


@attrs.define
class UploadRun:
    """What one ``snapshots upload`` did: its result, how long it took, how it ended."""

    result: BulkResult
    elapsed: float
    interrupted: bool = False
    #: An error that stopped the whole upload (a 401, an unreachable server).
    fatal: GtmhubError | None = None


def _fatal_failure(result: BulkResult) -> GtmhubError | None:
    """Return an error that would fail every other row too, so the upload should stop."""
    if not result.failed:
        return None
    error = result.failed[-1].error
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return error
    # A server that cannot be reached at all fails every row the same slow way.
    if (
        isinstance(error, TransportError)
        and not isinstance(error, UnknownOutcomeError)
        and result.succeeded_count == 0
    ):
        return error
    return None


async def upload_rows(
    client: GtmhubClient,
    items: Iterable[SnapshotUpload],
    *,
    concurrency: int,
    journal: str | None,
    retry_unknown: bool,
    stop_on_error: bool,
    progress: Progress,
    reconcile: bool = False,
    fsync: FsyncMode = "group",
) -> UploadRun:
    """Upload items read lazily; a first Ctrl-C lets those in flight finish, a second cancels."""
    result = BulkResult()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stop: list[BaseException | None] = []
    failed_seen = 0

    def on_progress(done: int, total: int | None) -> None:
        nonlocal failed_seen
        progress.update(done, failed=result.failed_count, unknown=result.unknown_count)
        if result.failed_count != failed_seen:
            failed_seen = result.failed_count
            fatal = _fatal_failure(result)
            if fatal is not None:
                raise _StopUpload(fatal)
        if stop:
            raise _StopUpload(stop[0])

    def on_sigint() -> None:
        if stop:
            # The second Ctrl-C: do not wait for the requests in flight.
            task.cancel()
            return
        stop.append(None)
        progress.close()
        click.echo(
            "interrupted: finishing the requests in flight (Ctrl-C again to stop at once)",
            err=True,
        )

    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError):
        # Not on Windows' loops, nor outside the main thread: Ctrl-C then cancels at once.
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        handled = True
    started = time.monotonic()
    outcome = UploadRun(result, 0.0)
    try:
        async with client:
            # The flags forwarded by name to the SDK's upload_snapshots, whose own signature
            # (resources.py) lists the same keywords: the repetition is the call itself.
            await client.kpis.upload_snapshots(
                items,
                concurrency=concurrency,
                on_progress=on_progress,
                stop_on_error=stop_on_error,
                journal=journal,
                retry_unknown=retry_unknown,
                keep_succeeded=False,
                result=result,
                reconcile=reconcile,
                fsync=fsync,
            )
    except _StopUpload as exc:
        if isinstance(exc.reason, GtmhubError):
            outcome.fatal = exc.reason
        else:
            outcome.interrupted = True
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels the main task, or our handler did): keep the partial
        # result; the items in flight are recorded as unknown by upload_snapshots.
        task.uncancel()
        outcome.interrupted = True
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        progress.close()
    outcome.elapsed = time.monotonic() - started
    return outcome


def _rate_limit(rate: float, redis_url: str | None) -> LimiterFactory:
    if not redis_url:
        return RateLimit(rate)
    try:
        from gtmhub_async.redis_limits import RedisRateLimit
    except ImportError as exc:
        fail(
            f"--redis-url needs the redis package ({exc}); install gtmhub-async[redis]",
            EXIT_USAGE,
        )
    try:
        return RedisRateLimit.from_url(redis_url, rate)
    except (TypeError, ValueError) as exc:
        fail(f"bad --redis-url: {exc}", EXIT_USAGE)


def _survey(source: SnapshotFile) -> tuple[int, list[BadRow]]:
    """Read the file once: count its good rows and keep its bad ones (to report them)."""
    good = 0
    bad: list[BadRow] = []
    for row in source.rows():
        if isinstance(row, SnapshotRow):
            good += 1
        else:
            bad.append(row)
    return good, bad


def _good_rows(source: SnapshotFile) -> Iterator[SnapshotRow]:
    return (row for row in source.rows() if isinstance(row, SnapshotRow))


def _report_bad(bad: Iterable[BadRow]) -> None:
    for row in bad:
        click.echo(f"{row.where()}: bad row: {row.reason}")


def _report_rows(source: SnapshotFile, result: BulkResult, bad: list[BadRow]) -> None:
    """Print every failed, unknown and bad row by number, reading the file once more if needed."""
    reasons: dict[int, tuple[str, str]] = {}
    for kind, items in (("failed", result.failed), ("unknown", result.unknown)):
        for item in items:
            reasons[item.index] = (kind, row_reason(item.error))
    lines: list[tuple[int, int, str, str]] = [(r.number, r.line, "bad row", r.reason) for r in bad]
    if reasons:
        for index, row in enumerate(_good_rows(source)):
            if index in reasons:
                lines.append((row.number, row.line, *reasons[index]))
    for number, line, kind, why in sorted(lines, key=lambda t: t[0]):
        click.echo(f"row {number} (line {line}): {kind}: {why}")


@snapshots.command("upload")
@click.argument("file", metavar="FILE")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=16,
    show_default=True,
    help="Requests in flight at most.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Requests per second at most (a client-side rate limit).",
)
@click.option(
    "--redis-url",
    envvar="GTMHUB_REDIS_URL",
    show_envvar=True,
    metavar="URL",
    help="Share the --rate limit with other processes through this Redis.",
)
@click.option("--dry-run", is_flag=True, help="Check every row and send nothing.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="Record each row's outcome here; a re-run skips the rows already uploaded.",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="With --journal: send again the rows it records as unknown (check the server first).",
)
@click.option(
    "--reconcile",
    is_flag=True,
    help="Read back the day of every row of unknown outcome: count it if it holds the value, "
    "send it once more if it holds none, report a conflict otherwise.",
)
@click.option(
    "--fsync",
    type=click.Choice(["group", "line", "none"]),
    default="group",
    show_default=True,
    help="With --journal: make each intent durable before its POST, with fsyncs shared by "
    "concurrent rows (group) or one each (line); none only flushes (a power loss can lose "
    "lines).",
)
@click.option("--stop-on-error", is_flag=True, help="Stop at the first row that fails.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
@api_options
def snapshots_upload(
    api: ApiOptions,
    file: str,
    concurrency: int,
    rate: float,
    redis_url: str | None,
    dry_run: bool,
    journal: str | None,
    retry_unknown: bool,
    reconcile: bool,
    fsync: FsyncMode,
    stop_on_error: bool,
    progress: bool | None,
) -> int:
    """Upload snapshots from a CSV (with a header) or JSON-lines FILE ('-' for stdin).

    Columns: kpi_id, date (YYYY-MM-DD), value, and optionally time_zone and
    description. Every row that is bad, fails or has an unknown outcome is
    reported with its row number and why; the exit status is then 1.
    """
    with SnapshotFile.open(file) as source:
        good, bad = _survey(source)
        if dry_run:
            _report_bad(bad)
            click.echo(f"dry run: {plural(good, 'row')} OK, {len(bad):,} bad; nothing was sent")
            return EXIT_FAILED if bad else EXIT_OK
        if not good:
            _report_bad(bad)
            click.echo(f"nothing to upload: {plural(len(bad), 'bad row')}")
            return EXIT_FAILED if bad else EXIT_OK
        client = api.client(_rate_limit(rate, redis_url))
        bar = Progress(
            good, stream=sys.stderr, enabled=progress_enabled(progress), label="uploading"
        )
        items = (SnapshotUpload(row.kpi_id, row.snapshot) for row in _good_rows(source))
        outcome = run(
            upload_rows(
                client,
                items,
                concurrency=concurrency,
                journal=journal,
                retry_unknown=retry_unknown,
                stop_on_error=stop_on_error,
                progress=bar,
                reconcile=reconcile,
                fsync=fsync,
            )
        )
        if outcome.fatal is not None:
            error = explain(outcome.fatal, base_url=client.base_url)
            done = outcome.result.succeeded_count
            suffix = f" ({plural(done, 'row')} uploaded before it stopped)" if done else ""
            raise CliError(f"{error.message}{suffix}", error.code)
        _report_rows(source, outcome.result, bad)
    return _summary(outcome, good, bad, journal=journal, reconcile=reconcile)


def _summary(
    outcome: UploadRun, good: int, bad: list[BadRow], *, journal: str | None, reconcile: bool
) -> int:
    """Print the closing line (and a hint for rows not sent); return the exit status."""
    result = outcome.result
    not_sent = good - result.consumed + result.not_attempted_count
    skipped = f" ({result.skipped_count:,} already in the journal)" if result.skipped_count else ""
    settled = (
        f"; read back: {result.reconciled_count:,} reconciled as applied, "
        f"{result.resent_count:,} resent, {result.conflict_count:,} conflicting"
        if reconcile
        else ""
    )
    click.echo(
        f"{'interrupted' if outcome.interrupted else 'done'} in {outcome.elapsed:.1f} s: "
        f"{result.succeeded_count:,} of {plural(good + len(bad), 'row')} uploaded"
        f"{skipped}, {result.failed_count:,} failed, {result.unknown_count:,} unknown, "
        f"{len(bad):,} bad, {not_sent:,} not sent{settled}"
    )
    if not_sent:
        hint = (
            "re-run the same command to send the rest"
            if journal
            else "pass --journal FILE to be able to continue an upload without duplicates"
        )
        click.echo(f"{plural(not_sent, 'row')} not sent: {hint}", err=True)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if result.failed_count or result.unknown_count or bad or not_sent:
        return EXIT_FAILED
    return EXIT_OK
