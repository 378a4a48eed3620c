"""The client's life cycle, configuration and the checks it makes before sending anything."""

from __future__ import annotations

import asyncio
import gc
import re
import warnings
from datetime import date
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from gtmhub_async import (
    ClientStateError,
    CreateKpiRequest,
    GtmhubClient,
    KpiSnapshotRequest,
    RateLimit,
    Region,
    RetryPolicy,
    UpdateKpiRequest,
)

TOKEN = "secret-token-123"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
ANY = re.compile(r".*")


def client(**kwargs: Any) -> GtmhubClient:
    kwargs.setdefault("rate_limit", None)
    return GtmhubClient(TOKEN, ACCOUNT, base_url=BASE, **kwargs)


async def test_calling_outside_async_with_raises() -> None:
    c = client()
    with pytest.raises(ClientStateError, match="inside 'async with GtmhubClient"):
        await c.kpis.get(KPI_ID)


async def test_entering_twice_raises() -> None:
    async with client() as c:
        with pytest.raises(ClientStateError, match="already open"):
            await c.__aenter__()


async def test_use_after_close_raises() -> None:
    async with client() as c:
        pass
    with pytest.raises(ClientStateError, match="closed; create a new one"):
        await c.kpis.get(KPI_ID)
    with pytest.raises(ClientStateError, match="closed; create a new one"):
        await c.__aenter__()
    await c.aclose()  # closing twice is harmless


def test_use_from_another_event_loop_raises() -> None:
    async def open_client() -> GtmhubClient:
        c = client()
        await c.__aenter__()
        return c

    loop1 = asyncio.new_event_loop()
    loop2 = asyncio.new_event_loop()
    try:
        c = loop1.run_until_complete(open_client())
        with pytest.raises(ClientStateError, match="opened in another event loop"):
            loop2.run_until_complete(c.kpis.get(KPI_ID))
        loop1.run_until_complete(c.aclose())
    finally:
        loop1.close()
        loop2.close()


async def test_injected_session_is_used_and_not_closed() -> None:
    async with aiohttp.ClientSession() as http:
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=200, body=b'{"id": "5e8c27e3dcdddaa4addbdee8"}')
            async with client(session=http) as c:
                await c.kpis.get(KPI_ID)
        assert not http.closed


async def test_closed_injected_session_is_refused() -> None:
    http = aiohttp.ClientSession()
    await http.close()
    with pytest.raises(ClientStateError, match="session given to GtmhubClient is closed"):
        async with client(session=http):
            pass


async def test_owned_session_is_closed() -> None:
    async with client() as c:
        http = c._http
        assert http is not None and not http.closed
    assert http.closed


async def test_unclosed_client_warns_when_collected() -> None:
    c = client()
    await c.__aenter__()
    http = c._http
    assert http is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c.__del__()
    assert any(
        issubclass(w.category, ResourceWarning) and "unclosed" in str(w.message) for w in caught
    )
    await c.aclose()
    del c
    gc.collect()


def test_repr_has_no_token() -> None:
    c = client()
    assert TOKEN not in repr(c) and TOKEN not in str(c)
    assert repr(c) == f"GtmhubClient(account_id='{ACCOUNT}', base_url='{BASE}', state='new')"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"token": ""}, ValueError, "token must not be empty"),
        ({"token": None}, TypeError, "token must be a str, got NoneType"),
        ({"token": "abc\ndef"}, ValueError, "token must not contain whitespace"),
        ({"account_id": ""}, ValueError, "account_id must not be empty"),
        ({"account_id": "acme"}, ValueError, "account_id must be 24 hex digits, got 'acme'"),
        ({"base_url": "http://app.gtmhub.com/api"}, ValueError, "base_url must use https"),
        ({"base_url": "ftp://x/api"}, ValueError, "must be an absolute http"),
        ({"base_url": "https://app.gtmhub.com/api/v1"}, ValueError, "without the version"),
        ({"base_url": "https://a.b/api?x=1"}, ValueError, "must not have a query"),
        ({"timeout": 0}, ValueError, "timeout must be positive, got 0"),
        ({"timeout": "5"}, TypeError, "timeout must be a number of seconds, got str"),
        (
            {"rate_limit": 10},
            TypeError,
            "rate_limit must be a RateLimit, a RedisRateLimit or None",
        ),
        ({"retry": 3}, TypeError, "retry must be a RetryPolicy, got int"),
        ({"session": object()}, TypeError, "session must be an aiohttp.ClientSession"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], error: type, message: str) -> None:
    args = {"token": TOKEN, "account_id": ACCOUNT, "base_url": BASE} | kwargs
    with pytest.raises(error, match=re.escape(message)) as info:
        GtmhubClient(args.pop("token"), args.pop("account_id"), **args)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/api",
        "http://[::1]:9/api",
        "https://app.gtmhub.com/api/",
    ],
)
def test_https_or_loopback_base_urls_are_accepted(url: str) -> None:
    assert GtmhubClient(TOKEN, ACCOUNT, base_url=url).base_url == url.rstrip("/")


