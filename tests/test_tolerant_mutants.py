"""Reading rules of gtmhub_async._tolerant that mutation testing found unchecked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from gtmhub_async import converter
from gtmhub_async._tolerant import make_structure_fn
from gtmhub_async.converter import camel
from gtmhub_async.models import Kpi, KpiPage, KpiSnapshot


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
