"""The ``kpis`` commands: list, get, create and delete KPIs."""

from __future__ import annotations

from typing import Any

import click
import orjson

from gtmhub_async.cli.app import EXIT_USAGE, PROG, CliError, cli, fail, one_line
from gtmhub_async.cli.options import ApiOptions, api_options, call
from gtmhub_async.cli.output import KPI_COLUMNS, dumps, format_table, kpi_json, pretty, split_names
from gtmhub_async.client import GtmhubClient
from gtmhub_async.errors import UnknownOutcomeError
from gtmhub_async.models import (
    Aggregation,
    CreateKpiRequest,
    Formatting,
    Kpi,
    KpiFormatting,
    TargetOperator,
    WriteResult,
    check_object_id,
)

__all__ = ["kpis"]


@cli.group()
def kpis() -> None:
    """List, read, create and delete KPIs."""


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        fail(f"{name} is not valid JSON: {exc}", EXIT_USAGE)


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
        fail("--filter must be a JSON object", EXIT_USAGE)
    field_names = split_names([fields]) if fields else None
    if fields is not None and not field_names:
        fail("--fields must name at least one field", EXIT_USAGE)

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
                    click.echo(dumps(kpi_json(kpi, field_names)))
                else:
                    found.append(kpi)
        return found

    found = call(api, body)
    if fmt == "table":
        columns = ["id", *(f for f in field_names if f != "id")] if field_names else KPI_COLUMNS
        rows = [[kpi_json(k).get(c) for c in columns] for k in found]
        for line in format_table(list(columns), rows):
            click.echo(line)
        click.echo(f"{len(found)} KPI{'s' if len(found) != 1 else ''}", err=True)


def _kpi_id(value: str) -> str:
    try:
        return check_object_id(value.strip(), "the KPI id")
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@kpis.command("get")
@click.argument("kpi_id")
@click.option("--plain-text", is_flag=True, help="Render the description without mention markup.")
@api_options
def kpis_get(api: ApiOptions, kpi_id: str, plain_text: bool) -> None:
    """Print one KPI as JSON."""
    kpi_id = _kpi_id(kpi_id)
    formatting = Formatting.PLAIN_TEXT if plain_text else None
    kpi = call(api, lambda client: client.kpis.get(kpi_id, formatting=formatting))
    click.echo(pretty(kpi_json(kpi)))


@kpis.command("create")
@click.option("--name", required=True, help="The KPI's name.")
@click.option("--owner", "owners", multiple=True, metavar="ID", help="Owner id (repeatable).")
# One click.Choice per enum of the model (--aggregation, --target-operator): alike by shape.
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
            owner_ids=split_names(owners),
            aggregation=Aggregation(aggregation),
            target_operator=TargetOperator(target_operator),
            formatting=formatting,
            description=description,
            group_ids=split_names(groups),
        )
    except (TypeError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)

    async def body(client: GtmhubClient) -> Kpi | WriteResult:
        try:
            return await client.kpis.create(request)
        except UnknownOutcomeError as exc:
            raise CliError(
                f"the KPI may or may not have been created ({one_line(str(exc))}); look for it "
                f"with: {PROG} kpis list --filter '{dumps({'name': name})}' before creating "
                "it again"
            ) from None

    kpi = call(api, body)
    # A 2xx whose body is not a KPI [I] was still applied: print what is known.
    created = kpi_json(kpi) if isinstance(kpi, Kpi) else {"id": kpi.id, "status": kpi.status}
    click.echo(pretty(created))


@kpis.command("delete")
@click.argument("kpi_id")
@api_options
def kpis_delete(api: ApiOptions, kpi_id: str) -> None:
    """Delete a KPI and its snapshots."""
    kpi_id = _kpi_id(kpi_id)
    call(api, lambda client: client.kpis.delete(kpi_id))
    click.echo(f"deleted KPI {kpi_id}")
