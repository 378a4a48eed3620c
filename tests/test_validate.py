"""The SDK's small argument checks, each with its exact messages."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import attrs
import pytest

from gtmhub_async._validate import (
    check_date,
    check_finite,
    check_int,
    check_int_range,
    check_number,
    check_object_id,
    check_positive,
    check_timeout,
    is_int,
    is_number,
    valid_optional_date,
    valid_timeout,
)

OID = "5f3a1b2c4d5e6f7a8b9c0d1e"


def test_a_bool_is_neither_a_number_nor_an_int() -> None:
    assert [is_number(v) for v in (1, 1.5, True, "1", None)] == [True, True, False, False, False]
    assert [is_int(v) for v in (1, 1.5, False, "1")] == [True, False, False, False]


@pytest.mark.parametrize("value", [True, "3", None, [1]])
def test_check_number_refuses_what_is_not_a_number(value: object) -> None:
    with pytest.raises(TypeError) as info:
        check_number("x", value)
    assert str(info.value) == f"x must be a number, got {type(value).__name__}"
    with pytest.raises(TypeError, match=r"^x must be a number of seconds, got "):
        check_number("x", value, what="a number of seconds")


def test_check_number_returns_what_it_accepted() -> None:
    assert check_number("x", 0) == 0 and check_number("x", -2.5) == -2.5


def test_check_int_refuses_bools_and_floats() -> None:
    assert check_int("n", 7) == 7
    for value in (True, 1.0):
        with pytest.raises(TypeError) as info:
            check_int("n", value)
        assert str(info.value) == f"n must be an int, got {type(value).__name__}"


@pytest.mark.parametrize(
    ("value", "maximum", "message"),
    [
        (0, 5, "n must be between 1 and 5, got 0"),
        (6, 5, "n must be between 1 and 5, got 6"),
        (0, None, "n must be >= 1, got 0"),
    ],
)
def test_check_int_range_names_its_bounds(value: int, maximum: int | None, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_int_range("n", value, 1, maximum)
    assert str(info.value) == message


def test_check_int_range_accepts_both_ends() -> None:
    assert check_int_range("n", 1, 1, 5) == 1
    assert check_int_range("n", 5, 1, 5) == 5
    assert check_int_range("n", 10**9, 1) == 10**9
    with pytest.raises(TypeError, match=r"^n must be an int, got bool$"):
        check_int_range("n", True, 0, 5)


def test_check_finite() -> None:
    assert check_finite("v", -1) == -1
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError) as info:
            check_finite("v", bad)
        assert str(info.value) == f"v must be a finite number, got {bad!r}"


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "r must be positive, got 0"),
        (-1.0, ValueError, "r must be positive, got -1.0"),
        (math.inf, ValueError, "r must be finite, got inf"),
        (True, TypeError, "r must be a number, got bool"),
    ],
)
def test_check_positive_refuses(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        check_positive("r", value)
    assert str(info.value) == message


def test_check_positive_returns_a_float_and_can_ask_for_an_int() -> None:
    result = check_positive("r", 2)
    assert result == 2.0 and type(result) is float
    assert check_positive("r", 3, integer=True) == 3.0
    with pytest.raises(TypeError, match=r"^r must be an int, got float$"):
        check_positive("r", 2.5, integer=True)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "timeout must be positive, got 0"),
        (math.nan, ValueError, "timeout must be positive, got nan"),
        (False, TypeError, "timeout must be a number of seconds, got bool"),
        ("5", TypeError, "timeout must be a number of seconds, got str"),
    ],
)
def test_check_timeout(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        check_timeout(value)
    assert str(info.value) == message


def test_a_timeout_is_returned_as_given() -> None:
    assert check_timeout(0.25) == 0.25


def test_check_date_refuses_a_datetime() -> None:
    assert check_date("d", date(2024, 1, 2)) == date(2024, 1, 2)
    for bad in (datetime(2024, 1, 2), "2024-01-02"):
        with pytest.raises(TypeError) as info:
            check_date("d", bad)
        assert str(info.value) == f"d must be a datetime.date, got {type(bad).__name__}"


def test_check_object_id() -> None:
    assert check_object_id(OID.upper()) == OID.upper()
    with pytest.raises(ValueError, match=r"^kpi_id must be 24 hex digits, got 'abc'$"):
        check_object_id("abc", "kpi_id")
    with pytest.raises(TypeError, match=r"^id must be a str of 24 hex digits, got int$"):
        check_object_id(5)


@attrs.frozen
class _Fields:
    day: Any = attrs.field(default=None, validator=valid_optional_date)
    timeout: Any = attrs.field(default=None, validator=valid_timeout)


def test_the_attrs_validators_allow_none_and_check_the_rest() -> None:
    assert _Fields() == _Fields(None, None)
    assert _Fields(date(2024, 1, 1), 2).timeout == 2
    with pytest.raises(TypeError, match=r"^day must be a datetime.date, got datetime$"):
        _Fields(day=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match=r"^timeout must be positive, got -1$"):
        _Fields(timeout=-1)
