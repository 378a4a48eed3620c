"""Check request values the way the real API is expected to, raising ``Reject`` (HTTP 400).

The real API's validation messages are not published; the wording here is the
fake's own [I]. What is rejected follows FINDINGS.md: 24-hex-digit ids, ``YYYY-MM-DD``
dates, the known aggregations, target operators and formattings, finite numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import orjson

__all__ = [
    "AGGREGATIONS",
    "FORMATTINGS",
    "SERVER_FIELDS",
    "TARGET_OPERATORS",
    "VIRTUAL_GROUPS",
    "Reject",
    "boolean",
    "day",
    "id_csv",
    "json_body",
    "kpi_changes",
    "object_id",
    "query_int",
    "snapshot_body",
    "virtual_group_body",
]

AGGREGATIONS: Final = ("last", "sum", "avg")
TARGET_OPERATORS: Final = ("should_increase", "should_decrease")
FORMATTINGS: Final = ("mentionsMarkup", "plainText")
VIRTUAL_GROUPS: Final = ("myKpis", "ungrouped")
#: Fields the server owns: a client cannot set them on create or update [I].
SERVER_FIELDS: Final = frozenset(
    {"id", "accountId", "dateCreated", "dateUpdated", "createdById", "modifiedById"}
)

_OBJECT_ID: Final = re.compile(r"[0-9a-fA-F]{24}\Z")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_INT: Final = re.compile(r"-?\d{1,9}\Z")
_ID_LIST_FIELDS: Final = ("ownerIds", "groupIds")


class Reject(Exception):
    """Signal an error answer: an HTTP status, a message and extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _bad(message: str) -> Reject:
    return Reject(400, message)


def object_id(value: object, what: str) -> str:
    """Return ``value`` if it is a 24-hex-digit object id, else reject it."""
    if not isinstance(value, str) or not _OBJECT_ID.match(value):
        raise _bad(f"{what} must be an id of 24 hex digits, got {_show(value)}")
    return value


def id_csv(text: str, what: str) -> list[str]:
    """Return the ids of a comma-separated query value, rejecting any that is not an id."""
    return [object_id(part.strip(), f"each of {what}") for part in text.split(",") if part.strip()]


def _id_list(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list of ids, got {_show(value)}")
    return [object_id(item, f"each of {what}") for item in value]


def day(value: object, what: str) -> str:
    """Return ``value`` if it is a real date written ``YYYY-MM-DD``, else reject it."""
    if isinstance(value, str) and _DAY.match(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise _bad(f"{what} must be a date formatted YYYY-MM-DD, got {_show(value)}")


def boolean(text: str, what: str) -> bool:
    """Return the value of a ``true``/``false`` query parameter, else reject it."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise _bad(f"{what} must be true or false, got {_show(text)}")
    return lowered == "true"


def query_int(text: str, what: str, low: int, high: int | None = None) -> int:
    """Return an integer query parameter within ``low..high``, else reject it."""
    if not _INT.match(text):
        raise _bad(f"{what} must be an integer, got {_show(text)}")
    value = int(text)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise _bad(f"{what} must be {bounds}, got {value}")
    return value


def json_body(raw: bytes) -> Any:
    """Return the decoded JSON body, rejecting a missing or malformed one."""
    if not raw.strip():
        raise _bad("the request body is empty; a JSON body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"the request body is not valid JSON: {exc}") from None


def _one_of(value: object, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _bad(f"{what} must be one of {', '.join(allowed)}; got {_show(value)}")
    assert isinstance(value, str)
    return value


def _optional_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad(f"{what} must be a string or null, got {_show(value)}")
    return value


def _formatting(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"formatting must be an object, got {_show(value)}")
    result: dict[str, Any] = {"prefix": "", "suffix": "", "fractionSize": 0, **value}
    for key in ("prefix", "suffix"):
        if not isinstance(result[key], str):
            raise _bad(f"formatting.{key} must be a string, got {_show(result[key])}")
    size = result["fractionSize"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 20:
        raise _bad(f"formatting.fractionSize must be an integer from 0 to 20, got {_show(size)}")
    return result


def kpi_changes(body: object, *, create: bool) -> dict[str, Any]:
    """Return the validated KPI fields of a create or update body; unknown fields are kept.

    Server-owned fields (``id``, ``dateCreated``...) are dropped silently [I].
    """
    if not isinstance(body, dict):
        raise _bad(f"the KPI body must be a JSON object, got {_show(body)}")
    changes = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
    if create or "name" in changes:
        name = changes.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad("name is required and must be a non-empty string")
    for key in _ID_LIST_FIELDS:
        if key in changes:
            changes[key] = _id_list(changes[key], key)
    if "aggregation" in changes:
        _one_of(changes["aggregation"], "aggregation", AGGREGATIONS)
    if "targetOperator" in changes:
        _one_of(changes["targetOperator"], "targetOperator", TARGET_OPERATORS)
    if "formatting" in changes:
        changes["formatting"] = _formatting(changes["formatting"])
    if "description" in changes:
        _optional_str(changes["description"], "description")
    if changes.get("insightId") is not None:
        object_id(changes["insightId"], "insightId")
    return changes


def snapshot_body(body: object) -> dict[str, Any]:
    """Return a validated snapshot body: ``group`` date, finite ``value``, optional strings."""
    if not isinstance(body, dict):
        raise _bad(f"the snapshot body must be a JSON object, got {_show(body)}")
    if "group" not in body:
        raise _bad("group is required: the date of the value, formatted YYYY-MM-DD")
    day(body["group"], "group")
    value = body.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"value is required and must be a number, got {_show(value)}")
    if not math.isfinite(value):
        raise _bad(f"value must be a finite number, got {value!r}")
    _optional_str(body.get("timeZone"), "timeZone")
    _optional_str(body.get("description"), "description")
    return {k: v for k, v in body.items() if k not in SERVER_FIELDS and k != "kpiId"}


def virtual_group_body(body: object) -> tuple[str, bool]:
    """Return the ``virtualGroup`` and ``favorite`` of a favourite body [I: shape inferred]."""
    if not isinstance(body, dict):
        raise _bad(f"the body must be a JSON object, got {_show(body)}")
    group = _one_of(body.get("virtualGroup"), "virtualGroup", VIRTUAL_GROUPS)
    favorite = body.get("favorite")
    if not isinstance(favorite, bool):
        raise _bad(f"favorite is required and must be true or false, got {_show(favorite)}")
    return group, favorite


def _show(value: object) -> str:
    text = orjson.dumps(value).decode() if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: object) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True