def test_regions() -> None:
    assert GtmhubClient.for_region("eu", TOKEN, ACCOUNT).base_url == (
        "https://app.quantive.com/results/api"
    )
    assert GtmhubClient.for_region(Region.US, TOKEN, ACCOUNT).base_url == (
        "https://app.us.quantive.com/results/api"
    )
    assert GtmhubClient.for_region("au", TOKEN, ACCOUNT).base_url == (
        "https://app.au.quantive.com/results/api"
    )
    assert GtmhubClient.for_region("us", TOKEN, ACCOUNT, legacy=True).base_url == (
        "https://app.us.gtmhub.com/api"
    )
    assert Region.EU.base_url(legacy=True) == "https://app.gtmhub.com/api"
    with pytest.raises(ValueError, match=r"no legacy gtmhub.com host is known for region 'au'"):
        Region.AU.base_url(legacy=True)
    with pytest.raises(ValueError, match="unknown region 'mars'; known regions: eu, us"):
        GtmhubClient.for_region("mars", TOKEN, ACCOUNT)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GTMHUB_TOKEN", raising=False)
    monkeypatch.delenv("GTMHUB_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("GTMHUB_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="set GTMHUB_TOKEN and GTMHUB_ACCOUNT_ID"):
        GtmhubClient.from_env()
    monkeypatch.setenv("GTMHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GTMHUB_ACCOUNT_ID", ACCOUNT)
    assert GtmhubClient.from_env().base_url == "https://app.gtmhub.com/api"
    monkeypatch.setenv("GTMHUB_BASE_URL", BASE)
    c = GtmhubClient.from_env(timeout=5)
    assert (c.base_url, c.account_id, c.timeout) == (BASE, ACCOUNT, 5.0)


def test_rate_limit_and_retry_policy_validate() -> None:
    with pytest.raises(ValueError, match="max_rate must be positive"):
        RateLimit(0)
    with pytest.raises(ValueError, match="max_attempts must be at least 1, got 0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(TypeError, match="max_attempts must be an int, got float"):
        RetryPolicy(max_attempts=1.5)  # type: ignore[arg-type]  # the wrong type is the test
    with pytest.raises(ValueError, match="backoff_base must not be negative"):
        RetryPolicy(backoff_base=-1)


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], type, str]] = [
    ("get", ("nope",), {}, ValueError, "kpi_id must be 24 hex digits, got 'nope'"),
    ("get", ("../users/5e8c27e3dcdddaa4addbdee8",), {}, ValueError, "kpi_id must be 24 hex"),
    ("get", (123,), {}, TypeError, "kpi_id must be a str of 24 hex digits, got int"),
    ("get", (KPI_ID,), {"timeout": -1}, ValueError, "timeout must be positive, got -1"),
    ("delete", ("5e8c27e3dcdddaa4addbdeeZ",), {}, ValueError, "kpi_id must be 24 hex digits"),
    ("list_page", (), {"take": 0}, ValueError, "take must be between 1 and 500, got 0"),
    ("list_page", (), {"take": 501}, ValueError, "take must be between 1 and 500, got 501"),
    ("list_page", (), {"skip": -1}, ValueError, "skip must be 0 or more, got -1"),
    (
        "snapshots",
        (),
        {"from_date": date(2026, 2, 1), "to_date": date(2026, 1, 1)},
        ValueError,
        "from_date 2026-02-01 is after to_date 2026-01-01",
    ),
    ("snapshots", (), {"ids": KPI_ID}, TypeError, "ids must be a sequence of ids, not str"),
    ("snapshots", (), {"ids": ["x"]}, ValueError, "each of ids must be 24 hex digits"),
    ("snapshots", (), {"ungrouped": "yes"}, TypeError, "ungrouped must be a bool, got str"),
    ("snapshots", (), {"from_date": "2026-01-01"}, TypeError, "from_date must be a datetime.date"),
    ("create", ({"name": "x"},), {}, TypeError, "must be <class 'gtmhub_async.models.Create"),
    ("update", (KPI_ID, UpdateKpiRequest()), {}, ValueError, "update sets no field"),
    ("bulk_update", ({},), {}, ValueError, "updates must not be empty"),
    (
        "bulk_update",
        ({"x": UpdateKpiRequest(name="a")},),
        {},
        ValueError,
        "each KPI id in updates must be 24 hex digits",
    ),
    ("bulk_update", ({KPI_ID: {"name": "a"}},), {}, TypeError, "must be an UpdateKpiRequest"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "error", "message"), BAD_CALLS)
