"""How the routes read an answer (gtmhub_async._answers), on parsers built inside each test.

The routes build their parsers when ``routes`` is imported; these tests build their own, so
that mutation testing sees the builders run (see tests/MUTATION.md).
"""

from __future__ import annotations

import pytest

from gtmhub_async import converter
from gtmhub_async._answers import model, model_list, write_model
from gtmhub_async.models import Kpi, KpiSnapshot

# Built in each test: mutation testing then measures the converter's builders (conftest).
pytestmark = pytest.mark.usefixtures("fresh_converter")

KPI = {"id": "a", "name": "A"}


def test_a_model_parser_structures_the_answer_and_names_itself() -> None:
    parse = model(Kpi)
    assert parse(KPI) == converter.structure(KPI, Kpi)
    assert parse(KPI).name == "A"
    assert parse.__qualname__ == "model(Kpi)"


def test_a_list_parser_reads_an_array_or_an_items_envelope() -> None:
    parse = model_list(Kpi)
    expected = [converter.structure(KPI, Kpi)]
    assert parse([KPI]) == expected
    assert parse({"items": [KPI], "totalCount": 1}) == expected
    assert parse.__qualname__ == "model_list(Kpi)"


@pytest.mark.parametrize(
    ("data", "kind"), [({"items": "x"}, "dict"), ({"kpis": [KPI]}, "dict"), ("x", "str")]
)
def test_a_list_parser_refuses_anything_but_an_array(data: object, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"^expected a JSON array of Kpi, got {kind}$"):
        model_list(Kpi)(data)


def test_a_write_parser_reads_a_body_with_one_of_the_model_fields() -> None:
    parse = write_model(KpiSnapshot)
    assert parse({"value": 1.5}) == converter.structure({"value": 1.5}, KpiSnapshot)
    read = parse({"value": 1.5})
    assert isinstance(read, KpiSnapshot) and read.value == 1.5
    assert parse.__qualname__ == "write_model(KpiSnapshot)"


@pytest.mark.parametrize("data", [{}, {"other": 1}, {"extra": {}}, {"unread": {}}, "id", None])
def test_a_write_parser_refuses_a_body_that_is_not_the_model(data: object) -> None:
    with pytest.raises(TypeError, match=r"^not a KpiSnapshot$"):
        write_model(KpiSnapshot)(data)
