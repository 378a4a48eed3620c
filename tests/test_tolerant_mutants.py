"""Reading rules of gtmhub_async._tolerant that mutation testing found unchecked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import attrs
import pytest

from gtmhub_async import converter
from gtmhub_async._tolerant import make_structure_fn
from gtmhub_async.converter import camel
from gtmhub_async.models import Kpi, KpiFormatting, KpiPage, KpiSnapshot

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")


def test_a_whole_number_in_a_number_field_reads_as_a_float() -> None:
    snapshot = converter.structure({"value": 5}, KpiSnapshot)
    assert snapshot.value == 5.0
    assert type(snapshot.value) is float
    assert snapshot.unread == {}


@pytest.mark.parametrize("odd", [True, "5", [5], {"v": 5}])
def test_a_number_field_never_coerces_another_kind_of_value(odd: object) -> None:
    snapshot = converter.structure({"value": odd}, KpiSnapshot)
    assert snapshot.value is None
    assert snapshot.unread == {"value": odd}


@pytest.mark.parametrize("odd", [5, ["sum"], {"v": "sum"}])
def test_an_enum_field_with_something_other_than_a_string_is_unread(odd: object) -> None:
    kpi = converter.structure({"id": "a", "aggregation": odd}, Kpi)
    assert kpi.aggregation is None
    assert kpi.unread == {"aggregation": odd}


def test_a_count_that_is_not_a_whole_number_is_unread() -> None:
    page = converter.structure({"items": [], "totalCount": 2.5}, KpiPage)
    assert page.total_count is None
    assert page.unread == {"totalCount": 2.5}


def test_an_unread_field_is_logged_with_its_model_key_and_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gtmhub_async.models")
    converter.structure({"value": "x" * 100}, KpiSnapshot)
    (record,) = caplog.records
    assert record.getMessage() == (
        f"KpiSnapshot.value could not be read ({('x' * 100)!r:.80}); kept in .unread"
    )


# The structure functions are built once per model and cached: these tests build their own,
# so that the build (``make_structure_fn``, ``_reader``) runs inside each test.


def build(cl: type[Any]) -> Callable[[Any, Any], Any]:
    def structure_of(tp: Any) -> Callable[[Any], Any]:
        return lambda value: converter.structure(value, tp)

    return make_structure_fn(cl, camel, structure_of)


def test_a_field_of_two_value_types_has_no_tolerant_reader() -> None:
    @attrs.frozen(kw_only=True)
    class Odd:
        size: int | str = 0
        unread: dict[str, Any] = attrs.field(factory=dict)

    with pytest.raises(TypeError, match=r"^no tolerant reader for int \| str$"):
        build(Odd)


def test_a_list_of_models_is_read_item_by_item_and_a_non_list_is_refused() -> None:
    structure = build(KpiPage)
    page = structure({"items": [{"id": "a", "name": "A"}], "totalCount": 1}, KpiPage)
    assert page.items == [converter.structure({"id": "a", "name": "A"}, Kpi)]
    assert page.total_count == 1
    # ``items`` is confirmed [C]: a wrong kind of value fails the read, with what it was.
    with pytest.raises(TypeError, match=r"^expected a JSON array, got int$"):
        structure({"items": 5}, KpiPage)


def test_a_field_of_a_type_no_reader_knows_is_refused() -> None:
    @attrs.frozen(kw_only=True)
    class Odd:
        blob: bytes = b""
        unread: dict[str, Any] = attrs.field(factory=dict)

    with pytest.raises(TypeError, match=r"^no tolerant reader for <class 'bytes'>$"):
        build(Odd)


def test_a_model_with_init_hooks_is_built_through_its_init() -> None:
    calls: list[str] = []

    @attrs.frozen(kw_only=True)
    class WithPost:
        size: int | None = None
        extra: dict[str, Any] = attrs.field(factory=dict)
        unread: dict[str, Any] = attrs.field(factory=dict)

        def __attrs_post_init__(self) -> None:
            calls.append("post")

    @attrs.frozen(kw_only=True)
    class WithPre:
        size: int | None = None
        extra: dict[str, Any] = attrs.field(factory=dict)
        unread: dict[str, Any] = attrs.field(factory=dict)

        def __attrs_pre_init__(self) -> None:
            calls.append("pre")

    assert build(WithPost)({"size": 1}, WithPost).size == 1
    assert build(WithPre)({"size": 2}, WithPre).size == 2
    assert calls == ["post", "pre"]


def test_a_model_without_slots_is_built() -> None:
    @attrs.define(kw_only=True, slots=False)
    class Plain:
        size: int | None = None
        extra: dict[str, Any] = attrs.field(factory=dict)
        unread: dict[str, Any] = attrs.field(factory=dict)

    assert build(Plain)({"size": 3}, Plain).size == 3


def test_validators_and_converters_of_a_model_run() -> None:
    checked: list[object] = []

    def check(inst: Any, attribute: Any, value: Any) -> None:
        checked.append(value)

    def same(value: Any) -> Any:
        return value

    def mark(value: dict[str, Any]) -> dict[str, Any]:
        return {**value, "seen": 1}

    @attrs.frozen(kw_only=True)
    class Checked:
        size: int | None = attrs.field(default=None, validator=check)
        extra: dict[str, Any] = attrs.field(factory=dict, validator=check)
        unread: dict[str, Any] = attrs.field(factory=dict, validator=check)

    @attrs.frozen(kw_only=True)
    class Converted:
        size: int | None = attrs.field(default=None, converter=same)
        extra: dict[str, Any] = attrs.field(factory=dict, converter=same)
        unread: dict[str, Any] = attrs.field(factory=dict, converter=mark)

    assert build(Checked)({"size": 4}, Checked).size == 4
    assert checked == [4, {}, {}]
    assert build(Converted)({"size": 5}, Converted).unread == {"seen": 1}


def test_a_non_object_is_refused_with_the_model_name() -> None:
    structure = build(KpiSnapshot)
    assert structure.__qualname__ == "structure_KpiSnapshot"
    with pytest.raises(TypeError, match=r"^expected a JSON object for KpiSnapshot, got list$"):
        structure([], KpiSnapshot)


def test_unknown_keys_are_kept_when_some_known_ones_are_missing() -> None:
    structure = build(KpiSnapshot)
    snapshot = structure({"value": 1.5, "odd": 2, "kpiId": "k"}, KpiSnapshot)
    assert snapshot.extra == {"odd": 2}
    assert (snapshot.value, snapshot.kpi_id, snapshot.id) == (1.5, "k", None)


def test_a_missing_field_takes_its_default_and_a_missing_required_one_fails() -> None:
    formatting = build(KpiFormatting)({}, KpiFormatting)
    assert (formatting.prefix, formatting.suffix, formatting.fraction_size) == ("", "", 0)
    with pytest.raises(KeyError, match=r"^'id'$"):
        build(Kpi)({}, Kpi)


def test_a_confirmed_field_of_the_wrong_kind_fails_the_read() -> None:
    with pytest.raises(TypeError, match=r"^expected a string, got int$"):
        build(Kpi)({"id": 5}, Kpi)


def test_a_utc_time_reads_as_an_aware_datetime_and_a_day_stays_a_day() -> None:
    data = {"group": "2024-01-01T00:00:00Z", "dateCreated": "2024-01-02T03:04:05Z"}
    snapshot = build(KpiSnapshot)(data, KpiSnapshot)
    assert type(snapshot.group) is date and snapshot.group == date(2024, 1, 1)
    assert snapshot.date_created == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert snapshot.unread == {}
