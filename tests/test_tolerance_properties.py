"""Property: one odd field never fails a response model, except a confirmed one [FINDINGS.md].

For every response model: take a valid body, replace any one field with any JSON
kind (null, bool, int, float, string, list, object). The result is the model, or
a ``ResponseDecodeError`` only for a confirmed field (a KPI's ``id``/``name``, a
page's ``items``). Nothing else is raised, a replaced field never changes another
field's value, and a value that could not be read is kept in ``.unread``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtmhub_async import Kpi, KpiFormatting, KpiPage, KpiSnapshot, ResponseDecodeError
from gtmhub_async.converter import camel
from gtmhub_async.routes import GET_KPI, LIST_KPIS_PAGE, LIST_SNAPSHOTS
from gtmhub_async.wire import parse_response

ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
text = st.text(max_size=12)
stamps = st.sampled_from(["2026-11-01T10:00:00Z", "2026-01-02T03:04:05+02:00"])
formatting_body = st.fixed_dictionaries(
    {},
    optional={"prefix": text, "suffix": text, "fractionSize": st.integers(0, 6)},
)
kpi_body = st.fixed_dictionaries(
    {"id": ids, "name": text},
    optional={
        "accountId": ids,
        "description": text,
        "ownerIds": st.lists(ids, max_size=2),
        "aggregation": st.sampled_from(["last", "sum", "avg", "median"]),
        "targetOperator": st.sampled_from(["should_increase", "should_decrease"]),
        "formatting": formatting_body,
        "groupIds": st.lists(ids, max_size=2),
        "insightId": ids,
        "dateCreated": stamps,
        "dateUpdated": stamps,
        "createdById": ids,
        "modifiedById": ids,
    },
)
snapshot_body = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "kpiId": ids,
        "group": st.sampled_from(["2026-11-01", "2026-11-01T00:00:00Z"]),
        "value": st.floats(-1e6, 1e6) | st.integers(-5, 5),
        "timeZone": st.sampled_from(["UTC+2", "UTC-7", "Europe/Sofia"]),
        "description": text,
        "dateCreated": stamps,
    },
)
page_body = st.fixed_dictionaries(
    {"items": st.lists(kpi_body, max_size=2), "totalCount": st.integers(0, 10**6)},
    optional={"count": st.integers(0, 100)},
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
any_json = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(text, scalars, max_size=3)
)


def _read_kpi(body: Any) -> Any:
    return parse_response(GET_KPI, 200, {}, orjson.dumps(body))


def _read_formatting(body: Any) -> Any:
    kpi = _read_kpi({"id": "5be26318e5274a0007f17f61", "name": "k", "formatting": body})
    assert isinstance(kpi.formatting, KpiFormatting), kpi.unread
    return kpi.formatting


def _read_page(body: Any) -> Any:
    return parse_response(LIST_KPIS_PAGE, 200, {}, orjson.dumps(body))


def _read_snapshot(body: Any) -> Any:
    (snapshot,) = parse_response(LIST_SNAPSHOTS, 200, {}, orjson.dumps([body]))
    return snapshot


#: model -> (valid bodies, how the SDK reads one, the confirmed wire keys)
MODELS: dict[type[Any], tuple[st.SearchStrategy[Any], Callable[[Any], Any], set[str]]] = {
    Kpi: (kpi_body, _read_kpi, {"id", "name"}),
    KpiFormatting: (formatting_body, _read_formatting, set()),
    KpiPage: (page_body, _read_page, {"items"}),
    KpiSnapshot: (snapshot_body, _read_snapshot, set()),
}


def _fields(model: Any) -> dict[str, Any]:
    return {
        f.name: getattr(model, f.name)
        for f in attrs.fields(type(model))
        if f.name not in ("extra", "unread")
    }


def _unknown(cl: type[Any], name: str) -> Any:
    field = attrs.fields_dict(cl)[name]
    return None if field.default is None or "None" in str(field.type) else field.default


def test_every_response_model_is_covered() -> None:
    from gtmhub_async import models

    response_models = {
        obj
        for obj in vars(models).values()
        if isinstance(obj, type) and attrs.has(obj) and "unread" in attrs.fields_dict(obj)
    }
    assert response_models == set(MODELS)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), value=any_json)
def test_one_odd_field_is_unread_never_fatal_unless_confirmed(
    data: st.DataObject, value: Any
) -> None:
    cl = data.draw(st.sampled_from(sorted(MODELS, key=lambda c: c.__name__)), label="model")
    bodies, read, confirmed = MODELS[cl]
    body = data.draw(bodies, label="body")
    names = {camel(n): n for n in _fields(cl(**_required(cl)))}
    key = data.draw(st.sampled_from(sorted(names)), label="key")
    before = read(body)
    try:
        after = read({**body, key: value})
    except ResponseDecodeError as exc:
        assert key in confirmed, f"{cl.__name__}.{key} = {value!r} failed: {exc}"
        return
    assert type(after) is cl
    name = names[key]
    old, new = _fields(before), _fields(after)
    # A replaced field never changes another field's value.
    assert {k: v for k, v in old.items() if k != name} == {
        k: v for k, v in new.items() if k != name
    }
    assert after.extra == before.extra
    if key in after.unread:
        # Not read: the raw value is kept and the field has its unknown value.
        assert after.unread == {**before.unread, key: value}
        assert new[name] == _unknown(cl, name)
    else:
        assert dict(after.unread) == {k: v for k, v in before.unread.items() if k != key}
        assert value is None or value == [] or new[name] is not None
        # Read means read as it was sent: nothing is coerced (no 'None', no repr strings).
        assert value is None or _same_kind(value, new[name]), (value, new[name])


def _same_kind(raw: Any, read: Any) -> bool:
    if isinstance(raw, bool):
        return read is raw
    if isinstance(raw, int | float):
        return not isinstance(read, bool) and isinstance(read, int | float) and read == raw
    if isinstance(raw, str):
        return not isinstance(read, str) or read == raw  # a str, or a date / time parsed from it
    if isinstance(raw, list):
        return isinstance(read, list | tuple) and list(read) == raw
    return attrs.has(type(read))


def _required(cl: type[Any]) -> dict[str, Any]:
    return {"id": "x"} if cl is Kpi else {"items": []} if cl is KpiPage else {}


def test_a_response_model_with_a_field_type_no_reader_knows_is_refused_when_built() -> None:
    from gtmhub_async._tolerant import make_structure_fn

    @attrs.frozen(kw_only=True)
    class Odd:
        flag: bool | int = 0
        unread: dict[str, Any] = attrs.field(factory=dict)

    with pytest.raises(TypeError, match=r"no tolerant reader for bool \| int"):
        make_structure_fn(Odd, camel, lambda tp: tp)
