"""The ``gtmhub-async`` command-line program: demo, fake server, KPI and snapshot commands.

Exit status: 0 when everything worked, 1 when some rows failed or are unknown or
a check failed, 2 for a usage or configuration error, 130 after Ctrl-C. Every
error is one line on stderr, never with a traceback and never with the token.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Final, NoReturn, TypeVar

import attrs
import click
import orjson

from gtmhub_async import converter
from gtmhub_async._version import __version__
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
from gtmhub_async.limits import DEFAULT_RATE_LIMIT, LimiterFactory
from gtmhub_async.models import (
    Aggregation,
    CreateKpiRequest,
    Kpi,
    KpiFormatting,
    KpiSnapshot,
    KpiSnapshotRequest,
    TargetOperator,
    check_object_id,
)

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
            )
        except (TypeError, ValueError) as exc:
            # The client's messages never contain the token's value.
            _fail(f"bad configuration: {exc}", EXIT_USAGE)


_API_OPTION_NAMES: Final = ("token", "account_id", "base_url", "region", "timeout")


def api_options(f: Callable[..., T]) -> Callable[..., T]:
    """Add --token, --account-id, --base-url, --region and --timeout; pass ``api``."""

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
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
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


def parse_row(
    fields: dict[str, Any], *, from_json: bool = False
) -> tuple[str, KpiSnapshotRequest]:
    """Return the KPI id and snapshot of one row's fields, or raise ValueError saying why."""
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
        zones = _known_time_zones()
        if zones and time_zone not in zones:
            raise ValueError(f"time_zone {time_zone!r} is not a known IANA time zone")
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
            kpi_id, snapshot = parse_row(dict(zip(names, cells, strict=True)))
        except ValueError as exc:
            bad.append(BadRow(number, start, str(exc)))
            continue
        good.append(SnapshotRow(number, start, kpi_id, snapshot))
    return good, bad


def _read_jsonl(text: str) -> tuple[list[SnapshotRow], list[BadRow]]:
    good: list[SnapshotRow] = []
    bad: list[BadRow] = []
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
            kpi_id, snapshot = parse_row(fields, from_json=True)
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

    async def body(client: GtmhubClient) -> Kpi:
        try:
            return await client.kpis.create(request)
        except UnknownOutcomeError as exc:
            raise CliError(
                f"the KPI may or may not have been created ({_one_line(str(exc))}); look for it "
                f"with: {PROG} kpis list --filter '{_dumps({'name': name})}' before creating "
                "it again"
            ) from None

    kpi = _call(api, body)
    click.echo(_pretty(kpi_json(kpi)))


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
@click.option("--time-zone", metavar="TZ", help="IANA time zone of the days, e.g. Europe/Sofia.")
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
