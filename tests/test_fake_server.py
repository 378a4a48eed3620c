"""Tests of the fake Gtmhub server, driven with plain aiohttp (not the SDK client)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from gtmhub_async.testing import FakeGtmhub, Faults

GOOD_ID = "5be26318e5274a0007f17f61"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Http:
    """A thin aiohttp wrapper: every call returns (status, headers, decoded JSON or raw bytes)."""

    def __init__(self, fake: FakeGtmhub, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        **kwargs: Any,
    ) -> tuple[int, Any, Any]:
        sent = dict(self.fake.auth_headers()) if auth else {}
        sent.update(headers or {})
        async with self.session.request(
            method, self.fake.base_url + path, headers=sent, **kwargs
        ) as response:
            raw = await response.read()
            try:
                body: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw
            return response.status, response.headers, body


@pytest.fixture
async def fake() -> AsyncIterator[FakeGtmhub]:
    async with FakeGtmhub(seed=7) as server:
        yield server


@pytest.fixture
async def http(fake: FakeGtmhub) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(fake, session)


def assert_error(status: int, body: Any, expected: int, *words: str) -> None:
    assert status == expected, body
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == expected
    for word in words:
        assert word in body["message"], body["message"]


# --- Start, credentials, auth -------------------------------------------------------------


async def test_start_binds_loopback_and_generates_credentials(fake: FakeGtmhub) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/api"
    assert len(fake.account_id) == 24 and int(fake.account_id, 16) >= 0
    assert len(fake.user_id) == 24
    assert fake.token and fake.token != fake.account_id


async def test_same_seed_same_credentials() -> None:
    assert FakeGtmhub(seed=3).token == FakeGtmhub(seed=3).token
    assert FakeGtmhub(seed=3).account_id != FakeGtmhub(seed=4).account_id


async def test_not_started_has_no_url() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeGtmhub().base_url


@pytest.mark.parametrize(
    ("headers", "status", "word"),
    [
        ({}, 401, "missing Authorization"),
        ({"Authorization": "Bearer wrong"}, 401, "invalid"),
        ({"Authorization": "Basic TOKEN"}, 401, "invalid"),
        ({"Authorization": "Bearer TOKEN"}, 401, "gtmhub-accountId"),
        ({"Authorization": "Bearer TOKEN", "gtmhub-accountId": GOOD_ID}, 403, "no access"),
    ],
)
async def test_auth_errors(
    fake: FakeGtmhub, http: Http, headers: dict[str, str], status: int, word: str
) -> None:
    headers = {k: v.replace("TOKEN", fake.token) for k, v in headers.items()}
    got, response_headers, body = await http("GET", "/v2/kpis", auth=False, headers=headers)
    assert_error(got, body, status, word)
    assert response_headers["X-Request-Id"]
    assert fake.token not in body["message"]


async def test_account_header_is_case_insensitive(fake: FakeGtmhub, http: Http) -> None:
    headers = {"Authorization": f"Bearer {fake.token}", "GTMHUB-ACCOUNTID": fake.account_id}
    status, _, _ = await http("GET", "/v2/kpis", auth=False, headers=headers)
    assert status == 200


async def test_every_answer_has_a_unique_request_id(http: Http) -> None:
    ids = set()
    for path in ("/v2/kpis", "/v1/kpis/" + GOOD_ID, "/v1/nothing"):
        _, headers, _ = await http("GET", path)
        ids.add(headers["X-Request-Id"])
    assert len(ids) == 3


async def test_unknown_route_and_method(http: Http, fake: FakeGtmhub) -> None:
    status, _, body = await http("GET", "/v1/nothing")
    assert_error(status, body, 404, "no route")
    status, headers, body = await http("PUT", "/v1/kpis")
    assert_error(status, body, 405)
    assert set(headers["Allow"].split(", ")) == {"PATCH", "POST"}
    async with http.session.get(fake.url + "/v1/kpis", headers=fake.auth_headers()) as r:
        assert r.status == 404


# --- KPIs -------------------------------------------------------------------------------------


async def create(http: Http, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "Revenue")
    status, _, body = await http("POST", "/v1/kpis", json=fields)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


async def test_create_kpi_returns_the_full_kpi(fake: FakeGtmhub, http: Http) -> None:
    kpi = await create(
        http,
        name="Revenue",
        ownerIds=[GOOD_ID],
        aggregation="sum",
        targetOperator="should_decrease",
        formatting={"prefix": "$", "fractionSize": 2},
        description="d",
        groupIds=[GOOD_ID],
        customField={"a": 1},
        id="ignored",
    )
    assert len(kpi["id"]) == 24 and kpi["id"] != "ignored"
    assert kpi["accountId"] == fake.account_id
    assert kpi["ownerIds"] == [GOOD_ID]
    assert kpi["aggregation"] == "sum"
    assert kpi["targetOperator"] == "should_decrease"
    assert kpi["formatting"] == {"prefix": "$", "suffix": "", "fractionSize": 2}
    assert kpi["groupIds"] == [GOOD_ID]
    assert kpi["customField"] == {"a": 1}
    assert kpi["dateCreated"].endswith("Z") and kpi["dateCreated"] == kpi["dateUpdated"]
    assert kpi["createdById"] == kpi["modifiedById"] == fake.user_id
    assert fake.kpis[kpi["id"]] == kpi


async def test_create_kpi_defaults(fake: FakeGtmhub, http: Http) -> None:
    kpi = await create(http, name="Bare")
    assert kpi["ownerIds"] == [fake.user_id]
    assert kpi["aggregation"] == "last"
    assert kpi["targetOperator"] == "should_increase"
    assert kpi["groupIds"] == [] and kpi["description"] is None


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({}, "name is required"),
        ({"name": ""}, "name is required"),
        ({"name": 5}, "name is required"),
        ({"name": "x", "aggregation": "median"}, "aggregation must be one of last, sum, avg"),
        ({"name": "x", "targetOperator": "up"}, "targetOperator must be one of"),
        ({"name": "x", "ownerIds": ["nope"]}, "24 hex digits"),
        ({"name": "x", "ownerIds": GOOD_ID}, "list of ids"),
        ({"name": "x", "groupIds": [GOOD_ID + "0"]}, "24 hex digits"),
        ({"name": "x", "formatting": {"fractionSize": "2"}}, "fractionSize"),
        ({"name": "x", "formatting": "usd"}, "formatting must be an object"),
        ({"name": "x", "description": 3}, "description"),
        ([{"name": "x"}], "JSON object"),
    ],
)
async def test_create_kpi_validation(http: Http, body: Any, word: str) -> None:
    status, _, answer = await http("POST", "/v1/kpis", json=body)
    assert_error(status, answer, 400, word)


@pytest.mark.parametrize(("data", "word"), [(b"{oops", "not valid JSON"), (b"", "empty")])
async def test_non_json_body(http: Http, data: bytes, word: str) -> None:
    status, _, body = await http("POST", "/v1/kpis", data=data)
    assert_error(status, body, 400, word)


async def test_get_kpi(http: Http) -> None:
    kpi = await create(http)
    status, _, body = await http("GET", f"/v1/kpis/{kpi['id']}")
    assert status == 200 and body == kpi
    status, _, body = await http("GET", f"/v1/kpis/{GOOD_ID}")
    assert_error(status, body, 404, GOOD_ID)
    status, _, body = await http("GET", "/v1/kpis/123")
    assert_error(status, body, 400, "kpiId", "24 hex digits")


async def test_get_kpi_formatting(http: Http) -> None:
    kpi = await create(http, description="**Hi** @[Ann](5be26318e5274a0007f17f61)")
    path = f"/v1/kpis/{kpi['id']}"
    _, _, markup = await http("GET", path, params={"formatting": "mentionsMarkup"})
    assert markup["description"] == kpi["description"]
    _, _, plain = await http("GET", path, params={"formatting": "plainText"})
    assert plain["description"] == "Hi Ann"
    status, _, body = await http("GET", path, params={"formatting": "html"})
    assert_error(status, body, 400, "formatting must be one of mentionsMarkup, plainText")


async def test_patch_changes_only_the_fields_sent(fake: FakeGtmhub, http: Http) -> None:
    kpi = await create(http, description="old", customField=1)
    status, _, body = await http(
        "PATCH",
        f"/v1/kpis/{kpi['id']}",
        json={"name": "New", "description": None, "other": [1]},
    )
    assert status == 200
    assert body["name"] == "New" and body["description"] is None and body["other"] == [1]
    unchanged = {k: v for k, v in kpi.items() if k not in ("name", "description", "dateUpdated")}
    assert {k: body[k] for k in unchanged} == unchanged
    assert fake.kpis[kpi["id"]] == body


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"name": None}, "name is required"),
        ({"aggregation": None}, "aggregation"),
        ({"ownerIds": ["x"]}, "24 hex digits"),
        ([], "JSON object"),
    ],
)
async def test_patch_validation(http: Http, body: Any, word: str) -> None:
    kpi = await create(http)
    status, _, answer = await http("PATCH", f"/v1/kpis/{kpi['id']}", json=body)
    assert_error(status, answer, 400, word)


async def test_patch_unknown_kpi(http: Http) -> None:
    status, _, body = await http("PATCH", f"/v1/kpis/{GOOD_ID}", json={"name": "x"})
    assert_error(status, body, 404)


async def test_bulk_update(fake: FakeGtmhub, http: Http) -> None:
    a, b = await create(http, name="a"), await create(http, name="b")
    status, _, body = await http(
        "PATCH",
        "/v1/kpis",
        json=[{"id": a["id"], "name": "A"}, {"id": b["id"], "aggregation": "avg"}],
    )
    assert (status, body) == (204, None)
    assert fake.kpis[a["id"]]["name"] == "A"
    assert fake.kpis[b["id"]]["aggregation"] == "avg" and fake.kpis[b["id"]]["name"] == "b"


async def test_bulk_update_is_all_or_nothing(fake: FakeGtmhub, http: Http) -> None:
    a = await create(http, name="a")
    status, _, body = await http(
        "PATCH", "/v1/kpis", json=[{"id": a["id"], "name": "A"}, {"id": GOOD_ID, "name": "B"}]
    )
    assert_error(status, body, 404, GOOD_ID)
    assert fake.kpis[a["id"]]["name"] == "a"


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ([], "non-empty JSON array"),
        ({"id": GOOD_ID}, "array"),
        ([1], "item 0"),
        ([{"name": "x"}], "id of item 0"),
        ([{"id": GOOD_ID, "aggregation": "x"}], "aggregation"),
    ],
)
async def test_bulk_update_validation(http: Http, body: Any, word: str) -> None:
    status, _, answer = await http("PATCH", "/v1/kpis", json=body)
    assert_error(status, answer, 400, word)


async def test_delete_kpi_and_its_snapshots(fake: FakeGtmhub, http: Http) -> None:
    kpi = await create(http)
    fake.add_snapshot(kpi["id"], "2024-01-01", 1)
    status, _, body = await http("DELETE", f"/v1/kpis/{kpi['id']}")
    assert (status, body) == (204, None)
    assert kpi["id"] not in fake.kpis and kpi["id"] not in fake.snapshots
    status, _, _ = await http("GET", f"/v1/kpis/{kpi['id']}")
    assert status == 404
    status, _, _ = await http("DELETE", f"/v1/kpis/{kpi['id']}")
    assert status == 404
    # The journal of received snapshots outlives the KPI.
    assert len(fake.received_snapshots(kpi["id"])) == 1


async def test_insight_usages(fake: FakeGtmhub, http: Http) -> None:
    used = await create(http, insightId=GOOD_ID)
    await create(http)
    status, _, body = await http("GET", f"/v1/insights/{GOOD_ID}/usages/kpis")
    assert status == 200 and [k["id"] for k in body] == [used["id"]]
    status, _, body = await http("GET", f"/v1/insights/{'a' * 24}/usages/kpis")
    assert (status, body) == (200, [])
    status, _, body = await http("GET", "/v1/insights/nope/usages/kpis")
    assert_error(status, body, 400, "24 hex digits")


async def test_favorite_virtual_group(fake: FakeGtmhub, http: Http) -> None:
    path = "/v1/users/kpi-virtual-group/favorite"
    status, _, body = await http("PUT", path, json={"virtualGroup": "myKpis", "favorite": True})
    assert (status, body) == (200, {})
    await http("PUT", path, json={"virtualGroup": "ungrouped", "favorite": False})
    assert fake.favorites == {"myKpis": True, "ungrouped": False}
    status, _, body = await http("PUT", path, json={"virtualGroup": "mine", "favorite": True})
    assert_error(status, body, 400, "virtualGroup must be one of myKpis, ungrouped")
    status, _, body = await http("PUT", path, json={"virtualGroup": "myKpis"})
    assert_error(status, body, 400, "favorite")


# --- Snapshots ---------------------------------------------------------------------------------


async def test_create_snapshot(fake: FakeGtmhub, http: Http) -> None:
    kpi = await create(http)
    status, _, body = await http(
        "POST",
        f"/v1/kpis/{kpi['id']}/snapshots",
        json={"group": "2024-05-02", "value": 42.5, "timeZone": "UTC+2", "description": "d"},
    )
    assert status == 201
    assert set(body) == {"id", "kpiId", "group", "value", "timeZone", "description", "dateCreated"}
    assert (body["kpiId"], body["group"], body["value"], body["timeZone"]) == (
        kpi["id"],
        "2024-05-02",
        42.5,
        "UTC+2",
    )
    assert fake.received_snapshots(kpi["id"]) == [body]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"value": 1}, "group is required"),
        ({"group": "2024-13-01", "value": 1}, "YYYY-MM-DD"),
        ({"group": "2024/01/01", "value": 1}, "YYYY-MM-DD"),
        ({"group": "2024-01-01T00:00:00Z", "value": 1}, "YYYY-MM-DD"),
        ({"group": "2024-01-01"}, "value is required"),
        ({"group": "2024-01-01", "value": "1"}, "must be a number"),
        ({"group": "2024-01-01", "value": True}, "must be a number"),
        ({"group": "2024-01-01", "value": 1, "timeZone": 2}, "timeZone"),
    ],
)
async def test_create_snapshot_validation(http: Http, body: Any, word: str) -> None:
    kpi = await create(http)
    status, _, answer = await http("POST", f"/v1/kpis/{kpi['id']}/snapshots", json=body)
    assert_error(status, answer, 400, word)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"1e400"])
async def test_create_snapshot_rejects_non_finite_values(http: Http, value: bytes) -> None:
    kpi = await create(http)
    data = b'{"group": "2024-01-01", "value": ' + value + b"}"
    status, _, body = await http("POST", f"/v1/kpis/{kpi['id']}/snapshots", data=data)
    assert_error(status, body, 400, "JSON")


async def test_create_snapshot_unknown_kpi(http: Http) -> None:
    status, _, body = await http(
        "POST", f"/v1/kpis/{GOOD_ID}/snapshots", json={"group": "2024-01-01", "value": 1}
    )
    assert_error(status, body, 404)


@pytest.mark.parametrize(("aggregation", "expected"), [("last", 5.0), ("sum", 9.0), ("avg", 3.0)])
async def test_snapshots_are_combined_by_aggregation(
    http: Http, aggregation: str, expected: float
) -> None:
    kpi = await create(http, aggregation=aggregation)
    for value in (3, 1.0, 5.0):
        status, _, _ = await http(
            "POST", f"/v1/kpis/{kpi['id']}/snapshots", json={"group": "2024-01-01", "value": value}
        )
        assert status == 201
    for path in ("/v1/kpi-snapshots", "/v1/kpis/snapshots"):
        status, _, body = await http("GET", path, params={"ids": kpi["id"]})
        assert status == 200
        assert body == [{"kpiId": kpi["id"], "group": "2024-01-01", "value": expected}]


async def test_snapshot_list_sorting_and_dates(fake: FakeGtmhub, http: Http) -> None:
    b, a = fake.add_kpi(name="b"), fake.add_kpi(name="a")
    for kpi in (a, b):
        for day in ("2024-01-03", "2024-01-01", "2024-01-02"):
            fake.add_snapshot(kpi["id"], day, 1)
    _, _, body = await http("GET", "/v1/kpi-snapshots")
    keys = [(row["kpiId"], row["group"]) for row in body]
    assert keys == sorted(keys) and len(keys) == 6
    _, _, body = await http(
        "GET", "/v1/kpi-snapshots", params={"from": "2024-01-02", "to": "2024-01-02"}
    )
    assert {row["group"] for row in body} == {"2024-01-02"} and len(body) == 2
    _, _, body = await http("GET", "/v1/kpi-snapshots", params={"from": "2024-01-03"})
    assert len(body) == 2


async def test_snapshot_selectors(fake: FakeGtmhub, http: Http) -> None:
    group = "ab" * 12
    mine = fake.add_kpi(name="mine", ownerIds=[fake.user_id], groupIds=[group])
    grouped = fake.add_kpi(name="grouped", ownerIds=[GOOD_ID], groupIds=[group])
    loose = fake.add_kpi(name="loose", ownerIds=[GOOD_ID], groupIds=[])
    for kpi in (mine, grouped, loose):
        fake.add_snapshot(kpi["id"], "2024-01-01", 1)

    async def selected(**params: str) -> set[str]:
        status, _, body = await http("GET", "/v1/kpis/snapshots", params=params)
        assert status == 200, body
        return {row["kpiId"] for row in body}

    assert await selected() == {mine["id"], grouped["id"], loose["id"]}
    assert await selected(ids=f"{loose['id']},{mine['id']}") == {loose["id"], mine["id"]}
    assert await selected(groupIds=group) == {mine["id"], grouped["id"]}
    assert await selected(ungrouped="true") == {loose["id"]}
    assert await selected(mykpis="true") == {mine["id"]}
    assert await selected(mykpis="true", ungrouped="true") == {mine["id"], loose["id"]}
    assert await selected(ids=GOOD_ID) == set()


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"from": "2024-02-01", "to": "2024-01-01"}, "must not be after"),
        ({"from": "yesterday"}, "YYYY-MM-DD"),
        ({"to": "2024-02-30"}, "YYYY-MM-DD"),
        ({"ids": "abc"}, "24 hex digits"),
        ({"groupIds": f"{GOOD_ID},x"}, "24 hex digits"),
        ({"mykpis": "yes"}, "true or false"),
        ({"ungrouped": "1"}, "true or false"),
    ],
)
async def test_snapshot_query_validation(http: Http, params: dict[str, str], word: str) -> None:
    for path in ("/v1/kpi-snapshots", "/v1/kpis/snapshots"):
        status, _, body = await http("GET", path, params=params)
        assert_error(status, body, 400, word)


# --- /v2/kpis -----------------------------------------------------------------------------------


async def page(http: Http, **params: Any) -> dict[str, Any]:
    sent = {k: orjson.dumps(v).decode() if k == "filter" else str(v) for k, v in params.items()}
    status, _, body = await http("GET", "/v2/kpis", params=sent)
    assert status == 200, body
    assert body["count"] == len(body["items"])
    assert isinstance(body, dict)
    return body


@pytest.fixture
def catalogue(fake: FakeGtmhub) -> list[dict[str, Any]]:
    owner = "cd" * 12
    return [
        fake.add_kpi(
            name="Revenue",
            aggregation="sum",
            ownerIds=[owner, GOOD_ID],
            formatting={"suffix": "%"},
            score=3,
        ),
        fake.add_kpi(name="Churn", aggregation="avg", ownerIds=[owner], score=1),
        fake.add_kpi(name="revenue EU", aggregation="last", ownerIds=[], score=2),
        fake.add_kpi(name="NPS", aggregation="avg", ownerIds=[GOOD_ID]),
    ]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"name": "Churn"}, [1]),
        ({"aggregation": {"$in": ["sum", "last"]}}, [0, 2]),
        ({"aggregation": {"$nin": ["sum", "last"]}}, [1, 3]),
        ({"name": {"$regex": "^rev"}}, [2]),
        ({"name": {"$regex": "^rev", "$options": "i"}}, [0, 2]),
        ({"$and": [{"aggregation": "avg"}, {"name": "NPS"}]}, [3]),
        ({"$or": [{"name": "NPS"}, {"name": "Churn"}]}, [1, 3]),
        ({"$nor": [{"name": "NPS"}, {"name": "Churn"}]}, [0, 2]),
        ({"aggregation": {"$ne": "avg"}}, [0, 2]),
        ({"score": {"$gt": 1}}, [0, 2]),
        ({"score": {"$gte": 1, "$lt": 3}}, [1, 2]),
        ({"score": {"$lte": 1}}, [1]),
        ({"score": {"$exists": False}}, [3]),
        ({"score": None}, [3]),
        ({"score": {"$not": {"$gt": 1}}}, [1, 3]),
        ({"ownerIds": GOOD_ID}, [0, 3]),
        ({"ownerIds": {"$in": ["cd" * 12]}}, [0, 1]),
        ({"formatting.suffix": "%"}, [0]),
        ({"name": {"$gt": "O"}}, [0, 2]),
        ({}, [0, 1, 2, 3]),
    ],
)
async def test_filter(
    http: Http, catalogue: list[dict[str, Any]], expr: dict[str, Any], expected: list[int]
) -> None:
    body = await page(http, filter=expr)
    assert [k["id"] for k in body["items"]] == [catalogue[i]["id"] for i in expected]
    assert body["totalCount"] == len(expected)


async def test_filter_by_underscore_id(http: Http, catalogue: list[dict[str, Any]]) -> None:
    body = await page(http, filter={"_id": catalogue[2]["id"]})
    assert [k["name"] for k in body["items"]] == ["revenue EU"]
    ids = [catalogue[0]["id"], catalogue[3]["id"]]
    body = await page(http, filter={"_id": {"$in": ids}})
    assert [k["id"] for k in body["items"]] == ids


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"name": {"$like": "x"}}', "unknown operator '$like'"),
        ('{"$where": "1"}', "unknown operator '$where'"),
        ('{"name": {"$in": "x"}}', "$in needs an array"),
        ('{"name": {"$regex": "("}}', "invalid $regex"),
        ('{"name": {"$regex": "a", "$options": "q"}}', "$options"),
        ('{"$or": []}', "non-empty array"),
        ('{"name": {"$gt": "a", "x": 1}}', "cannot mix"),
    ],
)
async def test_filter_errors(http: Http, raw: str, word: str) -> None:
    status, _, body = await http("GET", "/v2/kpis", params={"filter": raw})
    assert_error(status, body, 400, word)


async def test_sort(http: Http, catalogue: list[dict[str, Any]]) -> None:
    names = [k["name"] for k in (await page(http, sort="name"))["items"]]
    assert names == ["Churn", "NPS", "Revenue", "revenue EU"]
    body = await page(http, sort="aggregation,-name")
    assert [k["name"] for k in body["items"]] == ["NPS", "Churn", "revenue EU", "Revenue"]
    body = await page(http, sort="-score")
    assert [k["name"] for k in body["items"]] == ["Revenue", "revenue EU", "Churn", "NPS"]
    status, _, answer = await http("GET", "/v2/kpis", params={"sort": "name,,-x"})
    assert_error(status, answer, 400, "empty field name")


async def test_sort_ties_break_on_id(fake: FakeGtmhub, http: Http) -> None:
    kpis = fake.add_kpis(30, aggregation=lambda i: ("sum", "avg")[i % 2])
    body = await page(http, sort="aggregation", take=30)
    ids = [k["id"] for k in body["items"]]
    avg = sorted(k["id"] for k in kpis if k["aggregation"] == "avg")
    total = sorted(k["id"] for k in kpis if k["aggregation"] == "sum")
    assert ids == avg + total


async def test_projection(http: Http, catalogue: list[dict[str, Any]]) -> None:
    body = await page(http, fields="name,formatting.suffix", sort="name", take=1)
    assert body["items"] == [
        {"id": catalogue[1]["id"], "name": "Churn", "formatting": {"suffix": ""}}
    ]
    body = await page(http, fields="_id", take=1)
    assert body["items"] == [{"id": catalogue[0]["id"]}]


async def test_paging_walks_every_kpi_once(fake: FakeGtmhub, http: Http) -> None:
    fake.add_kpis(1050)
    seen: list[str] = []
    skip = 0
    while True:
        body = await page(http, sort="name", skip=skip, take=500)
        assert body["totalCount"] == 1050
        seen += [k["id"] for k in body["items"]]
        skip += body["count"]
        if body["count"] < 500:
            break
    assert len(seen) == len(set(seen)) == 1050
    assert [len(b) for b in (seen[:500], seen[500:1000], seen[1000:])] == [500, 500, 50]


async def test_default_take_is_100(fake: FakeGtmhub, http: Http) -> None:
    fake.add_kpis(150)
    body = await page(http)
    assert (body["count"], body["totalCount"]) == (100, 150)
    body = await page(http, skip=140)
    assert body["count"] == 10
    body = await page(http, skip=1000)
    assert (body["count"], body["totalCount"]) == (0, 150)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"take": "0"}, "take must be between 1 and 500"),
        ({"take": "501"}, "take must be between 1 and 500"),
        ({"take": "ten"}, "take must be an integer"),
        ({"skip": "-1"}, "skip must be 0 or more"),
    ],
)
async def test_paging_validation(http: Http, params: dict[str, str], word: str) -> None:
    status, _, body = await http("GET", "/v2/kpis", params=params)
    assert_error(status, body, 400, word)


async def test_max_page_size_is_configurable() -> None:
    async with FakeGtmhub(max_page_size=10) as fake, aiohttp.ClientSession() as session:
        http = Http(fake, session)
        status, _, body = await http("GET", "/v2/kpis", params={"take": "11"})
        assert_error(status, body, 400, "between 1 and 10")


async def test_listed_items_are_copies(fake: FakeGtmhub, http: Http) -> None:
    kpi = fake.add_kpi(name="x")
    body = await page(http)
    body["items"][0]["name"] = "changed"
    assert fake.kpis[kpi["id"]]["name"] == "x"


# --- Store helpers -------------------------------------------------------------------------------


async def test_add_kpis_with_callable_overrides() -> None:
    fake = FakeGtmhub()
    kpis = fake.add_kpis(3, name=lambda i: f"K{i}", groupIds=[GOOD_ID])
    assert [k["name"] for k in kpis] == ["K0", "K1", "K2"]
    assert all(k["groupIds"] == [GOOD_ID] for k in kpis)
    assert list(fake.kpis) == [k["id"] for k in kpis]
    with pytest.raises(ValueError, match="aggregation"):
        fake.add_kpi(aggregation="median")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        fake.add_snapshot(kpis[0]["id"], "2024-1-1", 1)
    with pytest.raises(KeyError):
        fake.add_snapshot(GOOD_ID, "2024-01-01", 1)


# --- Rate limit ----------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after() -> None:
    clock = Clock()
    async with (
        FakeGtmhub(rate_limit=(2, 10.0), clock=clock) as fake,
        aiohttp.ClientSession() as session,
    ):
        http = Http(fake, session)
        assert (await http("GET", "/v2/kpis"))[0] == 200
        clock.now += 3
        assert (await http("GET", "/v2/kpis"))[0] == 200
        clock.now += 2.5
        status, headers, body = await http("GET", "/v2/kpis")
        assert_error(status, body, 429, "rate limit of 2 requests per 10 s")
        assert headers["Retry-After"] == "5"  # the first slot frees 4.5 s later: rounded up
        clock.now += 4.5
        assert (await http("GET", "/v2/kpis"))[0] == 200
        status, headers, _ = await http("GET", "/v2/kpis")
        assert (status, headers["Retry-After"]) == (429, "3")
        assert fake.count(status=429) == 2
        fake.set_rate_limit(None)
        assert (await http("GET", "/v2/kpis"))[0] == 200


async def test_rate_limit_ignores_unauthenticated_requests() -> None:
    async with (
        FakeGtmhub(rate_limit=(1, 60.0), clock=Clock()) as fake,
        aiohttp.ClientSession() as session,
    ):
        http = Http(fake, session)
        assert (await http("GET", "/v2/kpis", auth=False))[0] == 401
        assert (await http("GET", "/v2/kpis"))[0] == 200
        assert (await http("GET", "/v2/kpis"))[0] == 429


def test_rate_limit_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="positive int"):
        FakeGtmhub(rate_limit=(0, 1.0))
    with pytest.raises(ValueError, match="window"):
        FakeGtmhub(rate_limit=(1, 0.0))


# --- Faults ------------------------------------------------------------------------------------


async def test_scripted_statuses_come_before_anything_is_applied(
    fake: FakeGtmhub, http: Http
) -> None:
    fake.script([503, 429, 500, None])
    for expected in (503, 429, 500):
        status, headers, body = await http("POST", "/v1/kpis", json={"name": "x"})
        assert_error(status, body, expected, "injected")
        if expected in (429, 503):
            assert headers["Retry-After"] == "1"
        else:
            assert "Retry-After" not in headers
    assert fake.kpis == {}
    status, _, _ = await http("POST", "/v1/kpis", json={"name": "x"})
    assert status == 201 and len(fake.kpis) == 1
    assert [r.fault for r in fake.requests] == ["503", "429", "500", None]
    assert fake.scripted == 0


async def test_retry_after_of_injected_errors(fake: FakeGtmhub, http: Http) -> None:
    fake.set_faults(Faults(retry_after=None))
    fake.script([429])
    _, headers, _ = await http("GET", "/v2/kpis")
    assert "Retry-After" not in headers
    fake.set_faults(Faults(retry_after=2.5))
    fake.script([503])
    _, headers, _ = await http("GET", "/v2/kpis")
    assert headers["Retry-After"] == "3"


async def test_reset_after_write_applies_then_drops(fake: FakeGtmhub, http: Http) -> None:
    kpi = fake.add_kpi(name="k")
    fake.script(["reset"])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http(
            "POST", f"/v1/kpis/{kpi['id']}/snapshots", json={"group": "2024-01-01", "value": 5}
        )
    assert [s["value"] for s in fake.received_snapshots(kpi["id"])] == [5]
    record = fake.requests[-1]
    assert (record.status, record.dropped, record.applied, record.fault) == (
        None,
        True,
        True,
        "reset",
    )


async def test_reset_before_applies_nothing(fake: FakeGtmhub, http: Http) -> None:
    fake.script(["reset-before"])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http("POST", "/v1/kpis", json={"name": "x"})
    assert fake.kpis == {}
    assert fake.requests[-1].dropped and not fake.requests[-1].applied


async def test_500_after_write(fake: FakeGtmhub, http: Http) -> None:
    fake.script(["500-after-write", "500-after-write"])
    status, _, body = await http("POST", "/v1/kpis", json={"name": "x"})
    assert_error(status, body, 500, "after the change was saved")
    assert len(fake.kpis) == 1
    # A request that fails validation is answered as such: nothing was saved.
    status, _, body = await http("POST", "/v1/kpis", json={})
    assert_error(status, body, 400)


async def test_malformed_json(fake: FakeGtmhub, http: Http) -> None:
    fake.add_kpis(3)
    fake.script(["malformed"])
    status, headers, body = await http("GET", "/v2/kpis")
    assert status == 200 and isinstance(body, bytes)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    assert headers["Content-Type"].startswith("application/json")


async def test_slow_body_arrives_whole(fake: FakeGtmhub, http: Http) -> None:
    fake.add_kpis(5)
    fake.set_faults(Faults(slow_body_chunks=5, slow_body_delay=0.02))
    fake.script(["slow"])
    started = time.monotonic()
    status, _, body = await http("GET", "/v2/kpis")
    assert status == 200 and body["count"] == 5
    assert time.monotonic() - started >= 0.07
    assert fake.requests[-1].fault == "slow"


async def test_slow_body_cut_off_by_a_client_timeout(fake: FakeGtmhub, http: Http) -> None:
    fake.add_kpis(5)
    fake.set_faults(Faults(slow_body_chunks=3, slow_body_delay=0.5))
    fake.script(["slow"])
    with pytest.raises(asyncio.TimeoutError):
        await http("GET", "/v2/kpis", timeout=aiohttp.ClientTimeout(total=0.1))


async def test_stall_makes_the_client_time_out(fake: FakeGtmhub, http: Http) -> None:
    fake.set_faults(Faults(stall_seconds=30))
    fake.script(["stall"])
    with pytest.raises(asyncio.TimeoutError):
        await http(
            "POST", "/v1/kpis", json={"name": "x"}, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    # close() wakes the stalled handler at once: the fixture's teardown stays fast.


async def test_stall_then_answers(fake: FakeGtmhub, http: Http) -> None:
    fake.set_faults(Faults(stall_seconds=0.05))
    fake.script(["stall"])
    status, _, _ = await http("POST", "/v1/kpis", json={"name": "x"})
    assert status == 201


async def test_close_is_fast_with_a_stalled_request() -> None:
    fake = await FakeGtmhub(faults=Faults(stall_rate=1.0, stall_seconds=60)).start()
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(Http(fake, session)("GET", "/v2/kpis"))
        while not fake.requests:  # noqa: ASYNC110 - the log is a plain list, not an event
            await asyncio.sleep(0.01)
        # A hang guard, not a speed bound: the stall lasts 60 s, close() must not wait it out.
        async with asyncio.timeout(30):
            await fake.close()
        with pytest.raises(aiohttp.ClientError):
            await task
    assert fake.requests[0].dropped


async def test_latency() -> None:
    async with FakeGtmhub(latency=0.05) as fake, aiohttp.ClientSession() as session:
        started = time.monotonic()
        assert (await Http(fake, session)("GET", "/v2/kpis"))[0] == 200
        assert time.monotonic() - started >= 0.05


async def test_faults_latency_adds_up() -> None:
    faults = Faults(latency=0.03)
    async with FakeGtmhub(latency=0.02, faults=faults) as fake, aiohttp.ClientSession() as session:
        started = time.monotonic()
        await Http(fake, session)("GET", "/v2/kpis")
        assert time.monotonic() - started >= 0.05


async def run_with_faults(seed: int, faults: Faults, n: int) -> list[str | None]:
    async with FakeGtmhub(seed=seed, faults=faults) as fake, aiohttp.ClientSession() as session:
        http = Http(fake, session)
        for i in range(n):
            with contextlib.suppress(aiohttp.ClientError):
                await http("POST", "/v1/kpis", json={"name": f"k{i}"})
        return [r.fault for r in fake.requests]


async def test_seeded_faults_are_deterministic() -> None:
    faults = Faults(error_rate=0.3, reset_after_write_rate=0.1, malformed_json_rate=0.1)
    first = await run_with_faults(11, faults, 40)
    assert first == await run_with_faults(11, faults, 40)
    assert first != await run_with_faults(12, faults, 40)
    kinds = set(first)
    assert {None, "reset", "malformed"} <= kinds
    assert kinds & {"500", "502", "503", "429"}


async def test_error_rate_one_fails_everything() -> None:
    faults = Faults(error_rate=1.0, statuses=(502,))
    assert await run_with_faults(1, faults, 5) == ["502"] * 5


async def test_after_write_faults_spare_reads(fake: FakeGtmhub, http: Http) -> None:
    fake.set_faults(Faults(reset_after_write_rate=0.5, error_after_write_rate=0.5))
    for _ in range(5):
        assert (await http("GET", "/v2/kpis"))[0] == 200
    assert {r.fault for r in fake.requests} == {None}


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        Faults(error_rate=0.6, reset_rate=0.6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(error_rate=-0.1)
    with pytest.raises(ValueError, match=r"400\.\.599"):
        Faults(statuses=(200,))
    fake = FakeGtmhub()
    with pytest.raises(ValueError, match="unknown fault"):
        fake.script(["explode"])
    with pytest.raises(TypeError):
        fake.script([True])


# --- Request log ---------------------------------------------------------------------------------


async def test_request_log(fake: FakeGtmhub, http: Http) -> None:
    clock_before = asyncio.get_running_loop().time()
    kpi = await create(http, name="logged")
    await http("GET", f"/v1/kpis/{kpi['id']}", params={"formatting": "plainText"})
    await http("GET", f"/v1/kpis/{GOOD_ID}")
    await http("GET", "/v2/kpis", auth=False)
    first = fake.requests[0]
    assert (first.method, first.path, first.route, first.status) == (
        "POST",
        "/v1/kpis",
        "/v1/kpis",
        201,
    )
    assert first.json == {"name": "logged"} and first.time >= clock_before
    assert first.headers["gtmhub-accountId"] == fake.account_id
    assert fake.requests[1].query == {"formatting": "plainText"}
    assert fake.requests[1].route == "/v1/kpis/{kpiId}"
    for record in fake.requests:
        assert "Authorization" not in record.headers
        assert fake.token not in repr(record)
    assert fake.count() == 4
    assert fake.count("GET") == 3
    assert fake.count("get", "/v1/kpis/{kpiId}") == 2
    assert fake.count(path=f"/v1/kpis/{kpi['id']}") == 1
    assert fake.count(status=404) == 1 and fake.count(status=401) == 1
    fake.clear_requests()
    assert fake.count() == 0


async def test_received_snapshots_counts_each_delivery(fake: FakeGtmhub, http: Http) -> None:
    kpi = fake.add_kpi(name="k")
    path = f"/v1/kpis/{kpi['id']}/snapshots"
    for value in (1, 2):
        await http("POST", path, json={"group": "2024-01-01", "value": value})
    assert [s["value"] for s in fake.received_snapshots(kpi["id"])] == [1, 2]
    assert fake.received_snapshots(GOOD_ID) == []
    assert fake.count("POST", "/v1/kpis/{kpiId}/snapshots") == 2


async def test_concurrent_requests(fake: FakeGtmhub, http: Http) -> None:
    await asyncio.gather(*(create(http, name=f"k{i}") for i in range(50)))
    assert len(fake.kpis) == 50 and fake.count("POST", status=201) == 50


async def test_large_bulk_update(fake: FakeGtmhub, http: Http) -> None:
    kpis = fake.add_kpis(5000)
    body = [{"id": k["id"], "description": "x" * 300} for k in kpis]
    data = orjson.dumps(body)
    assert len(data) > 1024 * 1024
    # aiohttp warns (ResourceWarning) about raw bytes this large: stream them instead.
    status, headers, _ = await http(
        "PATCH", "/v1/kpis", data=io.BytesIO(data), headers={"Content-Type": "application/json"}
    )
    assert status == 204 and headers["X-Request-Id"]
    assert all(k["description"] == "x" * 300 for k in fake.kpis.values())


# --- Quirks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_cap": 0}, "page_cap must be a positive int or None, got 0"),
        ({"page_cap": True}, "page_cap must be a positive int or None, got True"),
        ({"page_param": "size"}, "page_param must be one of take, limit, none, got 'size'"),
        (
            {"write_reply": "xml"},
            "write_reply must be one of normal, empty, {}, id, text, got 'xml'",
        ),
        ({"time_zone_forms": frozenset({"gmt"})}, "time_zone_forms must be None or a frozenset"),
    ],
)
def test_quirks_refuse_unknown_options(kwargs: dict[str, Any], message: str) -> None:
    from gtmhub_async.testing import Quirks

    with pytest.raises(ValueError) as info:
        Quirks(**kwargs)
    assert str(info.value).startswith(message)


def test_quirks_refuse_kpi_overrides_that_are_not_json() -> None:
    from gtmhub_async.testing import Quirks

    with pytest.raises(TypeError, match="Type is not JSON serializable: object"):
        Quirks(kpi_overrides={"x": object()})


async def test_quirks_shape_the_answers_of_the_fake() -> None:
    from gtmhub_async.testing import Quirks

    async with FakeGtmhub(seed=1, quirks=Quirks(page_cap=3, page_param="limit")) as fake:
        fake.add_kpis(5)
        async with aiohttp.ClientSession(headers=fake.auth_headers()) as http:
            url = fake.base_url + "/v2/kpis"
            async with http.get(url, params={"limit": "4", "skip": "1"}) as resp:
                page = await resp.json()
            assert [len(page["items"]), page["totalCount"]] == [3, 5]
            assert page["items"][0]["id"] == sorted(fake.kpis)[1]
            fake.quirks = Quirks(ignore_skip=True, total_count=False)
            async with http.get(url, params={"take": "2", "skip": "4"}) as resp:
                page = await resp.json()
            assert [k["id"] for k in page["items"]] == sorted(fake.kpis)[:2]
            assert "totalCount" not in page
            fake.quirks = Quirks(write_reply="text")
            kid = sorted(fake.kpis)[0]
            async with http.patch(fake.base_url + f"/v1/kpis/{kid}", json={"name": "n"}) as resp:
                assert (resp.status, await resp.read()) == (200, b"ok")
            fake.quirks = Quirks(write_reply="id")
            body = {"group": "2026-11-01", "value": 1}
            async with http.post(fake.base_url + f"/v1/kpis/{kid}/snapshots", json=body) as resp:
                assert orjson.loads(await resp.read()) == fake.snapshots[kid][0]["id"]
