"""How the routes read an answer: a model, a list of models, a write's model, nothing, raw JSON.

Pure functions of the decoded JSON; ``wire.parse_response`` calls them and turns
their failures into ``ResponseDecodeError`` (a read) or a ``WriteResult`` (a write).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from gtmhub_async import converter
from gtmhub_async.models import WriteResult

__all__ = ["any_json", "model", "model_list", "no_content", "write_model"]

T = TypeVar("T")


def model(cl: type[T]) -> Callable[[Any], T]:
    """Return a parser that structures decoded JSON into ``cl``."""

    def parse(data: Any) -> T:
        return converter.structure(data, cl)  # one dict look-up, then the generated hook

    parse.__qualname__ = f"model({cl.__name__})"
    return parse


def model_list(cl: type[T]) -> Callable[[Any], list[T]]:
    """Return a parser for a JSON array of ``cl``, or an ``{"items": [...]}`` envelope [I]."""

    def parse(data: Any) -> list[T]:
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data = data["items"]
        if not isinstance(data, list):
            raise TypeError(f"expected a JSON array of {cl.__name__}, got {type(data).__name__}")
        return [converter.structure(item, cl) for item in data]

    parse.__qualname__ = f"model_list({cl.__name__})"
    return parse


def write_model(cl: type[T]) -> Callable[[Any], T | WriteResult]:
    """Return a parser for a write's answer: ``cl`` when the body reads as one.

    A 2xx write was applied whatever its body [C: documented only as "resource
    created response" / "ok"]; ``wire.parse_response`` returns a ``WriteResult``
    when the body is not ``cl`` (empty, ``{}``, a bare id, text, part of an object).
    """

    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cl)  # type: ignore[arg-type]  # every model is an attrs class
    known = frozenset(converter.camel(f.name) for f in fields if f.name not in ("extra", "unread"))

    def parse(data: Any) -> T | WriteResult:
        # ``{}`` or an object with none of the model's fields is not that model.
        if not isinstance(data, dict) or known.isdisjoint(data):
            raise TypeError(f"not a {cl.__name__}")
        return converter.structure(data, cl)

    parse.__qualname__ = f"write_model({cl.__name__})"
    return parse


def no_content(data: Any) -> None:
    """Ignore the body: the route answers with nothing worth reading."""
    return None


def any_json(data: Any) -> Any:
    """Return the decoded JSON as it is (None for an empty body)."""
    return data
