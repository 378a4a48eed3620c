"""Scenario 5, converter: the cost of one Kpi in and out, in process, no server.

The KPI is the ~1 KB body of scenario 1 (22 fields: datetimes, id lists, nested
formatting, 8 fields the model does not name). Variants, all per KPI:

- ``json_access``: ``json.loads`` of the bytes plus reading the 15 fields the
  model names (the hand-written baseline);
- ``orjson_access``: the same with ``orjson.loads``;
- ``sdk_decode``: ``orjson.loads`` plus ``structure`` into a ``Kpi``: what the SDK
  does with every answer body;
- ``sdk_structure``: ``structure`` alone, from the decoded dict;
- ``sdk_unstructure``: ``unstructure`` of a ``Kpi`` back to a camelCase dict;
- ``sdk_encode``: ``unstructure`` plus ``orjson.dumps``: a request body.

Timed with ``timeit`` in one child process, the variants interleaved; each
figure is the median of the runs, each run the best of 3 repeats.
"""

from __future__ import annotations

import json
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Column, Options, Row, ScenarioResult, Target, run_child
from benchmarks.servers import KPI_BODY

__all__ = ["client_run", "run"]

VARIANTS = {
    "json_access": "json.loads + dict access of 15 fields (baseline)",
    "orjson_access": "orjson.loads + dict access of 15 fields",
    "sdk_decode": "SDK: orjson.loads + structure -> Kpi",
    "sdk_structure": "SDK: structure dict -> Kpi",
    "sdk_unstructure": "SDK: unstructure Kpi -> dict",
    "sdk_encode": "SDK: unstructure + orjson.dumps -> bytes",
}
BASELINE = "json_access"


def _access(d: dict[str, Any]) -> tuple[Any, ...]:
    f = d["formatting"]
    return (
        d["id"],
        d["accountId"],
        d["name"],
        d["description"],
        d["ownerIds"],
        d["aggregation"],
        d["targetOperator"],
        f["prefix"],
        f["suffix"],
        f["fractionSize"],
        d["groupIds"],
        d["insightId"],
        d["dateCreated"],
        d["dateUpdated"],
        d["createdById"],
        d["modifiedById"],
    )


def _callables() -> dict[str, Callable[[], Any]]:
    import orjson

    from gtmhub_async import converter
    from gtmhub_async.models import Kpi

    body = KPI_BODY
    data = orjson.loads(body)
    kpi = converter.structure(data, Kpi)
    structure, unstructure = converter.structure, converter.unstructure
    loads, dumps = orjson.loads, orjson.dumps
    assert isinstance(kpi.date_created, object) and kpi.formatting is not None
    return {
        "json_access": lambda: _access(json.loads(body)),
        "orjson_access": lambda: _access(loads(body)),
        "sdk_decode": lambda: structure(loads(body), Kpi),
        "sdk_structure": lambda: structure(data, Kpi),
        "sdk_unstructure": lambda: unstructure(kpi),
        "sdk_encode": lambda: dumps(unstructure(kpi)),
    }


def client_run(runs: int, number: int) -> dict[str, list[float]]:
    """Time every variant ``runs`` times, interleaved; return microseconds per call."""
    funcs = _callables()
    for func in funcs.values():  # warm up: cattrs generates its hooks on first use
        func()
    out: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(runs):
        for name, func in funcs.items():
            best = min(timeit.repeat(func, number=number, repeat=3))
            out[name].append(best / number * 1e6)
    return out


def run(options: Options) -> ScenarioResult:
    """Run the scenario in one child process."""
    number = 1_000 if options.quick else 5_000
    raw = run_child("converter", "client_run", runs=options.runs, number=number)
    base = statistics.median(raw[BASELINE])
    rows = []
    for variant, label in VARIANTS.items():
        values = raw[variant]
        med = statistics.median(values)
        rows.append(
            Row(
                variant,
                label,
                {"us": med, "per_s": 1e6 / med, "ratio": med / base},
                [{"us": v} for v in values],
            )
        )
    decode = statistics.median(
        d / b for d, b in zip(raw["sdk_decode"], raw[BASELINE], strict=True)
    )
    return ScenarioResult(
        name="converter",
        title=f"5. Converter: one Kpi ({len(KPI_BODY)} B, 22 fields), in process",
        params={"calls_per_run": number, "runs": options.runs},
        columns=[
            Column("us", "us per KPI", "{:.2f}"),
            Column("per_s", "KPIs/s"),
            Column("ratio", "cost x baseline", "{:.2f}"),
        ],
        rows=rows,
        targets=[
            Target(
                "bytes -> Kpi (orjson + generated structure) vs json.loads + 15 reads, x speed",
                1 / decode,
                1.00,
                decode <= 1.00,
            )
        ],
        notes=[
            "each run is the best of 3 timeit repeats; the figure is the median of the runs",
            f"paired (median of per-run ratios): bytes -> Kpi costs {decode:.2f}x "
            "json.loads + 15 reads",
        ],
    )
