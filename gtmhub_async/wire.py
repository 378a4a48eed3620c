"""Pure functions: route + parameters -> HTTP request, HTTP answer -> model or error.

Nothing here does I/O or knows about aiohttp, so all of it is testable without an
event loop (the sans-I/O split of gidgethub).
"""

from __future__ import annotations

import enum
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import attrs
import orjson

from gtmhub_async import converter
from gtmhub_async.errors import (
    ApiError,
    RateLimitError,
    ResponseDecodeError,
    error_for_status,
    excerpt,
)
from gtmhub_async.models import WriteResult, check_object_id
from gtmhub_async.routes import Call, Route, any_json, no_content

__all__ = [
    "PreparedRequest",
    "build_request",
    "encode_query_value",
    "parse_response",
    "parse_retry_after",
]

RespT = TypeVar("RespT")


@attrs.frozen
class PreparedRequest:
    """Everything needed to send one call; ``path`` is relative to the API root."""

    route_name: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes | None
    idempotent: bool
    timeout: float | None = None

    @property
    def target(self) -> str:
        """Return the path with its query string, as it appears in logs and errors."""
        if not self.query:
            return self.path
        return f"{self.path}?{urlencode(self.query, safe=',')}"


@attrs.frozen
class _Slot:
    attr: str
    where: str
    wire: str
    encode: Callable[[Any], Any]


_PLANS: dict[type[Call], tuple[_Slot, ...]] = {}


def _plan(params_type: type[Call]) -> tuple[_Slot, ...]:
    """Return, once per parameter class, where each of its fields goes."""
    plan = _PLANS.get(params_type)
    if plan is not None:
        return plan
    slots = []
    for field in attrs.fields(params_type):
        where = field.metadata.get("in")
        if where is None:
            continue
        wire = field.metadata.get("wire") or converter.camel(field.name)
        encode = field.metadata.get("encode") or converter.unstructure
        slots.append(_Slot(field.name, where, wire, encode))
    plan = _PLANS[params_type] = tuple(slots)
    return plan


def encode_query_value(value: Any) -> str:
    """Encode one query value: ``true``/``false``, ``YYYY-MM-DD``, comma lists, compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return orjson.dumps(value).decode()
    if isinstance(value, Sequence):
        return ",".join(encode_query_value(item) for item in value)
    raise TypeError(f"cannot send a {type(value).__name__} as a query parameter")


def build_request(route: Route[..., Any], params: Call) -> PreparedRequest:
    """Place each parameter where its route says and encode the body as JSON."""
    path_values: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    body: Any = None
    json_keys: dict[str, Any] = {}
    for slot in _plan(type(params)):
        value = getattr(params, slot.attr)
        if slot.where == "path":
            # Ids are validated already; quoting too means no value can change the route.
            text = str(value)
            path_values[slot.wire] = (
                text if text.isascii() and text.isalnum() else quote(text, safe="")
            )
        elif value is None:
            continue
        elif slot.where == "query":
            query.append((slot.wire, encode_query_value(value)))
        elif slot.where == "query_map":
            query.extend((k, encode_query_value(v)) for k, v in value.items() if v is not None)
        elif slot.where == "body":
            body = slot.encode(value)
        else:
            json_keys[slot.wire] = slot.encode(value)
    if json_keys:
        body = json_keys
    # Positional: attrs' frozen __init__ costs less without keywords, on every call.
    return PreparedRequest(
        route.name,
        route.method,
        route.path.format_map(path_values) if path_values else route.path,
        tuple(query),
        None if body is None else orjson.dumps(body),
        route.idempotent,
        params.timeout,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a Retry-After header, in seconds or as an HTTP date, as seconds from now."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _error_message(data: Any, raw: bytes) -> str:
    if isinstance(data, dict):
        for key in ("message", "error_description", "error", "title", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return excerpt(value)
    return excerpt(raw) or "(empty body)"


def api_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    retry_after: float | None = None,
) -> ApiError:
    """Build the exception that stands for a non-2xx answer.

    ``retry_after``: the answer's Retry-After when the caller has parsed it already.
    """
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = excerpt(body)
    cls = error_for_status(status)
    message = _error_message(data, body)
    if 300 <= status < 400:
        message = f"unexpected redirect to {_header(headers, 'Location') or '?'}; not followed"
    kwargs: dict[str, Any] = {
        "body": data,
        "method": method,
        "url": url,
        "request_id": _header(headers, "X-Request-Id"),
    }
    if cls is RateLimitError:
        return RateLimitError(
            status,
            message,
            retry_after=(
                parse_retry_after(_header(headers, "Retry-After"))
                if retry_after is None
                else retry_after
            ),
            **kwargs,
        )
    return cls(status, message, **kwargs)


def parse_response(
    route: Route[..., RespT],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    url: str = "",
    retry_after: float | None = None,
) -> RespT:
    """Turn an answer into the route's model, or raise the matching GtmhubError.

    A 2xx answer to a write (POST, PUT, PATCH, DELETE) never raises: it is the
    model when its body reads as one, else a ``WriteResult`` (the body is documented
    only as "resource created response" / "ok" [C]; its shape is unknown [I]). A 2xx
    read whose body is not the model raises ``ResponseDecodeError``.
    """
    if not 200 <= status < 300:
        raise api_error(status, headers, body, method=method, url=url, retry_after=retry_after)
    if route.parse is no_content:
        return route.parse(None)
    if route.is_write:
        return _parse_write(route, status, body)
    if not body.strip():
        if route.parse is any_json:
            return route.parse(None)
        raise ResponseDecodeError(
            f"empty {status} body where {route.name} expects JSON",
            body=body,
            status=status,
            method=method,
            url=url,
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseDecodeError(
            f"the {status} body of {route.name} is not JSON ({exc})",
            body=body,
            status=status,
            method=method,
            url=url,
        ) from None
    try:
        return route.parse(data)
    except Exception as exc:  # cattrs, a validator or a hook: any of them means "wrong shape"
        reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ResponseDecodeError(
            f"the body of {route.name} does not have the expected shape: {reason}",
            body=body,
            status=status,
            method=method,
            url=url,
        ) from exc


def _id_in(data: Any) -> str | None:
    if isinstance(data, dict):
        data = data.get("id", data.get("_id"))
    if isinstance(data, str):
        try:
            return check_object_id(data.strip())
        except ValueError:
            return None
    return None


def _parse_write(route: Route[..., RespT], status: int, body: bytes) -> RespT:
    data: Any = None
    if route.parse is any_json and not body.strip():
        return route.parse(None)  # ``client.request``: an empty answer is None, as before
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            # Text such as ``ok`` or a bare id without quotes.
            data = body.decode("utf-8", "replace")
        else:
            try:
                return route.parse(data)
            except Exception:  # any failure means "not the model"; the write was applied
                pass
    result: Any = WriteResult(status=status, body=body, id=_id_in(data))
    return typing.cast(RespT, result)
