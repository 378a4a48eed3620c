"""Table-driven tests: every row of the route table, through the client, against aioresponses."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import attrs
import orjson
import pytest
from aioresponses import aioresponses
from yarl import URL

from gtmhub_async import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    CreateKpiRequest,
    Formatting,
    GtmhubClient,
    Kpi,
    KpiFormatting,
    KpiPage,
    KpiSnapshot,
    KpiSnapshotRequest,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnknownOutcomeError,
    UpdateKpiRequest,
    VirtualKpiGroup,
    __version__,
)
from gtmhub_async.routes import ROUTES, Route

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")

TOKEN = "secret-token-123"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
KPI_ID2 = "5e8ed44adcddda0da9eab365"
ANY = re.compile(r".*")

KPI_JSON: dict[str, Any] = {
    "id": KPI_ID,
    "accountId": ACCOUNT,
    "name": "Revenue",
    "ownerIds": [ACCOUNT],
    "aggregation": "sum",
    "targetOperator": "should_increase",
    "formatting": {"prefix": "$", "suffix": "", "fractionSize": 2},
    "groupIds": [],
    "dateCreated": "2026-11-01T10:00:00Z",
}
SNAPSHOT_JSON = {"id": KPI_ID2, "kpiId": KPI_ID, "group": "2026-11-01", "value": 42.5}


@attrs.frozen
class Example:
    """One call of a route, what must go over the wire, and what must come back."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    url: str
    body: Any
    status: int
    answer: Any
    check: Any


SNAPSHOT_QUERY = {
    "ids": [KPI_ID, KPI_ID2],
    "group_ids": [KPI_ID2],
    "ungrouped": False,
    "my_kpis": True,
    "time_zone": "UTC-2",
    "group_by": "day",
    "from_date": date(2020, 5, 2),
    "to_date": date(2020, 6, 1),
}
SNAPSHOT_QS = (
    f"ids={KPI_ID},{KPI_ID2}&groupIds={KPI_ID2}&ungrouped=false&mykpis=true"
    "&timeZone=UTC-2&groupBy=day&from=2020-05-02&to=2020-06-01"
)


def _is_snapshots(value: Any) -> bool:
    return value == [KpiSnapshot(id=KPI_ID2, kpi_id=KPI_ID, group=date(2026, 11, 1), value=42.5)]


def _is_kpi(value: Any) -> bool:
    return isinstance(value, Kpi) and value.id == KPI_ID and value.aggregation == "sum"


EXAMPLES: dict[str, Example] = {
    "insights.kpi_usages": Example(
        (KPI_ID2,),
        {},
        f"/v1/insights/{KPI_ID2}/usages/kpis",
        None,
        200,
        [KPI_JSON],
        lambda v: len(v) == 1 and _is_kpi(v[0]),
    ),
    "kpi_snapshots.list": Example(
        (),
        SNAPSHOT_QUERY,
        f"/v1/kpi-snapshots?{SNAPSHOT_QS}",
        None,
        200,
        [SNAPSHOT_JSON],
        _is_snapshots,
    ),
    "kpis.list_page": Example(
        (),
        {
            "filter": {"name": {"$regex": "rev"}},
            "sort": ["name", "-dateCreated"],
            "fields": ["name", "ownerIds"],
            "skip": 200,
            "take": 50,
        },
        '/v2/kpis?filter={"name":{"$regex":"rev"}}&sort=name,-dateCreated'
        "&fields=name,ownerIds&skip=200&take=50",
        None,
        200,
        {"items": [KPI_JSON], "totalCount": 201},
        lambda v: isinstance(v, KpiPage) and v.total_count == 201 and _is_kpi(v.items[0]),
    ),
    "kpis.snapshots": Example(
        (),
        SNAPSHOT_QUERY,
        f"/v1/kpis/snapshots?{SNAPSHOT_QS}",
        None,
        200,
        {"items": [SNAPSHOT_JSON]},
        _is_snapshots,
    ),
    "kpis.get": Example(
        (KPI_ID,),
        {"formatting": Formatting.PLAIN_TEXT},
        f"/v1/kpis/{KPI_ID}?formatting=plainText",
        None,
        200,
        KPI_JSON,
        _is_kpi,
    ),
    "kpis.create": Example(
        (
            CreateKpiRequest(
                name="Revenue",
                owner_ids=[ACCOUNT],
                aggregation="sum",
                formatting=KpiFormatting(prefix="$", fraction_size=2),
            ),
        ),
        {},
        "/v1/kpis",
        {
            "name": "Revenue",
            "ownerIds": [ACCOUNT],
            "aggregation": "sum",
            "targetOperator": "should_increase",
            "groupIds": [],
            "formatting": {"prefix": "$", "suffix": "", "fractionSize": 2},
        },
        201,
        KPI_JSON,
        _is_kpi,
    ),
    "kpis.create_snapshot": Example(
        (KPI_ID, KpiSnapshotRequest(group=date(2026, 11, 1), value=42.5, time_zone="UTC+2")),
        {},
        f"/v1/kpis/{KPI_ID}/snapshots",
        {"group": "2026-11-01", "value": 42.5, "timeZone": "UTC+2"},
        201,
        SNAPSHOT_JSON,
        lambda v: isinstance(v, KpiSnapshot) and v.value == 42.5,
    ),
    "users.favorite_kpi_virtual_group": Example(
        (),
        {"group": VirtualKpiGroup.MY_KPIS, "favorite": False},
        "/v1/users/kpi-virtual-group/favorite",
        {"virtualGroup": "myKpis", "favorite": False},
        200,
        {},
        lambda v: v is None,
    ),
    "kpis.bulk_update": Example(
        ({KPI_ID: UpdateKpiRequest(name="New"), KPI_ID2: UpdateKpiRequest(description=None)},),
        {},
        "/v1/kpis",
        [{"id": KPI_ID, "name": "New"}, {"id": KPI_ID2, "description": None}],
        204,
        None,
        lambda v: v is None,
    ),
    "kpis.update": Example(
        (KPI_ID, UpdateKpiRequest(name="Revenue", group_ids=[])),
        {},
        f"/v1/kpis/{KPI_ID}",
        {"name": "Revenue", "groupIds": []},
        200,
        KPI_JSON,
        _is_kpi,
    ),
    "kpis.delete": Example(
        (KPI_ID,),
        {},
        f"/v1/kpis/{KPI_ID}",
        None,
        204,
        None,
        lambda v: v is None,
    ),
}


