"""The generated structure functions' fast paths read exactly what the slow paths read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from gtmhub_async import Kpi
from gtmhub_async._tolerant import make_structure_fn
from gtmhub_async.converter import camel, structure, structure_hook
from gtmhub_async.models import Aggregation

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")

KPI_ID = "5be26318e5274a0000000000"


def _kpi(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": KPI_ID,
        "accountId": "acc",
        "name": "Revenue",
        "description": "d",
        "ownerIds": ["a", "b"],
        "aggregation": "last",
        "targetOperator": "should_increase",
        "formatting": {"prefix": "EUR ", "suffix": "", "fractionSize": 2},
        "groupIds": [],
        "insightId": "i",
        "dateCreated": "2024-03-11T08:15:42.123Z",
        "dateUpdated": "2026-11-02T23:59:01+02:00",
        "createdById": "c",
        "modifiedById": "m",
    }
    data.update(over)
    return data


def test_unknown_keys_keep_their_order_when_every_known_key_is_present() -> None:
    data = {"zeta": 1, **_kpi(), "alpha": 2, "mid": {"x": 1}}
    kpi = structure(data, Kpi)
    assert list(kpi.extra.items()) == [("zeta", 1), ("alpha", 2), ("mid", {"x": 1})]
    assert data["zeta"] == 1 and "id" in data  # the decoded dict itself is left alone


def test_unknown_keys_are_kept_when_some_known_keys_are_missing() -> None:
    data = {"id": KPI_ID, "later": True, "name": "n", "first": 0}
    kpi = structure(data, Kpi)
    assert list(kpi.extra.items()) == [("later", True), ("first", 0)]
    assert kpi.owner_ids == () and kpi.formatting is None


def test_no_unknown_keys_give_an_empty_extra() -> None:
    assert structure(_kpi(), Kpi).extra == {}


def test_z_and_offset_times_are_both_aware() -> None:
    kpi = structure(_kpi(), Kpi)
    assert kpi.date_created == datetime(2024, 3, 11, 8, 15, 42, 123000, tzinfo=UTC)
    assert kpi.date_updated == datetime(
        2026, 11, 2, 23, 59, 1, tzinfo=timezone(timedelta(hours=2))
    )
    naive = structure(_kpi(dateCreated="2024-03-11T08:15:42"), Kpi)
    assert naive.date_created == datetime(2024, 3, 11, 8, 15, 42, tzinfo=UTC)


def test_a_bad_z_time_in_an_inferred_field_is_unread_not_fatal() -> None:
    kpi = structure(_kpi(dateCreated="not a timeZ"), Kpi)
    assert kpi.date_created is None
    assert kpi.unread == {"dateCreated": "not a timeZ"}


def test_exact_types_and_subclasses_read_alike() -> None:
    class Text(str):
        pass

    kpi = structure(_kpi(name=Text("sub"), aggregation=Text("last")), Kpi)
    assert kpi.name == "sub"
    assert kpi.aggregation is Aggregation.LAST
    odd = structure(_kpi(description=3, aggregation=5, ownerIds=["a", 1]), Kpi)
    assert (odd.description, odd.aggregation, odd.owner_ids) == (None, None, ())
    assert odd.unread == {"description": 3, "aggregation": 5, "ownerIds": ["a", 1]}


def test_a_confirmed_field_of_the_wrong_type_still_fails() -> None:
    with pytest.raises(TypeError, match="expected a string, got int"):
        structure(_kpi(id=5), Kpi)


def test_the_hook_is_looked_up_once_and_is_the_converters() -> None:
    assert structure_hook(Kpi) is structure_hook(Kpi)
    assert structure_hook(Kpi)(_kpi(), Kpi) == structure(_kpi(), Kpi)


def _check_positive(inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


@attrs.frozen(kw_only=True)
class _Checked:
    count: int | None = attrs.field(default=None, validator=_check_positive)
    extra: dict[str, Any] = attrs.field(factory=dict)
    unread: dict[str, Any] = attrs.field(factory=dict)


def test_a_model_with_a_validator_is_built_through_its_init() -> None:
    read = make_structure_fn(_Checked, camel, lambda tp: lambda v: v)
    assert read({"count": 2}, _Checked).count == 2
    with pytest.raises(ValueError, match="count must not be negative"):
        read({"count": -1}, _Checked)