async def test_bad_input_is_refused_before_anything_is_sent(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, message: str
) -> None:
    with aioresponses() as mocked:
        async with client() as c:
            with pytest.raises(error, match=re.escape(message)):
                await getattr(c.kpis, method)(*args, **kwargs)
        assert not mocked.requests


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: KpiSnapshotRequest(group=date(2026, 1, 1), value=float("nan")),
            ValueError,
            "value must be a finite number, got nan",
        ),
        (
            lambda: KpiSnapshotRequest(group=date(2026, 1, 1), value=float("inf")),
            ValueError,
            "value must be a finite number, got inf",
        ),
        (
            lambda: KpiSnapshotRequest(group=date(2026, 1, 1), value="3"),
            TypeError,
            "value must be a number, got str",
        ),
        (
            lambda: KpiSnapshotRequest(group="2026-01-01", value=3),
            TypeError,
            "group must be a datetime.date, got str",
        ),
        (lambda: CreateKpiRequest(name=" "), ValueError, "name must not be empty"),
        (
            lambda: CreateKpiRequest(name="a", owner_ids=[KPI_ID, "x"]),
            ValueError,
            "each of owner_ids must be 24 hex digits, got 'x'",
        ),
        (
            lambda: CreateKpiRequest(name="a", owner_ids=KPI_ID),
            TypeError,
            "owner_ids must be a sequence of ids, not str",
        ),
        (lambda: UpdateKpiRequest(name=""), ValueError, "name must not be empty"),
    ],
)
def test_bad_models_are_refused(build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


async def test_raw_request_goes_through_the_same_rules() -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", status=503, headers={"Retry-After": "0"})
        mocked.add(ANY, "POST", status=200, body=b'{"ok": true}')
        mocked.add(ANY, "DELETE", status=204)
        async with client(retry=RetryPolicy(backoff_base=0.0)) as c:
            answer = await c.request(
                "post", "/v1/kpis/x/custom", params={"a": True, "b": None}, json={"k": [1]}
            )
            assert answer == {"ok": True}
            assert await c.request("DELETE", "/v2/things/1") is None
        calls = [(k[0], str(k[1]), v) for k, vs in mocked.requests.items() for v in vs]
    assert [(m, u) for m, u, _ in calls] == [
        ("POST", f"{BASE}/v1/kpis/x/custom?a=true"),
        ("POST", f"{BASE}/v1/kpis/x/custom?a=true"),
        ("DELETE", f"{BASE}/v2/things/1"),
    ]
    assert calls[0][2].kwargs["data"] == b'{"k":[1]}'


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("TRACE", "/v1/kpis", "method must be one of DELETE, GET, PATCH, POST, PUT, got 'TRACE'"),
        ("GET", "/v3/kpis", "path must start with /v1/ or /v2/, got '/v3/kpis'"),
        ("GET", "https://evil/v1/kpis", "path must start with /v1/ or /v2/"),
        ("GET", "/v1/../admin", "path must be a plain path without '..'"),
        ("GET", "/v1/kpis?x=1", "path must be a plain path without '..', '?'"),
    ],
)
async def test_raw_request_refuses_bad_paths(method: str, path: str, message: str) -> None:
    with aioresponses() as mocked:
        async with client() as c:
            with pytest.raises(ValueError, match=re.escape(message)):
                await c.request(method, path)
        assert not mocked.requests


def test_the_core_works_without_the_redis_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['redis'] = None\n"  # makes 'import redis' fail
        "import gtmhub_async\n"
        "from gtmhub_async import GtmhubClient, RateLimit\n"
        "GtmhubClient('t', '5be26318e5274a0007f17f61', rate_limit=RateLimit(5))\n"
        "try:\n"
        "    gtmhub_async.RedisRateLimit\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "RedisRateLimit needs the redis extra: pip install 'gtmhub-async[redis]'"
    )