def bound(client: GtmhubClient, route: Route[..., Any]) -> Any:
    resource, _, method = route.name.partition(".")
    return getattr(getattr(client, resource), method)


def client(**kwargs: Any) -> GtmhubClient:
    kwargs.setdefault("rate_limit", None)
    return GtmhubClient(TOKEN, ACCOUNT, base_url=BASE, **kwargs)


def test_every_route_has_an_example_and_a_bound_method() -> None:
    assert sorted(EXAMPLES) == sorted(r.name for r in ROUTES)
    assert len(ROUTES) == 11
    c = client()
    for route in ROUTES:
        assert callable(bound(c, route))
        assert bound(c, route).__qualname__ == route.name


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
async def test_route_sends_exact_request_and_parses_answer(route: Route[..., Any]) -> None:
    ex = EXAMPLES[route.name]
    with aioresponses() as mocked:
        body = None if ex.answer is None else orjson.dumps(ex.answer)
        mocked.add(ANY, route.method, status=ex.status, body=body or b"")
        async with client() as c:
            result = await bound(c, route)(*ex.args, **ex.kwargs)
        assert ex.check(result), result
        ((key, calls),) = mocked.requests.items()
    method, url = key
    assert method == route.method
    expected = URL(BASE + ex.url)
    # aioresponses sorts the query; the order of parameters carries no meaning.
    assert url.with_query(None) == expected.with_query(None)
    assert sorted(url.query.items()) == sorted(expected.query.items())
    (call,) = calls
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["gtmhub-accountId"] == ACCOUNT
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"gtmhub-async/{__version__}"
    sent = call.kwargs["data"]
    assert (None if sent is None else orjson.loads(sent)) == ex.body


STATUS_ERRORS = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (402, PaymentRequiredError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (429, RateLimitError),
    (500, ServerError),
    (502, ServerError),
    (503, ServerError),
    (418, ApiError),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize(("status", "error"), STATUS_ERRORS, ids=lambda v: str(v))
async def test_route_maps_status_to_error(
    route: Route[..., Any], status: int, error: type[ApiError]
) -> None:
    ex = EXAMPLES[route.name]
    body = {"statusCode": status, "error": "x", "message": f"went wrong with {status}"}
    headers = {"X-Request-Id": "req-1", "Retry-After": "7"}
    with aioresponses() as mocked:
        mocked.add(ANY, route.method, status=status, body=orjson.dumps(body), headers=headers)
        async with client(retry=RetryPolicy(max_attempts=1)) as c:
            with pytest.raises((error, UnknownOutcomeError)) as info:
                await bound(c, route)(*ex.args, **ex.kwargs)
    exc = info.value
    if not route.idempotent and status in (500, 502):
        # A write that failed with 500 or 502 may have been applied: its outcome is unknown.
        # (A 503 with Retry-After says the server refused it unapplied: a plain ServerError.)
        assert isinstance(exc, UnknownOutcomeError)
        assert "may have been applied" in str(exc)
        exc = exc.response_error
    assert type(exc) is error
    assert exc.status == status
    assert exc.body == body
    assert exc.message == f"went wrong with {status}"
    assert exc.request_id == "req-1"
    assert exc.method == route.method
    assert info.value.attempts == 1
    assert str(exc) == (
        f"HTTP {status} ({route.method} {BASE}{ex.url.split('?')[0]}): went wrong with {status}"
        " [request id req-1]"
    )
    assert TOKEN not in str(exc) and TOKEN not in repr(exc)
    if status == 429:
        assert isinstance(exc, RateLimitError)
        assert exc.retry_after == 7.0
