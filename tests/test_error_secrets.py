"""Every error the SDK raises shows what failed, and never the API token."""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import CallbackResult, aioresponses

from gtmhub_async import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ClientStateError,
    ConflictError,
    DeadlineExceededError,
    GtmhubClient,
    GtmhubError,
    KpiSnapshotRequest,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnexpectedRedirectError,
    UnknownOutcomeError,
)
from gtmhub_async.errors import error_for_status, excerpt

TOKEN = "tok-Zq7Xv9SECRET"
ACCOUNT = "5be26318e5274a0007f17f61"
BASE = "https://api.example.com/api"
KPI_ID = "5e8c27e3dcdddaa4addbdee8"
ANY = re.compile(r".*")
ONE = RetryPolicy(max_attempts=1, backoff_base=0.0)


def client() -> GtmhubClient:
    return GtmhubClient(TOKEN, ACCOUNT, base_url=BASE, rate_limit=None, retry=ONE, seed=1)


def snapshot() -> KpiSnapshotRequest:
    return KpiSnapshotRequest(group=date(2026, 11, 1), value=1.0)


def shown(error: BaseException) -> str:
    """Return everything a log line or traceback could show of an error and its causes."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args)]
        parts += [repr(v) for v in vars(seen).values()]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def echo(status: int) -> Callable[..., Awaitable[CallbackResult]]:
    """Answer ``status`` with a body that repeats the request's headers, token included."""

    async def answer(url: Any, **kwargs: Any) -> CallbackResult:
        headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
        assert TOKEN in headers.get("Authorization", "")
        return CallbackResult(status=status, body=orjson.dumps({"message": "no", "h": 1}))

    return answer


EXPECTED: list[tuple[int, str, type[GtmhubError]]] = [
    (400, "GET", BadRequestError),
    (401, "GET", AuthenticationError),
    (402, "GET", PaymentRequiredError),
    (403, "GET", PermissionDeniedError),
    (404, "GET", NotFoundError),
    (409, "GET", ConflictError),
    (418, "GET", ApiError),
    (429, "GET", RateLimitError),
    (500, "GET", ServerError),
    (302, "GET", UnexpectedRedirectError),
    (500, "POST", UnknownOutcomeError),
]


@pytest.mark.parametrize(("status", "method", "cls"), EXPECTED)
async def test_no_error_shows_the_token(status: int, method: str, cls: type[GtmhubError]) -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, method, callback=echo(status), repeat=True)
        async with client() as c:
            with pytest.raises(GtmhubError) as info:
                if method == "GET":
                    await c.kpis.get(KPI_ID)
                else:
                    await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert type(info.value) is cls
    text = shown(info.value)
    assert KPI_ID in text  # it does say what failed
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("failure", "method", "cls"),
    [
        (aiohttp.ServerDisconnectedError(), "GET", TransportError),
        (aiohttp.ServerDisconnectedError(), "POST", UnknownOutcomeError),
        (TimeoutError(), "GET", TransportError),
    ],
)
async def test_no_transport_error_shows_the_token(
    failure: Exception, method: str, cls: type[GtmhubError]
) -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, method, exception=failure, repeat=True)
        async with client() as c:
            with pytest.raises(GtmhubError) as info:
                if method == "GET":
                    await c.kpis.get(KPI_ID)
                else:
                    await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert type(info.value) is cls
    assert KPI_ID in shown(info.value)
    assert TOKEN not in shown(info.value)


async def test_no_deadline_decode_or_state_error_shows_the_token() -> None:
    async def stall(url: Any, **kwargs: Any) -> CallbackResult:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    errors: list[GtmhubError] = []
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=200, body=b'{"id": 5')
        mocked.add(ANY, "GET", callback=stall)
        mocked.add(ANY, "POST", callback=stall)
        async with client() as c:
            for call in (
                c.kpis.get(KPI_ID),
                c.kpis.get(KPI_ID, timeout=0.01),
                c.kpis.create_snapshot(KPI_ID, snapshot(), timeout=0.01),
            ):
                with pytest.raises(GtmhubError) as info:
                    await call
                errors.append(info.value)
    with pytest.raises(ClientStateError) as state:
        await c.kpis.get(KPI_ID)
    errors.append(state.value)
    kinds = [type(e) for e in errors]
    assert kinds == [
        ResponseDecodeError,
        DeadlineExceededError,
        UnknownOutcomeError,
        ClientStateError,
    ]
    assert all(TOKEN not in shown(e) for e in errors)


