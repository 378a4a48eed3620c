"""Rules of gtmhub_async.converter that mutation testing found unchecked (tests/MUTATION.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from gtmhub_async import converter as conv_mod
from gtmhub_async.models import (
    UNSET,
    Aggregation,
    CreateKpiRequest,
    Kpi,
    KpiFormatting,
    KpiSnapshotRequest,
    TargetOperator,
    Unset,
    UpdateKpiRequest,
    WriteResult,
)

OWNER = "0123456789abcdef01234567"
GROUP = "89abcdef0123456789abcdef"


@pytest.fixture
def built() -> Any:
    """Build a converter inside the test, so that its builders run under a mutant."""
    return conv_mod._build()


# --- datetimes and dates ---------------------------------------------------------------


def test_naive_datetime_is_sent_as_utc_with_z(built: Any) -> None:
    kpi = Kpi(id="a", date_created=datetime(2024, 1, 2, 3, 4, 5))
    assert built.unstructure(kpi) == {
        "id": "a",
        "ownerIds": [],
        "groupIds": [],
        "dateCreated": "2024-01-02T03:04:05Z",
    }


def test_aware_datetime_keeps_its_offset(built: Any) -> None:
    plus2 = timezone(timedelta(hours=2))
    assert built.unstructure(datetime(2024, 1, 2, 3, 4, 5, tzinfo=plus2)) == (
        "2024-01-02T03:04:05+02:00"
    )
    assert built.unstructure(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"


def test_datetime_and_date_are_read_from_iso_strings(built: Any) -> None:
    assert built.structure("2024-01-02T03:04:05", datetime) == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert built.structure("2024-01-02T03:04:05+02:00", datetime) == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))
    )
    assert built.structure("2024-01-02", date) == date(2024, 1, 2)
    with pytest.raises(TypeError, match=r"^expected an ISO 8601 string, got int$"):
        built.structure(5, datetime)
    with pytest.raises(TypeError, match=r"^expected a YYYY-MM-DD string, got int$"):
        built.structure(5, date)


def test_snapshot_request_sends_its_day_as_iso_text(built: Any) -> None:
    body = KpiSnapshotRequest(group=date(2024, 1, 2), value=1.5, time_zone="UTC+2")
    assert built.unstructure(body) == {"group": "2024-01-02", "value": 1.5, "timeZone": "UTC+2"}
    assert (
        built.structure(
            {"group": "2024-01-02", "value": 1.5, "timeZone": "UTC+2"}, KpiSnapshotRequest
        )
        == body
    )


# --- id tuples and mappings ------------------------------------------------------------


def test_id_tuple_rules(built: Any) -> None:
    ids = tuple[str, ...]
    assert built.structure(["a", "b"], ids) == ("a", "b")
    assert built.structure(("a",), ids) == ("a",)
    assert built.structure(None, ids) == ()
    assert built.structure([1, "b"], ids) == ("1", "b")
    assert built.structure([1, 2], ids) == ("1", "2")
    with pytest.raises(TypeError, match=r"^expected a list of ids, got str$"):
        built.structure("ab", ids)
    with pytest.raises(TypeError, match=r"^expected a list of ids, got int$"):
        built.structure(5, ids)


def test_mapping_rules(built: Any) -> None:
    assert built.structure({"a": 1}, Mapping[str, Any]) == {"a": 1}
    with pytest.raises(TypeError, match=r"^expected a JSON object, got list$"):
        built.structure([1], Mapping[str, Any])


# --- open enums, simple optionals, UNSET unions ---------------------------------------


def test_open_enum_rules(built: Any) -> None:
    assert built.structure("sum", Aggregation | str) is Aggregation.SUM
    assert built.structure("median", Aggregation | str) == "median"
    assert built.structure(None, Aggregation | str | None) is None
    assert built.structure("avg", Aggregation | str | None) is Aggregation.AVG
    assert built.structure("median", Aggregation | str | None) == "median"
    assert built.structure("sum", Aggregation | str | Unset) is Aggregation.SUM
    assert built.structure("x", TargetOperator | str | Unset) == "x"
    with pytest.raises(TypeError, match=r"^expected a string for Aggregation, got None$"):
        built.structure(None, Aggregation | str)
    with pytest.raises(TypeError, match=r"^expected a string for TargetOperator, got 5$"):
        built.structure(5, TargetOperator | str | Unset)


def test_open_enum_may_come_after_str_in_the_union() -> None:
    # A fresh converter: cattrs caches hooks by type, and ``str | X == X | str``.
    built = conv_mod._build()
    assert built.structure("sum", str | Aggregation) is Aggregation.SUM
    assert built.structure("median", str | Aggregation) == "median"


def test_simple_optional_rules(built: Any) -> None:
    assert built.structure(None, str | None) is None
    assert built.structure("x", str | None) == "x"
    assert built.structure(None, date | None) is None
    assert built.structure("2024-01-02", date | None) == date(2024, 1, 2)
    assert built.structure(3, int | None) == 3
    with pytest.raises(TypeError, match=r"^expected a YYYY-MM-DD string, got int$"):
        built.structure(5, date | None)


def test_unset_union_rules(built: Any) -> None:
    assert built.structure("x", str | Unset) == "x"
    assert built.structure(None, str | Unset | None) is None
    assert built.structure("d", str | Unset | None) == "d"
    assert built.structure(["a"], tuple[str, ...] | Unset) == ("a",)
    with pytest.raises(TypeError, match=r"^expected a list of ids, got str$"):
        built.structure("a", tuple[str, ...] | Unset)


# --- the attrs structure factory -------------------------------------------------------


def test_create_request_is_read_from_camel_case_and_keeps_unknown_keys(built: Any) -> None:
    data = {
        "name": "n",
        "ownerIds": [OWNER],
        "aggregation": "sum",
        "targetOperator": "new_op",
        "description": "d",
        "groupIds": [GROUP],
        "formatting": {"prefix": "$"},
        "custom": {"a": 1},
    }
    got = built.structure(data, CreateKpiRequest)
    assert got == CreateKpiRequest(
        name="n",
        owner_ids=(OWNER,),
        aggregation=Aggregation.SUM,
        target_operator="new_op",
        description="d",
        group_ids=(GROUP,),
        formatting=KpiFormatting(prefix="$"),
        extra={"custom": {"a": 1}},
    )
    assert got.aggregation is Aggregation.SUM
    assert got.extra == {"custom": {"a": 1}}
    assert data == {  # the input is not changed
        "name": "n",
        "ownerIds": [OWNER],
        "aggregation": "sum",
        "targetOperator": "new_op",
        "description": "d",
        "groupIds": [GROUP],
        "formatting": {"prefix": "$"},
        "custom": {"a": 1},
    }


def test_create_request_without_unknown_keys_has_empty_extra(built: Any) -> None:
    got = built.structure({"name": "n"}, CreateKpiRequest)
    assert got == CreateKpiRequest(name="n")
    assert got.extra == {}


def test_a_wire_key_named_extra_is_an_unknown_field(built: Any) -> None:
    got = built.structure({"name": "n", "extra": 1, "other": [2]}, CreateKpiRequest)
    assert got.extra == {"extra": 1, "other": [2]}
    assert built.structure({"extra": "x"}, UpdateKpiRequest).extra == {"extra": "x"}


def test_update_request_is_read_field_by_field(built: Any) -> None:
    got = built.structure(
        {"description": None, "ownerIds": [OWNER], "targetOperator": "should_decrease"},
        UpdateKpiRequest,
    )
    assert got == UpdateKpiRequest(
        description=None, owner_ids=(OWNER,), target_operator=TargetOperator.SHOULD_DECREASE
    )
    assert got.name is UNSET
    assert got.extra == {}


def test_a_non_object_is_refused_with_the_model_name(built: Any) -> None:
    with pytest.raises(
        TypeError, match=r"^expected a JSON object for CreateKpiRequest, got list$"
    ):
        built.structure([], CreateKpiRequest)
    with pytest.raises(TypeError, match=r"^expected a JSON object for WriteResult, got str$"):
        built.structure("x", WriteResult)


def test_write_result_ignores_unknown_keys(built: Any) -> None:
    got = built.structure({"status": 201, "body": "VPX", "id": "x", "other": 1}, WriteResult)
    assert got == WriteResult(status=201, body=b"ab", id="x")
    assert built.unstructure(got) == {"status": 201, "body": "VPX", "id": "x"}


def test_a_bad_field_raises_the_plain_error(built: Any) -> None:
    # Detailed validation off: the field's own error, not a cattrs ClassValidationError.
    with pytest.raises(TypeError, match=r"^expected a list of ids, got int$"):
        built.structure({"name": "n", "ownerIds": 5}, CreateKpiRequest)
    with pytest.raises(KeyError, match=r"^'status'$"):
        built.structure({"body": "VPX"}, WriteResult)


# --- the attrs unstructure factory -----------------------------------------------------


def test_create_request_is_sent_in_camel_case_without_none_defaults(built: Any) -> None:
    body = CreateKpiRequest(name="n", owner_ids=(OWNER,), extra={"custom": 1, "name": "old"})
    assert built.unstructure(body) == {
        "custom": 1,
        "name": "n",
        "ownerIds": [OWNER],
        "aggregation": Aggregation.LAST,
        "targetOperator": TargetOperator.SHOULD_INCREASE,
        "groupIds": [],
    }


def test_formatting_is_sent_with_its_defaults(built: Any) -> None:
    body = CreateKpiRequest(name="n", formatting=KpiFormatting(prefix="$"), description="d")
    assert built.unstructure(body) == {
        "name": "n",
        "ownerIds": [],
        "aggregation": Aggregation.LAST,
        "targetOperator": TargetOperator.SHOULD_INCREASE,
        "formatting": {"prefix": "$", "suffix": "", "fractionSize": 0},
        "description": "d",
        "groupIds": [],
    }


def test_update_request_leaves_unset_out_and_sends_null(built: Any) -> None:
    assert built.unstructure(UpdateKpiRequest()) == {}
    assert built.unstructure(UpdateKpiRequest(description=None, formatting=None)) == {
        "description": None,
        "formatting": None,
    }
    assert built.unstructure(UpdateKpiRequest(group_ids=(GROUP,), extra={"x": [1]})) == {
        "x": [1],
        "groupIds": [GROUP],
    }


def test_unread_is_never_sent(built: Any) -> None:
    kpi = Kpi(id="a", name=None, unread={"bad": 1}, extra={"q": 2})
    assert built.unstructure(kpi) == {"q": 2, "id": "a", "ownerIds": [], "groupIds": []}


# --- module helpers --------------------------------------------------------------------


def test_structure_uses_the_hook_of_the_class(fresh_converter: Any) -> None:
    got = conv_mod.structure({"name": "n", "x": 1}, CreateKpiRequest)
    assert got == CreateKpiRequest(name="n", extra={"x": 1})
    assert conv_mod.structure(["a"], tuple[str, ...] | Unset) == ("a",)


def test_hooks_are_looked_up_once(fresh_converter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def cached(data: Any, cl: Any) -> Any:
        return ("cached", data)

    monkeypatch.setattr(conv_mod, "_HOOKS", {CreateKpiRequest: cached})
    assert conv_mod.structure_hook(CreateKpiRequest) is cached
    assert conv_mod.structure({"name": "n"}, CreateKpiRequest) == ("cached", {"name": "n"})
    hook = conv_mod.structure_hook(WriteResult)
    assert conv_mod._HOOKS[WriteResult] is hook
