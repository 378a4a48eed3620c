"""Edge cases of the pure wire functions left open by tests/test_wire.py (mutation survivors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from gtmhub_async.errors import (
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    UnexpectedRedirectError,
    excerpt,
)
from gtmhub_async.routes import GET_KPI, GetKpi
from gtmhub_async.wire import api_error, build_request, parse_response, parse_retry_after

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # RFC 5322's "-0000" zone: a time without a known offset, read as UTC.
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        # An explicit offset is kept, not overwritten with UTC.
        ("Wed, 21 Oct 2015 09:28:45 +0200", 45.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
    ],
)
def test_an_http_date_is_read_in_its_own_zone(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"message": "m", "error_description": "e", "error": "x", "title": "t", "detail": "d"},
            "m",
        ),
        ({"error_description": "e", "error": "x", "title": "t", "detail": "d"}, "e"),
        ({"error": "x", "title": "t", "detail": "d"}, "x"),
        ({"title": "t", "detail": "d"}, "t"),
        ({"detail": "d"}, "d"),
        ({"message": "", "detail": "d"}, "d"),
        ({"message": 5, "title": "t"}, "t"),
        ({"other": "o"}, '{"other":"o"}'),
    ],
)
def test_the_error_message_is_the_first_useful_field(body: dict[str, Any], message: str) -> None:
    error = api_error(400, {}, orjson.dumps(body), method="GET", url="u")
    assert error.message == message
    assert error.body == body


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "3", "X-Request-Id": "r-9"},
        {"retry-after": "3", "x-request-id": "r-9"},
        {"RETRY-AFTER": "3", "X-REQUEST-ID": "r-9"},
    ],
    ids=["canonical", "lower", "upper"],
)
def test_headers_are_found_whatever_their_case_in_a_plain_mapping(
    headers: dict[str, str],
) -> None:
    error = api_error(429, headers, b"", method="GET", url="u")
    assert isinstance(error, RateLimitError)
    assert (error.retry_after, error.request_id) == (3.0, "r-9")
    missing = api_error(429, {"Other": "1"}, b"", method="GET", url="u")
    assert isinstance(missing, RateLimitError)
    assert (missing.retry_after, missing.request_id) == (None, None)


def test_a_body_that_is_not_json_is_kept_as_a_short_excerpt() -> None:
    error = api_error(502, {}, b"<html>\n  Bad   gateway</html>", method="GET", url="u")
    assert error.body == "<html> Bad gateway</html>"
    assert error.message == "<html> Bad gateway</html>"


@pytest.mark.parametrize("status", [300, 301, 399])
def test_every_3xx_is_a_redirect_even_without_a_location(status: int) -> None:
    error = api_error(status, {}, b"", method="GET", url="u")
    assert type(error) is UnexpectedRedirectError
    assert error.message == "unexpected redirect to ?; not followed"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("../a b?x#y", "/v1/kpis/..%2Fa%20b%3Fx%23y"),
        ("caf\xe9", "/v1/kpis/caf%C3%A9"),
        ("Ab12", "/v1/kpis/Ab12"),
    ],
)
def test_no_path_value_can_change_the_route(value: str, path: str) -> None:
    # The route's validator already refuses such ids; this is the second line of defence.
    params = GetKpi("5e8c27e3dcdddaa4addbdee8")
    object.__setattr__(params, "kpi_id", value)
    assert build_request(GET_KPI, params).path == path


def test_an_answer_parsed_without_a_place_names_none() -> None:
    with pytest.raises(NotFoundError) as missing:
        parse_response(GET_KPI, 404, {}, b"")
    assert str(missing.value) == "HTTP 404: (empty body)"
    assert (missing.value.method, missing.value.url) == ("", "")
    with pytest.raises(ResponseDecodeError) as bad:
        parse_response(GET_KPI, 200, {}, b"")
    assert str(bad.value) == "empty 200 body where kpis.get expects JSON; body: ''"


def test_a_300_is_not_a_success() -> None:
    with pytest.raises(UnexpectedRedirectError):
        parse_response(GET_KPI, 300, {}, b'{"id": "5e8c27e3dcdddaa4addbdee8"}')


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [(b" \n ", ""), (b"{ nope", "{ nope"), (b"[ 1,\n 2 ]", "[ 1, 2 ]")],
    ids=["empty", "not-json", "wrong-shape"],
)
def test_a_decode_error_keeps_the_status_and_the_body(body: bytes, excerpt: str) -> None:
    with pytest.raises(ResponseDecodeError) as info:
        parse_response(GET_KPI, 201, {}, body)
    assert info.value.status == 201
    assert info.value.body_excerpt == excerpt
    assert str(info.value).endswith(f"; body: {excerpt!r}")


def test_a_prepared_request_names_its_route() -> None:
    prepared = build_request(GET_KPI, GetKpi("5e8c27e3dcdddaa4addbdee8"))
    assert prepared.route_name == "kpis.get"


def test_an_api_error_reuses_a_retry_after_its_caller_parsed_or_reads_the_header() -> None:
    headers = {"Retry-After": "9"}
    given = api_error(429, headers, b"", method="GET", url="u", retry_after=2.0)
    read = api_error(429, headers, b"", method="GET", url="u")
    assert type(given) is type(read) is RateLimitError
    assert (given.retry_after, read.retry_after) == (2.0, 9.0)


@pytest.mark.parametrize(
    "body", [b"  ", b"<html>hello</html>", b"[1, 2]"], ids=["empty", "not-json", "wrong-shape"]
)
def test_a_decode_error_keeps_the_body_status_method_and_url(body: bytes) -> None:
    url = "https://x/api/v1/kpis/1"
    with pytest.raises(ResponseDecodeError) as info:
        parse_response(GET_KPI, 203, {}, body, method="GET", url=url)
    error = info.value
    kept = excerpt(body)
    assert kept == body.decode().strip()
    assert (error.body_excerpt, error.status, error.method, error.url) == (kept, 203, "GET", url)
    assert str(error).endswith(f"(GET {url}); body: {kept!r}")
