"""The ``gtmhub-async`` command-line program: demo, fake server, KPI and snapshot commands.

Exit status: 0 when everything worked, 1 when some rows failed or are unknown or
a check failed, 2 for a usage or configuration error, 130 after Ctrl-C. Every
error is one line on stderr, never with a traceback and never with the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
import math
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import attrs
import click
import orjson

from gtmhub_async import converter
from gtmhub_async._version import __version__
from gtmhub_async.bulk import BulkResult, SnapshotUpload
from gtmhub_async.client import DEFAULT_BASE_URL, GtmhubClient, Region
from gtmhub_async.errors import (
    ApiError,
    AuthenticationError,
    GtmhubError,
    NotFoundError,
    PermissionDeniedError,
    RateLimiterUnavailableError,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.journal import FsyncMode
from gtmhub_async.limits import DEFAULT_RATE_LIMIT, LimiterFactory, RateLimit
from gtmhub_async.models import (
    Aggregation,
    CreateKpiRequest,
    Kpi,
    KpiFormatting,
    KpiSnapshot,
    KpiSnapshotRequest,
    TargetOperator,
    WriteResult,
    check_object_id,
    time_zone_form,
)
from gtmhub_async.pagination import PaginationError

if TYPE_CHECKING:
    from gtmhub_async.testing import FakeGtmhub, Faults

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BadRow",
    "CliError",
    "Progress",
    "SnapshotRow",
    "cli",
    "main",
    "read_snapshot_rows",
]

T = TypeVar("T")

EXIT_OK: Final = 0
#: Some rows failed or are unknown, or a check failed.
EXIT_FAILED: Final = 1
#: A usage or configuration error: nothing (more) was sent.
EXIT_USAGE: Final = 2
#: Interrupted by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED: Final = 130

PROG: Final = "gtmhub-async"


class CliError(Exception):
    """Stop the program with one line on stderr and an exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    raise CliError(message, code)


# --- The program and its error handling ----------------------------------------------


