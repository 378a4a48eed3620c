"""One row of a snapshot file: its fields checked and made a ``KpiSnapshotRequest``.

The CLI checks what only text can get wrong (a CSV number, ``YYYY-MM-DD``, a kpi id
of 24 hex digits) and leaves what a value may be to the model's own validator.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Any, Final

import attrs
import click

from gtmhub_async._validate import check_object_id
from gtmhub_async.cli.app import PROG
from gtmhub_async.cli.output import dumps
from gtmhub_async.models import KpiSnapshotRequest, time_zone_form

__all__ = ["COLUMNS", "REQUIRED", "BadRow", "SnapshotRow", "column", "parse_row", "show"]


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


#: Column (or JSON key) names, without case, spaces, ``_`` and ``-``, and their fields.
COLUMNS: Final = {
    "kpiid": "kpi_id",
    "date": "date",
    "value": "value",
    "timezone": "time_zone",
    "description": "description",
}
#: The fields every row must have.
REQUIRED: Final = ("kpi_id", "date", "value")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
#: The model's field whose validator decides what a value may be (a finite number).
_VALUE: Final = attrs.fields(KpiSnapshotRequest).value


def column(name: str) -> str | None:
    """Return the field a column header or JSON key names, or None for an unknown one."""
    return COLUMNS.get(re.sub(r"[\s_\-]", "", name).lower())


def show(value: object) -> str:
    """Return a value as quoted in a message: a repr for text, JSON otherwise, at most 40."""
    text = repr(value) if isinstance(value, str) else dumps(value)
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

    What else the API accepts is not known [I]: the account's setting decides. So a
    form not known either way is sent as is, with one warning per value (per file
    when ``warned`` is that file's set). Only an Area/Location name that the tz
    database does not know (a typo such as ``Europe/Sofai``) is refused.
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


def _value(raw: object, *, from_json: bool) -> float:
    """Return a row's value; the model's validator decides whether it is a finite number."""
    value: Any
    if from_json:
        value = raw
    else:
        text = str(raw).strip()
        if not _NUMBER.match(text):
            raise ValueError(f"value must be a number, got {show(raw)}")
        value = float(text)
    assert _VALUE.validator is not None
    try:
        _VALUE.validator(None, _VALUE, value)
    except TypeError:  # not a number (a bool is not one either): only JSON can say so
        raise ValueError(f"value must be a JSON number, got {show(raw)}") from None
    except ValueError:
        raise ValueError(f"value must be a finite number, got {show(raw)}") from None
    return float(value)


def parse_row(
    fields: dict[str, Any], *, from_json: bool = False, warned: set[str] | None = None
) -> tuple[str, KpiSnapshotRequest]:
    """Return the KPI id and snapshot of one row's fields, or raise ValueError saying why.

    ``warned`` collects the time zones already warned about (one warning per value).
    """
    missing = [c for c in REQUIRED if fields.get(c) in (None, "")]
    if missing:
        raise ValueError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    kpi_id = fields["kpi_id"]
    if not isinstance(kpi_id, str):
        raise ValueError(f"kpi_id must be a string of 24 hex digits, got {show(kpi_id)}")
    kpi_id = kpi_id.strip()
    try:
        check_object_id(kpi_id, "kpi_id")
    except ValueError:
        raise ValueError(f"kpi_id must be 24 hex digits, got {show(kpi_id)}") from None
    raw_day = fields["date"]
    if not isinstance(raw_day, str) or not _DAY.match(raw_day.strip()):
        raise ValueError(f"date must be YYYY-MM-DD, got {show(raw_day)}")
    try:
        day = date.fromisoformat(raw_day.strip())
    except ValueError:
        raise ValueError(f"date {raw_day.strip()!r} is not a real day") from None
    value = _value(fields["value"], from_json=from_json)
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
        raise ValueError(f"{name} must be a string, got {show(value)}")
    return value.strip() or None
