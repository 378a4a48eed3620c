"""Property tests: models round-trip, unknown fields survive, any body is a model or an error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import attrs
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gtmhub_async import (
    UNSET,
    Aggregation,
    CreateKpiRequest,
    Kpi,
    KpiFormatting,
    KpiPage,
    KpiSnapshot,
    KpiSnapshotRequest,
    ResponseDecodeError,
    TargetOperator,
    UpdateKpiRequest,
)
from gtmhub_async.converter import camel, structure, unstructure
from gtmhub_async.routes import ROUTES, Route, no_content
from gtmhub_async.wire import parse_response

ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
text = st.text(max_size=20)
zones = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-720, 840))
aware = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
aggregations = st.one_of(st.sampled_from(Aggregation), text)
operators = st.one_of(st.sampled_from(TargetOperator), text)
formattings = st.builds(KpiFormatting, prefix=text, suffix=text, fraction_size=st.integers(0, 10))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=20,
)

kpis = st.builds(
    Kpi,
    id=ids,
    account_id=st.none() | ids,
    name=st.none() | text,
    description=st.none() | text,
    owner_ids=st.lists(ids, max_size=3).map(tuple),
    aggregation=st.none() | aggregations,
    target_operator=st.none() | operators,
    formatting=st.none() | formattings,
    group_ids=st.lists(ids, max_size=3).map(tuple),
    insight_id=st.none() | ids,
    date_created=st.none() | aware,
    date_updated=st.none() | aware,
    created_by_id=st.none() | ids,
    modified_by_id=st.none() | ids,
)
MODELS: dict[type[Any], st.SearchStrategy[Any]] = {
    Kpi: kpis,
    KpiFormatting: formattings,
    KpiPage: st.builds(
        KpiPage, items=st.lists(kpis, max_size=3), total_count=st.integers(0, 2**53)
    ),
    KpiSnapshot: st.builds(
        KpiSnapshot,
        id=st.none() | ids,
        kpi_id=st.none() | ids,
        group=st.none() | days,
        value=st.none() | finite,
        time_zone=st.none() | text,
        description=st.none() | text,
        date_created=st.none() | aware,
    ),
    KpiSnapshotRequest: st.builds(
        KpiSnapshotRequest,
        group=days,
        value=finite,
        time_zone=st.none() | text,
        description=st.none() | text,
    ),
    CreateKpiRequest: st.builds(
        CreateKpiRequest,
        name=text.filter(str.strip),
        owner_ids=st.lists(ids, max_size=3),
        aggregation=aggregations,
        target_operator=operators,
        formatting=st.none() | formattings,
        description=st.none() | text,
        group_ids=st.lists(ids, max_size=3),
    ),
    UpdateKpiRequest: st.builds(
        UpdateKpiRequest,
        name=st.just(UNSET) | text.filter(str.strip),
        description=st.just(UNSET) | st.none() | text,
        owner_ids=st.just(UNSET) | st.lists(ids, max_size=3),
        aggregation=st.just(UNSET) | aggregations,
        formatting=st.just(UNSET) | st.none() | formattings,
    ),
}


def _same(a: Any, b: Any) -> bool:
    """Compare two models field by field, ``extra`` included (it is left out of ``==``)."""
    return a == b and attrs.asdict(a, recurse=True) == attrs.asdict(b, recurse=True)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_model_round_trips_through_json(data: st.DataObject) -> None:
    for cl, strategy in MODELS.items():
        model = data.draw(strategy, label=cl.__name__)
        wire = orjson.loads(orjson.dumps(unstructure(model)))
        assert _same(structure(wire, cl), model)


known_kpi_keys = {camel(f.name) for f in attrs.fields(Kpi)}
extra_keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in known_kpi_keys)


@settings(max_examples=80, deadline=None)
@given(kpi=kpis, extra=st.dictionaries(extra_keys, json_values, max_size=5))
def test_unknown_fields_are_kept_and_sent_back_on_update(kpi: Kpi, extra: dict[str, Any]) -> None:
    body = orjson.dumps({**unstructure(kpi), **extra})
    (route,) = [r for r in ROUTES if r.name == "kpis.get"]
    parsed = parse_response(route, 200, {}, body)
    assert dict(parsed.extra) == extra
    update = UpdateKpiRequest(name="renamed", extra=parsed.extra)
    assert unstructure(update) == {**extra, "name": "renamed"}


def _model_or_decode_error(route: Route[..., Any], body: bytes) -> str:
    """Parse ``body`` as ``route``'s answer; assert it is the route's model or a decode error."""
    kind = route.parse.__qualname__
    try:
        result = parse_response(route, 200, {}, body)
    except ResponseDecodeError as exc:
        # A 2xx answer to a write means it was applied: whatever its body, no decode error.
        assert not kind.startswith("write_model("), route.name
        assert route.name in str(exc)
        return "error"
    if route.parse is no_content:
        assert result is None
    elif kind.startswith("write_model("):
        assert type(result).__name__ in (kind[len("write_model(") : -1], "WriteResult")
    elif kind.startswith("model_list("):
        assert isinstance(result, list)
        assert all(type(item).__name__ == kind[len("model_list(") : -1] for item in result)
    else:
        assert type(result).__name__ == kind[len("model(") : -1]
    return "model"


def test_the_property_check_tells_a_model_from_an_error() -> None:
    kpi = orjson.dumps({"id": "5e8c27e3dcdddaa4addbdee8", "name": "k"})
    by_name = {route.name: route for route in ROUTES}
    assert _model_or_decode_error(by_name["kpis.get"], kpi) == "model"
    assert _model_or_decode_error(by_name["kpis.get"], b"[1]") == "error"
    assert _model_or_decode_error(by_name["kpis.snapshots"], b"[]") == "model"
    assert _model_or_decode_error(by_name["kpis.delete"], b"{") == "model"
    assert _model_or_decode_error(by_name["kpis.create"], b"{") == "model"
    assert _model_or_decode_error(by_name["kpis.create"], kpi) == "model"


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_body_is_a_model_or_a_decode_error(value: Any) -> None:
    body = orjson.dumps(value)
    for route in ROUTES:
        _model_or_decode_error(route, body)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_any_bytes_are_a_model_or_a_decode_error(body: bytes) -> None:
    for route in ROUTES:
        _model_or_decode_error(route, body)


def test_naive_datetimes_from_the_server_are_utc() -> None:
    kpi = structure({"id": "a", "dateCreated": "2026-01-02T03:04:05"}, Kpi)
    assert kpi.date_created == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
