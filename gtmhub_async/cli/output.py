"""How commands print: JSON, plain-text tables, and the wire shapes of KPIs and snapshots."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from gtmhub_async import converter
from gtmhub_async.cli.app import one_line
from gtmhub_async.models import Kpi, KpiSnapshot

__all__ = [
    "KPI_COLUMNS",
    "csv_value",
    "dumps",
    "format_table",
    "kpi_json",
    "pretty",
    "snapshot_json",
    "split_names",
]

#: The columns of ``kpis list`` as a table when no --fields are given.
KPI_COLUMNS: Final = ("id", "name", "aggregation", "targetOperator", "ownerIds", "dateUpdated")


def dumps(data: Any) -> str:
    """Return ``data`` as compact JSON text."""
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()


def pretty(data: Any) -> str:
    """Return ``data`` as JSON text indented by two spaces."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _cell(value: Any, width: int = 40) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        text = ",".join(_cell(v, width) for v in value)
    elif isinstance(value, dict):
        text = dumps(value)
    elif isinstance(value, float):
        text = f"{value:g}" if abs(value) < 1e15 else repr(value)
    else:
        text = str(value)
    text = one_line(text)
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


def split_names(values: Iterable[str]) -> list[str]:
    """Return the comma-separated names in ``values``, stripped, without empty ones."""
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


def csv_value(value: Any) -> str:
    """Return one CSV cell: empty for None, ``2`` for 2.0, the shortest repr otherwise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)
