"""Small checks of arguments, written once for the whole SDK.

Each ``check_*`` returns the value it accepted, or raises TypeError (wrong kind) or
ValueError (right kind, wrong value) with a message naming the argument. ``valid_*``
are the same checks as attrs validators. The fake server (``gtmhub_async.testing``)
keeps its own checks on purpose: it is an independent oracle of the API.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, TypeGuard

import attrs

__all__ = [
    "check_date",
    "check_finite",
    "check_int",
    "check_int_range",
    "check_number",
    "check_object_id",
    "check_positive",
    "check_timeout",
    "is_int",
    "is_number",
    "valid_date",
    "valid_object_id",
    "valid_optional_date",
    "valid_timeout",
]

_OBJECT_ID = re.compile(r"[0-9a-f]{24}\Z", re.IGNORECASE)


def is_number(value: object) -> TypeGuard[int | float]:
    """Tell whether ``value`` is an int or a float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> TypeGuard[int]:
    """Tell whether ``value`` is an int, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_number(name: str, value: object, *, what: str = "a number") -> float:
    """Return ``value`` if it is a number (not a bool); raise TypeError naming ``what``."""
    if not is_number(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int (not a bool); raise TypeError."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def check_int_range(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int from ``minimum`` to ``maximum`` (None: no maximum)."""
    check_int(name, value)
    assert isinstance(value, int)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_finite(name: str, value: object) -> float:
    """Return ``value`` if it is a finite number (not a bool)."""
    number = check_number(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_positive(name: str, value: object, *, integer: bool = False) -> float:
    """Return ``value`` as a float if it is finite and positive (an int when ``integer``)."""
    number = check_number(name, value)
    if integer:
        check_int(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(number)


def check_timeout(value: object) -> float:
    """Return a time budget ``timeout`` in seconds if it is a positive number."""
    number = check_number("timeout", value, what="a number of seconds")
    if not number > 0:
        raise ValueError(f"timeout must be positive, got {value!r}")
    return number


def check_date(name: str, value: object) -> date:
    """Return ``value`` if it is a ``datetime.date`` and not a ``datetime``."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime.date, got {type(value).__name__}")
    return value


def check_object_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a 24-hex-digit object id; raise ValueError or TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str of 24 hex digits, got {type(value).__name__}")
    if not _OBJECT_ID.match(value):
        raise ValueError(f"{what} must be 24 hex digits, got {value!r}")
    return value


def valid_object_id(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Check, as an attrs validator, that a field holds a 24-hex-digit id."""
    check_object_id(value, attribute.name)


def valid_date(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Check, as an attrs validator, that a field holds a date (not a datetime)."""
    check_date(attribute.name, value)


def valid_optional_date(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Check, as an attrs validator, that a field holds a date (not a datetime) or None."""
    if value is not None:
        check_date(attribute.name, value)


def valid_timeout(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Check, as an attrs validator, that a per-call timeout is None or positive seconds."""
    if value is not None:
        check_timeout(value)