class _Program(click.Group):
    """The root group: turns every error into one line on stderr and an exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the program; exit with its status (or return it when not standalone)."""
        code = run_program(
            lambda: super(_Program, self).main(
                args,
                prog_name or PROG,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_program(invoke: Callable[[], Any]) -> int:
    """Call ``invoke`` (click's non-standalone main) and return the exit status."""
    try:
        result = invoke()
    except CliError as exc:
        _error(exc.message)
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        # click turns KeyboardInterrupt (also the one asyncio.run re-raises) into Abort.
        _error("interrupted")
        return EXIT_INTERRUPTED
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(f"{_one_line(exc.format_message())}{hint}")
        return EXIT_USAGE
    except click.ClickException as exc:
        _error(_one_line(exc.format_message()))
        return EXIT_USAGE
    except GtmhubError as exc:
        error = explain(exc)
        _error(error.message)
        return error.code
    except OSError as exc:
        _error(_os_error(exc))
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, with what is needed to report it
        _error(f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")
        return EXIT_FAILED
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return EXIT_OK


def _error(message: str) -> None:
    click.echo(f"{PROG}: error: {_one_line(message)}", err=True)


def _os_error(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}:{where}" if exc.strerror else _one_line(str(exc))


def explain(exc: GtmhubError, *, base_url: str | None = None) -> CliError:
    """Return the one-line error and exit status that stand for an SDK error."""
    if isinstance(exc, PaginationError) and isinstance(exc.__cause__, GtmhubError):
        # The page's own error says what to fix; the walk's position is secondary.
        inner = explain(exc.__cause__, base_url=base_url)
        after = f" (after {_plural(exc.yielded, 'KPI')})" if exc.yielded else ""
        return CliError(f"{inner.message}{after}", inner.code)
    if isinstance(exc, AuthenticationError):
        return CliError(
            f"the server rejected the token (HTTP 401: {_one_line(exc.message)}); "
            "check GTMHUB_TOKEN or --token",
            EXIT_USAGE,
        )
    if isinstance(exc, PermissionDeniedError):
        return CliError(
            f"permission denied (HTTP 403: {_one_line(exc.message)}); check GTMHUB_ACCOUNT_ID "
            "or --account-id and the token's permissions",
            EXIT_USAGE,
        )
    if isinstance(exc, NotFoundError):
        return CliError(f"not found (HTTP 404: {_one_line(exc.message)})")
    if isinstance(exc, ApiError):
        return CliError(_one_line(str(exc)))
    if isinstance(exc, UnknownOutcomeError):
        return CliError(_one_line(str(exc)))
    if isinstance(exc, TransportError):
        where = f"cannot reach {base_url}: " if base_url else ""
        return CliError(f"{where}{_one_line(str(exc))}")
    if isinstance(exc, RateLimiterUnavailableError):
        return CliError(f"the shared rate limiter is unavailable: {_one_line(str(exc))}")
    return CliError(_one_line(str(exc)))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a fresh event loop."""
    return asyncio.run(coro)


@click.group(cls=_Program, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Work with the Gtmhub (Quantive Results) KPI API, or try it against a local fake."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the gtmhub-async program and exit with its status."""
    cli.main(args=argv, prog_name=PROG)
    raise AssertionError("unreachable: main() exits")  # pragma: no cover


# --- Configuration of commands that talk to the API ---------------------------------


@attrs.frozen
class ApiOptions:
    """Where and as whom to call the API, as given by flags and the environment."""

    token: str | None
    account_id: str | None
    base_url: str | None
    region: str | None
    timeout: float
    #: Whether ``base_url`` came from GTMHUB_BASE_URL rather than --base-url.
    base_url_from_env: bool = False
    #: --proxy / GTMHUB_PROXY (credentials in it go to proxy_auth, never to a message).
    proxy: str | None = None
    #: --ca-bundle / GTMHUB_CA_BUNDLE.
    ca_bundle: str | None = None

    def resolved_base_url(self) -> str:
        """Return the API root: --base-url, else --region, else GTMHUB_BASE_URL, else default."""
        if self.region and self.base_url and not self.base_url_from_env:
            _fail("give --base-url or --region, not both", EXIT_USAGE)
        if self.region:
            return Region(self.region).base_url()
        return self.base_url or DEFAULT_BASE_URL

    def client(self, rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT) -> GtmhubClient:
        """Return a client (not yet opened); raise CliError for a missing or bad setting."""
        if not self.token:
            _fail("no API token: set GTMHUB_TOKEN or pass --token", EXIT_USAGE)
        if not self.account_id:
            _fail("no account id: set GTMHUB_ACCOUNT_ID or pass --account-id", EXIT_USAGE)
        base_url = self.resolved_base_url()
        try:
            check_object_id(self.account_id, "the account id")
        except (TypeError, ValueError) as exc:
            _fail(f"{exc} (GTMHUB_ACCOUNT_ID or --account-id)", EXIT_USAGE)
        try:
            return GtmhubClient(
                self.token,
                self.account_id,
                base_url=base_url,
                rate_limit=rate_limit,
                timeout=self.timeout,
                proxy=self.proxy,
                ca_bundle=self.ca_bundle,
            )
        except (TypeError, ValueError) as exc:
            # The client's messages never contain the token's value.
            _fail(f"bad configuration: {exc}", EXIT_USAGE)


_API_OPTION_NAMES: Final = (
    "token",
    "account_id",
    "base_url",
    "region",
    "timeout",
    "proxy",
    "ca_bundle",
)


def api_options(f: Callable[..., T]) -> Callable[..., T]:
    """Add --token, --account-id, --base-url, --region, --timeout, --proxy, --ca-bundle."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        values = {name: kwargs.pop(name) for name in _API_OPTION_NAMES}
        ctx = click.get_current_context()
        source = ctx.get_parameter_source("base_url")
        kwargs["api"] = ApiOptions(
            **values, base_url_from_env=source is click.core.ParameterSource.ENVIRONMENT
        )
        return f(*args, **kwargs)

    options = [
        click.option(
            "--token",
            envvar="GTMHUB_TOKEN",
            show_envvar=True,
            metavar="TOKEN",
            help="API token (prefer the environment variable: flags show in process lists).",
        ),
        click.option(
            "--account-id",
            envvar="GTMHUB_ACCOUNT_ID",
            show_envvar=True,
            metavar="ID",
            help="Account id (24 hex digits).",
        ),
        click.option(
            "--base-url",
            envvar="GTMHUB_BASE_URL",
            show_envvar=True,
            metavar="URL",
            help=f"API root without the version [default: {DEFAULT_BASE_URL}].",
        ),
        click.option(
            "--region",
            type=click.Choice([r.value for r in Region]),
            help="Use the Quantive Results host of this data centre.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds one call may take, retries included.",
        ),
        click.option(
            "--proxy",
            envvar="GTMHUB_PROXY",
            show_envvar=True,
            metavar="URL",
            help="HTTP(S) proxy [default: HTTPS_PROXY / NO_PROXY from the environment].",
        ),
        click.option(
            "--ca-bundle",
            envvar="GTMHUB_CA_BUNDLE",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=True),
            help="CA certificates (file or directory) to verify the server with.",
        ),
    ]
    decorated: Callable[..., T] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


async def _with_client(
    api: ApiOptions,
    body: Callable[[GtmhubClient], Awaitable[T]],
    *,
    rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT,
) -> T:
    client = api.client(rate_limit)
    try:
        async with client:
            return await body(client)
    except GtmhubError as exc:
        raise explain(exc, base_url=client.base_url) from None


def _call(
    api: ApiOptions,
    body: Callable[[GtmhubClient], Awaitable[T]],
    *,
    rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT,
) -> T:
    return _run(_with_client(api, body, rate_limit=rate_limit))


# --- Output ------------------------------------------------------------------------


def _dumps(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()


def _pretty(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _cell(value: Any, width: int = 40) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        text = ",".join(_cell(v, width) for v in value)
    elif isinstance(value, dict):
        text = _dumps(value)
    elif isinstance(value, float):
        text = f"{value:g}" if abs(value) < 1e15 else repr(value)
    else:
        text = str(value)
    text = _one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Return the lines of a plain-text table with left-aligned columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    # camelCase wire names read better as TARGET_OPERATOR than as TARGETOPERATOR.
    titles = [re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", h).upper() for h in headers]
    widths = [max(w, len(t)) for w, t in zip(widths, titles, strict=True)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip())
    return lines


def kpi_json(kpi: Kpi, fields: Sequence[str] | None = None) -> dict[str, Any]:
    """Return a KPI as its wire JSON (camelCase); with ``fields``, only those and the id."""
    data: dict[str, Any] = converter.unstructure(kpi)
    if fields:
        wanted = {"id", *(f.split(".")[0] for f in fields)}
        data = {k: v for k, v in data.items() if k in wanted}
    return data


_KPI_COLUMNS: Final = ("id", "name", "aggregation", "targetOperator", "ownerIds", "dateUpdated")


def _split_names(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def snapshot_json(snapshot: KpiSnapshot) -> dict[str, Any]:
    """Return a snapshot as ``{kpi_id, date, value, ...}``, the columns of an upload file."""
    data: dict[str, Any] = {
        "kpi_id": snapshot.kpi_id,
        "date": snapshot.group.isoformat() if snapshot.group is not None else None,
        "value": snapshot.value,
    }
    if snapshot.time_zone is not None:
        data["time_zone"] = snapshot.time_zone
    if snapshot.description is not None:
        data["description"] = snapshot.description
    return data


# --- Progress bar ------------------------------------------------------------------


class Progress:
    """Draw a one-line progress bar on a stream, at most every ``interval`` seconds."""

    def __init__(
        self,
        total: int,
        *,
        stream: IO[str] | None = None,
        enabled: bool = True,
        label: str = "",
        width: int = 24,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.label = label
        self.width = width
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.unknown = 0
        self._started = clock()
        self._drawn_at = -math.inf
        self._last_width = 0

    def update(self, done: int, *, failed: int = 0, unknown: int = 0) -> None:
        """Record how many items are finished (and of those, failed or unknown); redraw."""
        self.done, self.failed, self.unknown = done, failed, unknown
        now = self.clock()
        if self.enabled and (now - self._drawn_at >= self.interval or done >= self.total):
            self._drawn_at = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """Return the bar's text: ``label [####....] done/total pct rate ETA counts``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        share = self.done / self.total if self.total else 1.0
        filled = min(self.width, int(share * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        rate = self.done / elapsed
        if self.done >= self.total:
            eta = f"{elapsed:.1f}s"
        elif rate > 0:
            eta = f"ETA {(self.total - self.done) / rate:.0f}s"
        else:
            eta = "ETA ?"
        parts = [
            f"{self.label} [{bar}] {self.done:,}/{self.total:,} {share:4.0%}",
            f"{rate:,.0f}/s",
            eta,
        ]
        if self.failed:
            parts.append(f"failed {self.failed:,}")
        if self.unknown:
            parts.append(f"unknown {self.unknown:,}")
        return "  ".join(parts).strip()

    def _draw(self, now: float) -> None:
        assert self.stream is not None
        text = self.line(now)
        # Pad over a longer previous line: "\r" alone would leave its tail visible.
        pad = " " * max(0, self._last_width - len(text))
        self._last_width = len(text)
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(self.clock())
            assert self.stream is not None
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


def _progress_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty()


# --- Reading snapshot files ----------------------------------------------------------


@attrs.frozen
class SnapshotRow:
    """One valid row of a snapshot file: where it is, and what to upload."""

    #: 1-based number of the data row (the CSV header is not a row).
    number: int
    #: Line of the file where the row starts.
    line: int
    kpi_id: str
    snapshot: KpiSnapshotRequest

    def where(self) -> str:
        """Return ``row N (line L)``."""
        return f"row {self.number} (line {self.line})"


@attrs.frozen
class BadRow:
    """A row of a snapshot file that cannot be uploaded, and why."""

    number: int
    line: int
    reason: str

    def where(self) -> str:
        """Return ``row N (line L)``."""
        return f"row {self.number} (line {self.line})"


_COLUMNS: Final = {
    "kpiid": "kpi_id",
    "date": "date",
    "value": "value",
    "timezone": "time_zone",
    "description": "description",
}
_REQUIRED: Final = ("kpi_id", "date", "value")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _column(name: str) -> str | None:
    return _COLUMNS.get(re.sub(r"[\s_\-]", "", name).lower())


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else _dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _known_time_zones() -> frozenset[str]:
    import zoneinfo

    try:
        return frozenset(zoneinfo.available_timezones())
    except Exception:  # no tz database: time zones are then left to the server to check
        return frozenset()


def _check_time_zone(time_zone: str, warned: set[str] | None) -> None:
    """Accept UTC, UTC±H, UTC±HH:MM [C] and known IANA names; pass any other form on.

    The real API accepts ``UTC+2`` / ``UTC-7`` [C]; what else it accepts is not
    known [I]: the account's setting decides, not the SDK. So a form that is not
    known either way is sent as is, with one warning per value (per file when
    ``warned`` is that file's set). Only an Area/Location name that the tz database
    does not know (a typo such as ``Europe/Sofai``) is refused.
    """
    if time_zone_form(time_zone) is not None:
        return
    zones = _known_time_zones()
    if zones and "/" in time_zone and not time_zone.startswith("UTC"):
        raise ValueError(
            f"time_zone {time_zone!r} is not a known IANA time zone (nor UTC, UTC±H, UTC±HH:MM)"
        )
    if warned is None or time_zone not in warned:
        if warned is not None:
            warned.add(time_zone)
        click.echo(
            f"{PROG}: warning: time_zone {time_zone!r} is neither UTC±H nor a known IANA "
            "name; sent as is (the account's report settings decide)",
            err=True,
        )


def parse_row(
    fields: dict[str, Any], *, from_json: bool = False, warned: set[str] | None = None
) -> tuple[str, KpiSnapshotRequest]:
    """Return the KPI id and snapshot of one row's fields, or raise ValueError saying why.

    ``warned`` collects the time zones already warned about (one warning per value).
    """
    missing = [c for c in _REQUIRED if fields.get(c) in (None, "")]
    if missing:
        raise ValueError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    kpi_id = fields["kpi_id"]
    if not isinstance(kpi_id, str):
        raise ValueError(f"kpi_id must be a string of 24 hex digits, got {_show(kpi_id)}")
    kpi_id = kpi_id.strip()
    try:
        check_object_id(kpi_id, "kpi_id")
    except ValueError:
        raise ValueError(f"kpi_id must be 24 hex digits, got {_show(kpi_id)}") from None
    raw_day = fields["date"]
    if not isinstance(raw_day, str) or not _DAY.match(raw_day.strip()):
        raise ValueError(f"date must be YYYY-MM-DD, got {_show(raw_day)}")
    try:
        day = date.fromisoformat(raw_day.strip())
    except ValueError:
        raise ValueError(f"date {raw_day.strip()!r} is not a real day") from None
    raw_value = fields["value"]
    if from_json:
        if isinstance(raw_value, bool) or not isinstance(raw_value, int | float):
            raise ValueError(f"value must be a JSON number, got {_show(raw_value)}")
        value = float(raw_value)
    else:
        text = str(raw_value).strip()
        if not _NUMBER.match(text):
            raise ValueError(f"value must be a number, got {_show(raw_value)}")
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {_show(raw_value)}")
    time_zone = _optional_text(fields.get("time_zone"), "time_zone")
    if time_zone is not None:
        _check_time_zone(time_zone, warned)
    description = _optional_text(fields.get("description"), "description")
    return kpi_id, KpiSnapshotRequest(
        group=day, value=value, time_zone=time_zone, description=description
    )


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_show(value)}")
    return value.strip() or None


def _open_text(path: str) -> IO[str]:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    p = Path(path)
    if p.is_dir():
        _fail(f"{path} is a directory, not a snapshot file", EXIT_USAGE)
    try:
        # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
        return p.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        _fail(f"file not found: {path}", EXIT_USAGE)
    except OSError as exc:
        _fail(f"cannot open {path}: {exc.strerror or exc}", EXIT_USAGE)


def _is_jsonl(path: str, head: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv", ".txt"):
        return False
    return head.lstrip().startswith("{")


def read_snapshot_rows(path: str) -> tuple[list[SnapshotRow], list[BadRow]]:
    """Read a CSV (with a header) or JSON-lines snapshot file; return good and bad rows.

    Columns: kpi_id, date (YYYY-MM-DD), value, and optional time_zone, description.
    A file-level problem (not found, not UTF-8, a bad header) raises CliError.
    """
    with _open_text(path) as stream:
        try:
            text = stream.read()
        except UnicodeDecodeError as exc:
            _fail(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})", EXIT_USAGE)
    if not text.strip():
        _fail(f"{path} is empty: expected a CSV header or JSON lines", EXIT_USAGE)
    if _is_jsonl(path, text):
        return _read_jsonl(text)
    return _read_csv(path, text)


def _read_csv(path: str, text: str) -> tuple[list[SnapshotRow], list[BadRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        _fail(f"{path} has no CSV header", EXIT_USAGE)
    except csv.Error as exc:
        _fail(f"{path}: bad CSV header: {exc}", EXIT_USAGE)
    names: list[str] = []
    for cell in header:
        name = _column(cell)
        if name is None:
            _fail(
                f"{path}: unknown column {cell.strip()!r} in the CSV header; expected "
                "kpi_id, date, value and optionally time_zone, description",
                EXIT_USAGE,
            )
        if name in names:
            _fail(f"{path}: column {name!r} appears twice in the CSV header", EXIT_USAGE)
        names.append(name)
    absent = [c for c in _REQUIRED if c not in names]
    if absent:
        _fail(
            f"{path}: the CSV header lacks the column{'s' if len(absent) > 1 else ''} "
            f"{', '.join(absent)} (it has {', '.join(names)})",
            EXIT_USAGE,
        )
    good: list[SnapshotRow] = []
    bad: list[BadRow] = []
    warned: set[str] = set()
    number = 0
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            bad.append(BadRow(number, line, f"bad CSV: {exc}"))
            line = reader.line_num + 1
            continue
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        number += 1
        if len(cells) != len(names):
            bad.append(
                BadRow(number, start, f"has {len(cells)} fields, the header has {len(names)}")
            )
            continue
        try:
            kpi_id, snapshot = parse_row(dict(zip(names, cells, strict=True)), warned=warned)
        except ValueError as exc:
            bad.append(BadRow(number, start, str(exc)))
            continue
        good.append(SnapshotRow(number, start, kpi_id, snapshot))
    return good, bad


def _read_jsonl(text: str) -> tuple[list[SnapshotRow], list[BadRow]]:
    good: list[SnapshotRow] = []
    bad: list[BadRow] = []
    warned: set[str] = set()
    number = 0
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        number += 1
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            bad.append(BadRow(number, line, f"not valid JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            bad.append(BadRow(number, line, f"must be a JSON object, got {_show(data)}"))
            continue
        fields: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            name = _column(key)
            if name is None:
                unknown.append(key)
            else:
                fields[name] = value
        if unknown:
            bad.append(
                BadRow(
                    number,
                    line,
                    f"unknown field {', '.join(map(repr, unknown))}; expected kpi_id, date, "
                    "value and optionally time_zone, description",
                )
            )
            continue
        try:
            kpi_id, snapshot = parse_row(fields, from_json=True, warned=warned)
        except ValueError as exc:
            bad.append(BadRow(number, line, str(exc)))
            continue
        good.append(SnapshotRow(number, line, kpi_id, snapshot))
    return good, bad


# --- kpis ----------------------------------------------------------------------------


@cli.group()
def kpis() -> None:
    """List, read, create and delete KPIs."""


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        _fail(f"{name} is not valid JSON: {exc}", EXIT_USAGE)


@kpis.command("list")
@click.option(
    "--filter", "filter_", metavar="JSON", help='Mongo-style filter, e.g. \'{"name": "x"}\'.'
)
@click.option("--sort", metavar="FIELDS", help="Sort keys, comma-separated; '-name' sorts down.")
@click.option("--fields", metavar="FIELDS", help="Fields to return, comma-separated.")
@click.option("--max", "max_items", type=click.IntRange(min=0), help="Stop after N KPIs.")
@click.option(
    "--page-size", type=click.IntRange(1, 500), default=100, show_default=True, help="KPIs a page."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="table for people, jsonl (one KPI per line) for programs.",
)
@api_options
def kpis_list(
    api: ApiOptions,
    filter_: str | None,
    sort: str | None,
    fields: str | None,
    max_items: int | None,
    page_size: int,
    fmt: str,
) -> None:
    """List KPIs, page by page, as a table or JSON lines."""
    filter_value = _json_option(filter_, "--filter")
    if filter_value is not None and not isinstance(filter_value, dict):
        _fail("--filter must be a JSON object", EXIT_USAGE)
    field_names = _split_names([fields]) if fields else None
    if fields is not None and not field_names:
        _fail("--fields must name at least one field", EXIT_USAGE)

    async def body(client: GtmhubClient) -> list[Kpi]:
        found: list[Kpi] = []
        async with client.kpis.list(
            filter=filter_value,
            sort=sort,
            fields=field_names,
            page_size=page_size,
            max_items=max_items,
        ) as walk:
            async for kpi in walk:
                if fmt == "jsonl":
                    click.echo(_dumps(kpi_json(kpi, field_names)))
                else:
                    found.append(kpi)
        return found

    found = _call(api, body)
    if fmt == "table":
        columns = ["id", *(f for f in field_names if f != "id")] if field_names else _KPI_COLUMNS
        rows = [[kpi_json(k).get(c) for c in columns] for k in found]
        for line in format_table(list(columns), rows):
            click.echo(line)
        click.echo(f"{len(found)} KPI{'s' if len(found) != 1 else ''}", err=True)


def _kpi_id(value: str) -> str:
    try:
        return check_object_id(value.strip(), "the KPI id")
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)


@kpis.command("get")
@click.argument("kpi_id")
@click.option("--plain-text", is_flag=True, help="Render the description without mention markup.")
@api_options
def kpis_get(api: ApiOptions, kpi_id: str, plain_text: bool) -> None:
    """Print one KPI as JSON."""
    from gtmhub_async.models import Formatting

    kpi_id = _kpi_id(kpi_id)
    formatting = Formatting.PLAIN_TEXT if plain_text else None
    kpi = _call(api, lambda client: client.kpis.get(kpi_id, formatting=formatting))
    click.echo(_pretty(kpi_json(kpi)))


@kpis.command("create")
@click.option("--name", required=True, help="The KPI's name.")
@click.option("--owner", "owners", multiple=True, metavar="ID", help="Owner id (repeatable).")
@click.option(
    "--aggregation",
    type=click.Choice([a.value for a in Aggregation]),
    default=Aggregation.LAST.value,
    show_default=True,
    help="How the values of one day combine.",
)
@click.option(
    "--target-operator",
    type=click.Choice([t.value for t in TargetOperator]),
    default=TargetOperator.SHOULD_INCREASE.value,
    show_default=True,
    help="Whether more or less is better.",
)
@click.option("--description", help="Description (markup allowed).")
@click.option("--group", "groups", multiple=True, metavar="ID", help="KPI group id (repeatable).")
@click.option("--prefix", default=None, help="Shown before the value, e.g. '$'.")
@click.option("--suffix", default=None, help="Shown after the value, e.g. '%'.")
@click.option("--fraction-size", type=click.IntRange(0, 10), default=None, help="Decimals shown.")
@api_options
def kpis_create(
    api: ApiOptions,
    name: str,
    owners: tuple[str, ...],
    aggregation: str,
    target_operator: str,
    description: str | None,
    groups: tuple[str, ...],
    prefix: str | None,
    suffix: str | None,
    fraction_size: int | None,
) -> None:
    """Create a KPI and print it as JSON."""
    formatting = None
    if prefix is not None or suffix is not None or fraction_size is not None:
        formatting = KpiFormatting(
            prefix=prefix or "", suffix=suffix or "", fraction_size=fraction_size or 0
        )
    try:
        request = CreateKpiRequest(
            name=name,
            owner_ids=_split_names(owners),
            aggregation=Aggregation(aggregation),
            target_operator=TargetOperator(target_operator),
            formatting=formatting,
            description=description,
            group_ids=_split_names(groups),
        )
    except (TypeError, ValueError) as exc:
        _fail(str(exc), EXIT_USAGE)

    async def body(client: GtmhubClient) -> Kpi | WriteResult:
        try:
            return await client.kpis.create(request)
        except UnknownOutcomeError as exc:
            raise CliError(
                f"the KPI may or may not have been created ({_one_line(str(exc))}); look for it "
                f"with: {PROG} kpis list --filter '{_dumps({'name': name})}' before creating "
                "it again"
            ) from None

    kpi = _call(api, body)
    # A 2xx whose body is not a KPI [I] was still applied: print what is known.
    created = kpi_json(kpi) if isinstance(kpi, Kpi) else {"id": kpi.id, "status": kpi.status}
    click.echo(_pretty(created))


@kpis.command("delete")
@click.argument("kpi_id")
@api_options
def kpis_delete(api: ApiOptions, kpi_id: str) -> None:
    """Delete a KPI and its snapshots."""
    kpi_id = _kpi_id(kpi_id)
    _call(api, lambda client: client.kpis.delete(kpi_id))
    click.echo(f"deleted KPI {kpi_id}")


# --- snapshots -----------------------------------------------------------------------


@cli.group()
def snapshots() -> None:
    """Query and upload KPI snapshots (daily values)."""


_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _ids(values: Iterable[str], flag: str) -> list[str] | None:
    ids = _split_names(values)
    for value in ids:
        try:
            check_object_id(value, f"each {flag}")
        except ValueError as exc:
            _fail(str(exc), EXIT_USAGE)
    return ids or None


@snapshots.command("list")
@click.option("--ids", "ids", multiple=True, metavar="ID[,ID...]", help="KPI ids (repeatable).")
@click.option("--group-ids", multiple=True, metavar="ID[,ID...]", help="KPI group ids.")
@click.option("--ungrouped", is_flag=True, help="Include the KPIs in no group.")
@click.option("--my-kpis", is_flag=True, help="Include the KPIs the token's user owns.")
@click.option("--from", "from_", type=_DATE, metavar="YYYY-MM-DD", help="First day.")
@click.option("--to", type=_DATE, metavar="YYYY-MM-DD", help="Last day.")
@click.option(
    "--time-zone", metavar="TZ", help="Time zone of the days: UTC, UTC+2, UTC-7 or Europe/Sofia."
)
@click.option(
    "--group-by", metavar="PERIOD", help="Group the values by a period (server-defined)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "csv"]),
    default="table",
    show_default=True,
    help="csv writes the columns 'snapshots upload' reads.",
)
@api_options
def snapshots_list(
    api: ApiOptions,
    ids: tuple[str, ...],
    group_ids: tuple[str, ...],
    ungrouped: bool,
    my_kpis: bool,
    from_: datetime | None,
    to: datetime | None,
    time_zone: str | None,
    group_by: str | None,
    fmt: str,
) -> None:
    """Print the daily values of the selected KPIs."""
    first, last = _day(from_), _day(to)
    if first and last and first > last:
        _fail(f"--from {first} is after --to {last}", EXIT_USAGE)
    kpi_ids = _ids(ids, "--ids")
    groups = _ids(group_ids, "--group-ids")
    rows = _call(
        api,
        lambda client: client.kpi_snapshots.list(
            ids=kpi_ids,
            group_ids=groups,
            ungrouped=ungrouped or None,
            my_kpis=my_kpis or None,
            time_zone=time_zone,
            group_by=group_by,
            from_date=first,
            to_date=last,
        ),
    )
    data = [snapshot_json(s) for s in rows]
    if fmt == "jsonl":
        for item in data:
            click.echo(_dumps(item))
    elif fmt == "csv":
        columns = ["kpi_id", "date", "value"]
        columns += [c for c in ("time_zone", "description") if any(c in d for d in data)]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for item in data:
            writer.writerow([_csv_value(item.get(c)) for c in columns])
        click.echo(out.getvalue(), nl=False)
    else:
        for line in format_table(
            ["kpi_id", "date", "value"], [[d["kpi_id"], d["date"], d["value"]] for d in data]
        ):
            click.echo(line)
        click.echo(f"{len(data)} value{'s' if len(data) != 1 else ''}", err=True)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)


# --- snapshots upload ----------------------------------------------------------------


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


def _row_reason(error: BaseException | None) -> str:
    if error is None:
        return "no reason recorded"
    if isinstance(error, GtmhubError):
        return explain(error).message
    return _one_line(f"{type(error).__name__}: {error}")


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
    rows: Sequence[SnapshotRow],
    *,
    concurrency: int,
    journal: str | None,
    retry_unknown: bool,
    stop_on_error: bool,
    progress: Progress,
    reconcile: bool = False,
    fsync: FsyncMode = "group",
) -> UploadRun:
    """Upload rows; the first Ctrl-C lets requests in flight finish, a second one cancels."""
    result = BulkResult()
    items = [SnapshotUpload(row.kpi_id, row.snapshot) for row in rows]
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
    run = UploadRun(result, 0.0)
    try:
        async with client:
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
            run.fatal = exc.reason
        else:
            run.interrupted = True
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels the main task, or our handler did): keep the partial
        # result; the items in flight are recorded as unknown by upload_snapshots.
        task.uncancel()
        run.interrupted = True
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        progress.close()
    run.elapsed = time.monotonic() - started
    return run


def _rate_limit(rate: float, redis_url: str | None) -> LimiterFactory:
    if not redis_url:
        return RateLimit(rate)
    try:
        from gtmhub_async.redis_limits import RedisRateLimit
    except ImportError as exc:
        _fail(
            f"--redis-url needs the redis package ({exc}); install gtmhub-async[redis]",
            EXIT_USAGE,
        )
    try:
        return RedisRateLimit.from_url(redis_url, rate)
    except (TypeError, ValueError) as exc:
        _fail(f"bad --redis-url: {exc}", EXIT_USAGE)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _report_bad(bad: Sequence[BadRow]) -> None:
    for row in bad:
        click.echo(f"{row.where()}: bad row: {row.reason}")


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
    rows, bad = read_snapshot_rows(file)
    if dry_run:
        _report_bad(bad)
        click.echo(f"dry run: {_plural(len(rows), 'row')} OK, {len(bad):,} bad; nothing was sent")
        return EXIT_FAILED if bad else EXIT_OK
    if not rows:
        _report_bad(bad)
        click.echo(f"nothing to upload: {_plural(len(bad), 'bad row')}")
        return EXIT_FAILED if bad else EXIT_OK
    limit = _rate_limit(rate, redis_url)
    client = api.client(limit)
    bar = Progress(
        len(rows), stream=sys.stderr, enabled=_progress_enabled(progress), label="uploading"
    )
    run = _run(
        upload_rows(
            client,
            rows,
            concurrency=concurrency,
            journal=journal,
            retry_unknown=retry_unknown,
            stop_on_error=stop_on_error,
            progress=bar,
            reconcile=reconcile,
            fsync=fsync,
        )
    )
    if run.fatal is not None:
        error = explain(run.fatal, base_url=client.base_url)
        done = run.result.succeeded_count
        suffix = f" ({_plural(done, 'row')} uploaded before it stopped)" if done else ""
        raise CliError(f"{error.message}{suffix}", error.code)
    result = run.result
    lines: list[tuple[int, int, str, str]] = []
    for kind, items in (("failed", result.failed), ("unknown", result.unknown)):
        for item in items:
            row = rows[item.index]
            lines.append((row.number, row.line, kind, _row_reason(item.error)))
    lines += [(row.number, row.line, "bad row", row.reason) for row in bad]
    for number, line, kind, why in sorted(lines, key=lambda t: t[0]):
        click.echo(f"row {number} (line {line}): {kind}: {why}")
    not_sent = len(rows) - result.consumed + result.not_attempted_count
    skipped = f" ({result.skipped_count:,} already in the journal)" if result.skipped_count else ""
    settled = (
        f"; read back: {result.reconciled_count:,} reconciled as applied, "
        f"{result.resent_count:,} resent, {result.conflict_count:,} conflicting"
        if reconcile
        else ""
    )
    click.echo(
        f"{'interrupted' if run.interrupted else 'done'} in {run.elapsed:.1f} s: "
        f"{result.succeeded_count:,} of {_plural(len(rows) + len(bad), 'row')} uploaded"
        f"{skipped}, {result.failed_count:,} failed, {result.unknown_count:,} unknown, "
        f"{len(bad):,} bad, {not_sent:,} not sent{settled}"
    )
    if not_sent:
        hint = (
            "re-run the same command to send the rest"
            if journal
            else "pass --journal FILE to be able to continue an upload without duplicates"
        )
        click.echo(f"{_plural(not_sent, 'row')} not sent: {hint}", err=True)
    if run.interrupted:
        return EXIT_INTERRUPTED
    if result.failed_count or result.unknown_count or bad or not_sent:
        return EXIT_FAILED
    return EXIT_OK


# --- demo ------------------------------------------------------------------------------


@attrs.frozen
class DemoConfig:
    """The demo's knobs: sizes, the fake server's rate limit and latency, faults, seed."""

    kpis: int = 30
    days: int = 365
    #: The fake's rate limit, requests per second; the client is configured with the same.
    rate: int = 800
    concurrency: int = 32
    latency: float = 0.01
    faults: bool = True
    seed: int = 7
    first_day: date = date(2025, 1, 1)


class _DemoFaults:
    """Drive the fake's faults during the demo: random ones, and two scheduled throttles.

    All along: 503s without Retry-After (a POST that gets one has an unknown outcome,
    since the client cannot know that the fake refused it before applying it) and
    connections reset after a write was applied. At a fifth and three fifths of the
    upload: one 429 and one 503 with Retry-After. They are scheduled rather than
    random because each closes the client's shared gate for a second and lowers its
    rate to what the server accepted in the last window: two throttles less than a
    window apart, or one while the client is still ramping up, would make it hold a
    much lower rate for the rest of the run (the limiter takes that count for the
    server's ceiling), and the demo would take minutes instead of seconds.
    """

    def __init__(self, fake: FakeGtmhub, total: int, *, enabled: bool) -> None:
        self.fake = fake
        self.enabled = enabled
        self.schedule = [(total // 5, 429), (total * 3 // 5, 503)] if enabled else []
        self.pending = False
        #: Status -> how many were scripted with Retry-After.
        self.throttles: dict[int, int] = {}
        if enabled:
            fake.set_faults(self._random())

    @staticmethod
    def _random() -> Faults:
        from gtmhub_async.testing import Faults

        return Faults(
            error_rate=0.002, statuses=(503,), retry_after=None, reset_after_write_rate=0.0005
        )

    @staticmethod
    def _throttling() -> Faults:
        from gtmhub_async.testing import Faults

        return Faults(retry_after=1, reset_after_write_rate=0.0005)

    def on_progress(self, done: int) -> None:
        """Restore the random faults after a throttle, or script the next one when due."""
        if self.pending and self.fake.scripted == 0:
            self.fake.set_faults(self._random())
            self.pending = False
        if not self.pending and self.schedule and done >= self.schedule[0][0]:
            _, status = self.schedule.pop(0)
            # A scripted status carries Retry-After only while the faults say so.
            self.fake.set_faults(self._throttling())
            self.fake.script([status])
            self.pending = True
            self.throttles[status] = self.throttles.get(status, 0) + 1


_RECONCILE_ROUNDS: Final = 5


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


async def _create_demo_kpi(
    client: GtmhubClient, request: CreateKpiRequest, report: DemoReport
) -> Kpi:
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


async def _verify(
    client: GtmhubClient,
    expected: dict[str, dict[date, float]],
    skip: set[tuple[str, date]],
    first: date,
    last: date,
    report: DemoReport,
) -> None:
    """Read every KPI's daily values back and compare them with what was uploaded."""

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


async def run_demo(config: DemoConfig, *, progress: bool) -> int:
    """Run the demo against a fake Gtmhub started here; print a summary; return the status."""
    from gtmhub_async.retry import RetryPolicy
    from gtmhub_async.testing import FakeGtmhub

    started = time.monotonic()
    report = DemoReport()
    async with FakeGtmhub(
        seed=config.seed, rate_limit=(config.rate, 1.0), latency=config.latency
    ) as fake:
        faults = "injected faults" if config.faults else "no faults"
        click.echo(
            f"demo: a fake Gtmhub on {fake.base_url} (limit {config.rate:,} requests/s, "
            f"{config.latency * 1000:g} ms latency, {faults}, seed {config.seed})"
        )
        chaos = _DemoFaults(fake, config.kpis * config.days, enabled=config.faults)
        client = fake.client(
            rate_limit=RateLimit(config.rate),
            # More attempts than the default: the demo injects faults on purpose.
            retry=RetryPolicy(max_attempts=6),
            seed=config.seed,
        )
        async with client:
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
            created = await asyncio.gather(
                *(_create_demo_kpi(client, r, report) for r in requests)
            )
            report.created = len(created)
            reconciled = (
                f"; {_plural(report.create_reconciled, 'create')} with an unknown outcome "
                "settled by looking the name up"
                if report.create_reconciled
                else ""
            )
            click.echo(f"created {_plural(len(created), 'KPI')} (last, sum, avg){reconciled}")

            # Day by day across the KPIs, so that every KPI is in progress all along.
            days = [date.fromordinal(config.first_day.toordinal() + d) for d in range(config.days)]
            expected: dict[str, dict[date, float]] = {k.id: {} for k in created}
            items: list[SnapshotUpload] = []
            for d, day in enumerate(days):
                for k, kpi in enumerate(created):
                    value = _demo_value(config.seed, k, d)
                    expected[kpi.id][day] = value
                    items.append(
                        SnapshotUpload(kpi.id, KpiSnapshotRequest(group=day, value=value))
                    )
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
                click.echo(f"  failed: {_row_reason(failure.error)}")

            settled = result.reconciled_count + result.resent_count + result.conflict_count
            if settled or result.unknown_count:
                report.unresolved = [
                    r.item for r in result.unknown if isinstance(r.item, SnapshotUpload)
                ]
                click.echo(
                    "reconciled the unknown outcomes by reading the day back (the library's "
                    f"reconcile=True): {result.reconciled_count:,} had been applied, "
                    f"{result.resent_count:,} had not and were sent again"
                    + (f", {result.conflict_count:,} conflicting" if result.conflict_count else "")
                    + (f", {len(report.unresolved):,} still unknown" if report.unresolved else "")
                )

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
                f"listed {_plural(len(listed), 'KPI')} back in {_plural(pages, 'page')} of "
                f"{page_size}: {'all there, no duplicates' if report.list_ok else 'MISMATCH'}"
            )

            skip = {(i.kpi_id, i.snapshot.group) for i in report.unresolved}
            for failure in result.failed:
                if isinstance(failure.item, SnapshotUpload):
                    expected[failure.item.kpi_id].pop(failure.item.snapshot.group, None)
            await _verify(client, expected, skip, days[0], days[-1], report)
            verdict = (
                "all match"
                if not report.mismatches
                else f"{_plural(len(report.mismatches), 'mismatch')}"
            )
            click.echo(
                f"read back {report.checked:,} daily values of {_plural(len(created), 'KPI')}: "
                f"{verdict}" + (f" ({len(skip):,} unknown days not checked)" if skip else "")
            )
            for line in report.mismatches[:10]:
                click.echo(f"  {line}")
            stats = client.stats

        # The fake's store sees what the API cannot show for a 'last' or 'avg' KPI:
        # whether any snapshot was stored twice.
        for kpi in created:
            per_day: dict[str, int] = {}
            for snapshot in fake.received_snapshots(kpi.id):
                per_day[snapshot["group"]] = per_day.get(snapshot["group"], 0) + 1
            report.duplicates += sum(n - 1 for n in per_day.values() if n > 1)
        seen = fake.requests
        elapsed = time.monotonic() - started
        throttled = sum(1 for r in seen if r.status == 429)
        injected_429 = sum(1 for r in seen if r.fault == "429")
        with_retry_after = chaos.throttles.get(503, 0)
        all_503 = sum(1 for r in seen if r.fault == "503")
        resets = sum(1 for r in seen if r.fault == "reset")
        click.echo(
            f"requests: {len(seen):,} in {elapsed:.1f} s ({len(seen) / elapsed:,.0f}/s; the "
            f"fake's limit {config.rate:,}/s); {stats.retries:,} retries"
        )
        click.echo(
            f"absorbed: {_plural(throttled, '429')} ({injected_429:,} injected, "
            f"{throttled - injected_429:,} from the rate limit) and "
            f"{_plural(with_retry_after, '503')} with Retry-After, waited out and retried"
        )
        click.echo(
            f"settled: {_plural(all_503 - with_retry_after, '503')} without Retry-After and "
            f"{_plural(resets, 'connection')} reset after a write (unknown outcomes for a "
            "POST, retried for a GET)"
        )
        click.echo(f"duplicates stored (checked on the fake's store): {report.duplicates:,}")
    if report.ok:
        click.echo(
            f"result: OK, nothing lost: {len(items):,} of {len(items):,} snapshots stored "
            f"exactly once ({time.monotonic() - started:.1f} s)"
        )
        return EXIT_OK
    click.echo(f"result: FAILED ({time.monotonic() - started:.1f} s)")
    return EXIT_FAILED


@cli.command()
@click.option("--kpis", "n_kpis", type=click.IntRange(1, 500), default=30, show_default=True)
@click.option("--days", type=click.IntRange(1, 3660), default=365, show_default=True)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=800,
    show_default=True,
    help="The fake's rate limit (requests/s); the client uses the same.",
)
@click.option("--concurrency", type=click.IntRange(1, 1000), default=32, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--faults/--no-faults", default=True, show_default=True, help="Inject faults.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
def demo(
    n_kpis: int,
    days: int,
    rate: int,
    concurrency: int,
    latency_ms: float,
    faults: bool,
    seed: int,
    progress: bool | None,
) -> int:
    """Upload a year of daily values for 30 KPIs to a local fake Gtmhub, then check them.

    The fake enforces a rate limit and injects faults (429s and 503s with and
    without Retry-After, connections reset after a write). Uploads whose outcome
    is unknown are settled by reading the day back and sending again only what is
    absent. Exits 0 when every snapshot is on the server exactly once; 1 when any
    failed, is still unknown, or reads back wrong.
    """
    config = DemoConfig(
        kpis=n_kpis,
        days=days,
        rate=rate,
        concurrency=concurrency,
        latency=latency_ms / 1000.0,
        faults=faults,
        seed=seed,
    )
    return _run(run_demo(config, progress=_progress_enabled(progress)))


# --- fake-server ---------------------------------------------------------------------


async def serve_fake(
    *,
    host: str,
    port: int,
    rate_limit: int | None,
    seed: int,
    latency: float,
    kpis: int,
    ready: Callable[[str, FakeGtmhub], None] | None = None,
) -> None:
    """Serve a FakeGtmhub until SIGINT or SIGTERM (or cancellation)."""
    from aiohttp import web

    from gtmhub_async.testing import FakeGtmhub

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with FakeGtmhub(
            seed=seed,
            rate_limit=(rate_limit, 1.0) if rate_limit else None,
            latency=latency,
        ) as fake:
            if kpis:
                fake.add_kpis(kpis)
            url = fake.url
            if (host, port) != ("127.0.0.1", 0):
                # FakeGtmhub binds 127.0.0.1 on a free port; serve its app on the
                # requested address too, through its runner.
                runner = fake._runner
                assert runner is not None
                site = web.TCPSite(runner, host, port)
                try:
                    await site.start()
                except OSError as exc:
                    raise CliError(
                        f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE
                    ) from None
                bound = runner.addresses[-1]
                shown = f"[{host}]" if ":" in host else host
                url = f"http://{shown}:{bound[1]}"
            if ready is not None:
                ready(url, fake)
            await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port [default: a free one]."
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Answer 429 beyond N requests per second [default: no limit].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of ids and token.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Delay per request.")
@click.option("--kpis", type=click.IntRange(min=0), default=0, help="Start with N sample KPIs.")
def fake_server(
    host: str, port: int, rate_limit: int | None, seed: int, latency_ms: float, kpis: int
) -> int:
    """Run a fake Gtmhub KPI API until Ctrl-C; print how to point the CLI or SDK at it."""

    def ready(url: str, fake: FakeGtmhub) -> None:
        limit = f"{rate_limit:,} requests/s" if rate_limit else "none"
        click.echo(f"FakeGtmhub serving on {url} (rate limit: {limit}, seed {seed})")
        click.echo(f"export GTMHUB_BASE_URL={url}/api")
        # The fake's token, printed on purpose: it opens nothing but this fake.
        click.echo(f"export GTMHUB_TOKEN={fake.token}")
        click.echo(f"export GTMHUB_ACCOUNT_ID={fake.account_id}")
        click.echo("Press Ctrl-C to stop.", err=True)

    _run(
        serve_fake(
            host=host,
            port=port,
            rate_limit=rate_limit,
            seed=seed,
            latency=latency_ms / 1000.0,
            kpis=kpis,
            ready=ready,
        )
    )
    click.echo("stopped", err=True)
    return EXIT_OK


if __name__ == "__main__":  # python -m gtmhub_async.cli
    main()
