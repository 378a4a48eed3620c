"""The ``snapshots`` group and ``snapshots list``: print the daily values of KPIs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime

import click

from gtmhub_async._validate import check_object_id
from gtmhub_async.cli.app import EXIT_USAGE, cli, fail
from gtmhub_async.cli.options import ApiOptions, api_options, call
from gtmhub_async.cli.output import csv_value, dumps, format_table, snapshot_json, split_names

__all__ = ["snapshots"]


@cli.group()
def snapshots() -> None:
    """Query and upload KPI snapshots (daily values)."""


_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _ids(values: Iterable[str], flag: str) -> list[str] | None:
    ids = split_names(values)
    for value in ids:
        try:
            check_object_id(value, f"each {flag}")
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
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
        fail(f"--from {first} is after --to {last}", EXIT_USAGE)
    kpi_ids = _ids(ids, "--ids")
    groups = _ids(group_ids, "--group-ids")
    rows = call(
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
            click.echo(dumps(item))
    elif fmt == "csv":
        columns = ["kpi_id", "date", "value"]
        columns += [c for c in ("time_zone", "description") if any(c in d for d in data)]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for item in data:
            writer.writerow([csv_value(item.get(c)) for c in columns])
        click.echo(out.getvalue(), nl=False)
    else:
        for line in format_table(
            ["kpi_id", "date", "value"], [[d["kpi_id"], d["date"], d["value"]] for d in data]
        ):
            click.echo(line)
        click.echo(f"{len(data)} value{'s' if len(data) != 1 else ''}", err=True)
