"""The pure layer: request building, Retry-After, and every kind of bad answer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from gtmhub_async import (
    UNSET,
    Aggregation,
    ApiError,
    Formatting,
    Kpi,
    KpiPage,
    ResponseDecodeError,
    ServerError,
    UnexpectedRedirectError,
    UpdateKpiRequest,
)
from gtmhub_async.converter import camel, structure, unstructure
from gtmhub_async.errors import EXCERPT_LIMIT
from gtmhub_async.routes import DELETE_KPI, GET_KPI, LIST_KPIS_PAGE, LIST_SNAPSHOTS, GetKpi
from gtmhub_async.wire import build_request, encode_query_value, parse_response, parse_retry_after

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")

KPI_ID = "5e8c27e3dcdddaa4addbdee8"


def test_camel_case_names() -> None:
    assert [camel(n) for n in ("id", "owner_ids", "fraction_size", "kpi_id")] == [
        "id",
        "ownerIds",
        "fractionSize",
        "kpiId",
    ]


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, "true"),
        (False, "false"),
        (date(2020, 5, 2), "2020-05-02"),
        ([KPI_ID, "b"], f"{KPI_ID},b"),
        (("name", "-dateCreated"), "name,-dateCreated"),
        ({"_id": {"$in": ["a", "b"]}}, '{"_id":{"$in":["a","b"]}}'),
        ('{"name":"x"}', '{"name":"x"}'),
        (Formatting.PLAIN_TEXT, "plainText"),
        (100, "100"),
    ],
)
def test_query_values(value: Any, wire: str) -> None:
    assert encode_query_value(value) == wire


def test_query_value_of_an_unknown_type() -> None:
    with pytest.raises(TypeError, match="cannot send a object as a query parameter"):
        encode_query_value(object())


def test_build_request_leaves_out_none_and_quotes_the_path() -> None:
    prepared = build_request(GET_KPI, GetKpi(KPI_ID))
    assert (prepared.method, prepared.path, prepared.query, prepared.body) == (
        "GET",
        f"/v1/kpis/{KPI_ID}",
        (),
        None,
    )
    assert prepared.idempotent
    assert prepared.target == f"/v1/kpis/{KPI_ID}"


def test_update_sends_only_what_is_set_and_keeps_extra() -> None:
    update = UpdateKpiRequest(
        description=None, aggregation=Aggregation.AVG, extra={"customField": 1}
    )
    assert unstructure(update) == {"customField": 1, "description": None, "aggregation": "avg"}
    assert update.name is UNSET


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_kpi_keeps_unknown_fields_and_values() -> None:
    body = orjson.dumps(
        {
            "id": KPI_ID,
            "aggregation": "median",
            "color": "red",
            "dateCreated": "2026-11-01T10:00:00",
        }
    )
    kpi = parse_response(GET_KPI, 200, {}, body)
    assert kpi.aggregation == "median"
    assert kpi.extra == {"color": "red"}
    assert kpi.date_created == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert unstructure(kpi)["color"] == "red"


def test_model_round_trip() -> None:
    kpi = structure(
        {
            "id": KPI_ID,
            "name": "n",
            "aggregation": "sum",
            "ownerIds": [KPI_ID],
            "formatting": {"prefix": "$", "fractionSize": 1},
        },
        Kpi,
    )
    assert structure(unstructure(kpi), Kpi) == kpi


BAD_BODIES: list[tuple[int, bytes, str]] = [
    (200, b"", "empty 200 body where kpis.get expects JSON"),
    (200, b"   ", "empty 200 body where kpis.get expects JSON"),
    (200, b"<html>hello</html>", "the 200 body of kpis.get is not JSON"),
    (200, b'{"id": "' + KPI_ID.encode(), "the 200 body of kpis.get is not JSON"),
    (200, b"[1, 2]", "does not have the expected shape: expected a JSON object for Kpi, got list"),
    (200, b'{"name": "no id"}', "does not have the expected shape: missing field 'id'"),
    (200, b'{"id": 5}', "does not have the expected shape: expected a string, got int"),
    (200, b'{"id": "x", "name": null}', "expected a string, got NoneType"),
    (200, b"null", "expected a JSON object for Kpi, got NoneType"),
]

#: Inferred [I] fields with a value of another kind: the read succeeds, the value is unread.
ODD_INFERRED: list[tuple[bytes, str]] = [
    (b'{"id": "x", "ownerIds": "abc"}', "ownerIds"),
    (b'{"id": "x", "dateCreated": 12}', "dateCreated"),
    (b'{"id": "x", "dateCreated": "yesterday"}', "dateCreated"),
    (b'{"id": "x", "aggregation": 3}', "aggregation"),
    (b'{"id": "x", "formatting": "bold"}', "formatting"),
]


@pytest.mark.parametrize(("body", "key"), ODD_INFERRED)
def test_odd_inferred_fields_are_unread_not_fatal(body: bytes, key: str) -> None:
    kpi = parse_response(GET_KPI, 200, {}, body)
    assert kpi.id == "x"
    assert dict(kpi.unread) == {key: orjson.loads(body)[key]}
    assert dict(kpi.extra) == {}


@pytest.mark.parametrize(("status", "body", "message"), BAD_BODIES)
def test_bad_2xx_bodies_raise_decode_errors(status: int, body: bytes, message: str) -> None:
    with pytest.raises(ResponseDecodeError, match=r"kpis\.get") as info:
        parse_response(GET_KPI, status, {}, body, method="GET", url="https://x/api/v1/kpis/1")
    assert message in str(info.value)
    assert "(GET https://x/api/v1/kpis/1)" in str(info.value)


def test_page_with_wrong_types() -> None:
    with pytest.raises(ResponseDecodeError, match="missing field 'items'"):
        parse_response(LIST_KPIS_PAGE, 200, {}, b'{"totalCount": 3}')
    with pytest.raises(ResponseDecodeError, match="expected a JSON array, got dict"):
        parse_response(LIST_KPIS_PAGE, 200, {}, b'{"items": {}}')
    assert parse_response(LIST_KPIS_PAGE, 200, {}, b'{"items": []}') == KpiPage(items=[])
    # totalCount is inferred [I]: a string is not coerced, it is kept unread.
    page = parse_response(LIST_KPIS_PAGE, 200, {}, b'{"items": [], "totalCount": "3"}')
    assert page == KpiPage(items=[], total_count=None)
    assert page.unread == {"totalCount": "3"}


def test_list_route_accepts_an_array_or_an_items_envelope() -> None:
    row = {"kpiId": KPI_ID, "group": "2026-11-01T00:00:00Z", "value": 2}
    (a,) = parse_response(LIST_SNAPSHOTS, 200, {}, orjson.dumps([row]))
    (b,) = parse_response(LIST_SNAPSHOTS, 200, {}, orjson.dumps({"items": [row]}))
    assert a == b and a.group == date(2026, 11, 1)
    with pytest.raises(
        ResponseDecodeError, match="expected a JSON array of KpiSnapshot, got dict"
    ):
        parse_response(LIST_SNAPSHOTS, 200, {}, b'{"data": []}')


def test_no_content_route_ignores_the_body() -> None:
    assert parse_response(DELETE_KPI, 204, {}, b"") is None
    assert parse_response(DELETE_KPI, 200, {}, b"not json") is None


def test_html_error_page_on_a_5xx() -> None:
    page = b"<html><body>" + b"Bad gateway " * 100 + b"</body></html>"
    with pytest.raises(ServerError) as info:
        parse_response(GET_KPI, 502, {"X-Request-Id": "r1"}, page)
    message = info.value.message
    assert message.startswith("<html><body>Bad gateway")
    assert len(message) < EXCERPT_LIMIT + 40
    assert message.endswith("more characters)")


def test_huge_decode_error_keeps_a_capped_excerpt() -> None:
    body = b"x" * 5_000_000
    with pytest.raises(ResponseDecodeError) as info:
        parse_response(GET_KPI, 200, {}, body)
    assert len(str(info.value)) < 1000
    assert len(info.value.body_excerpt) < EXCERPT_LIMIT + 40


def test_redirects_are_errors_naming_the_location() -> None:
    with pytest.raises(UnexpectedRedirectError, match="unexpected redirect to https://evil/"):
        parse_response(GET_KPI, 302, {"Location": "https://evil/"}, b"")


def test_unknown_status_and_empty_body() -> None:
    with pytest.raises(ApiError) as info:
        parse_response(GET_KPI, 418, {}, b"")
    assert type(info.value) is ApiError
    assert info.value.message == "(empty body)"
    assert info.value.body is None
    assert repr(info.value) == "ApiError(status=418, message='(empty body)')"


WRITE_BODIES: list[tuple[bytes, str | None]] = [
    (b"", None),
    (b"{}", None),
    (b"ok", None),
    (b'"' + KPI_ID.encode() + b'"', KPI_ID),
    (KPI_ID.encode(), KPI_ID),
    (b'{"_id": "' + KPI_ID.encode() + b'", "other": 1}', KPI_ID),
    (b"[1, 2]", None),
    (b"{not json", None),
]


@pytest.mark.parametrize(("body", "found"), WRITE_BODIES)
def test_a_2xx_write_whose_body_is_not_the_model_is_a_write_result(
    body: bytes, found: str | None
) -> None:
    from gtmhub_async import WriteResult
    from gtmhub_async.routes import CREATE_SNAPSHOT

    result = parse_response(CREATE_SNAPSHOT, 201, {}, body)
    assert result == WriteResult(status=201, body=body, id=found)


def test_a_2xx_write_answering_part_of_its_object_is_the_model() -> None:
    from gtmhub_async import KpiSnapshot
    from gtmhub_async.routes import CREATE_SNAPSHOT, UPDATE_KPI

    kpi = parse_response(UPDATE_KPI, 200, {}, b'{"id": "' + KPI_ID.encode() + b'"}')
    assert kpi == Kpi(id=KPI_ID)
    # An object with a field the model names is that model, however few fields it has.
    snapshot = parse_response(CREATE_SNAPSHOT, 201, {}, b'{"id": "' + KPI_ID.encode() + b'"}')
    assert snapshot == KpiSnapshot(id=KPI_ID)


def test_a_raw_2xx_write_is_its_json_or_a_write_result() -> None:
    from gtmhub_async import WriteResult
    from gtmhub_async.routes import raw_route

    post = raw_route("POST", "/v1/things")
    assert parse_response(post, 200, {}, b'{"a": 1}') == {"a": 1}
    assert parse_response(post, 204, {}, b"") is None
    assert parse_response(post, 201, {}, b"ok") == WriteResult(status=201, body=b"ok")
    with pytest.raises(ResponseDecodeError, match="the 200 body of request GET /v1/things is not"):
        parse_response(raw_route("GET", "/v1/things"), 200, {}, b"ok")