def test_an_api_error_reads_status_place_message_and_request_id() -> None:
    error = ApiError(404, "no such KPI", method="GET", url="https://h/api/x", request_id="r-1")
    assert str(error) == "HTTP 404 (GET https://h/api/x): no such KPI [request id r-1]"
    assert repr(error) == "ApiError(status=404, message='no such KPI')"
    assert error.args == (404, "no such KPI")
    # Errors cross process boundaries (multiprocessing, concurrent.futures) intact.
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.request_id) == (ApiError, str(error), "r-1")
    limited_copy = pickle.loads(pickle.dumps(RateLimitError(429, "x", retry_after=1.5)))
    assert (limited_copy.status, limited_copy.retry_after) == (429, 1.5)
    bare = NotFoundError(404, "gone")
    assert str(bare) == "HTTP 404: gone"
    assert repr(bare) == "NotFoundError(status=404, message='gone')"
    assert (bare.body, bare.method, bare.url, bare.request_id) == (None, "", "", None)
    limited = RateLimitError(429, "slow down", retry_after=2.5, method="GET", url="u")
    assert (limited.retry_after, limited.method, limited.status) == (2.5, "GET", 429)
    assert RateLimitError(429, "x").retry_after is None


def test_transport_errors_keep_the_place_and_the_request() -> None:
    error = TransportError("boom", method="PUT", url="https://h/api/y")
    assert (str(error), error.method, error.url) == ("boom", "PUT", "https://h/api/y")
    cause = ServerError(500, "oops")
    unknown = UnknownOutcomeError("maybe", method="POST", url="u", request=1, response_error=cause)
    assert (str(unknown), unknown.method, unknown.url) == ("maybe", "POST", "u")
    assert unknown.request == 1 and unknown.response_error is cause
    bare = UnknownOutcomeError("m")
    assert (bare.method, bare.url, bare.request, bare.response_error) == ("", "", None, None)
    plain = TransportError("t")
    assert (plain.method, plain.url, str(plain)) == ("", "", "t")
    assert GtmhubError().attempts == 0


def test_a_decode_error_shows_a_short_excerpt_of_the_body() -> None:
    error = ResponseDecodeError("bad KPI", body=b"{ \n  oops", method="GET", url="https://h/k")
    assert str(error) == "bad KPI (GET https://h/k); body: '{ oops'"
    assert (error.status, error.body_excerpt) == (200, "{ oops")
    assert str(ResponseDecodeError("bad", body=None, status=201)) == "bad; body: ''"
    assert ResponseDecodeError("bad", status=201).status == 201
    assert (error.method, error.url) == ("GET", "https://h/k")
    bare = ResponseDecodeError("bad")
    assert (bare.method, bare.url, bare.status, str(bare)) == ("", "", 200, "bad; body: ''")


def test_an_excerpt_squeezes_whitespace_and_cuts_long_bodies() -> None:
    assert excerpt(None) == ""
    assert excerpt(b"a\n\t b  c") == "a b c"
    assert excerpt("\xe9t\xe9") == "\xe9t\xe9"
    assert excerpt(b"\xff") == "\ufffd"
    assert excerpt("x" * 300) == "x" * 300
    assert excerpt("x" * 305) == "x" * 300 + "... (5 more characters)"
    assert excerpt("abcdef", limit=4) == "abcd... (2 more characters)"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitError),
        (300, UnexpectedRedirectError),
        (399, UnexpectedRedirectError),
        (400 - 101, ApiError),
        (405, ApiError),
        (499, ApiError),
        (500, ServerError),
        (599, ServerError),
    ],
)
def test_each_status_has_its_error_class(status: int, cls: type[ApiError]) -> None:
    assert error_for_status(status) is cls
