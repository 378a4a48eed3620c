"""Evaluate the /v2/kpis ``filter``, ``sort`` and ``fields`` expressions on stored KPIs.

The filter is a subset of MongoDB's query language [C: Mongo-style JSON]:
equality, ``$eq $ne $gt $gte $lt $lte $in $nin $regex ($options) $exists $not``
on fields (dotted paths reach into objects; ``_id`` means ``id``) and
``$and $or $nor`` on expressions. As in MongoDB, a condition on an array field
matches when any element matches, and ``null`` matches a missing field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

__all__ = ["FilterError", "compile_filter", "parse_fields", "project", "sort_items"]

Doc = dict[str, Any]
Predicate = Callable[[Doc], bool]
_Test = Callable[[Any], bool]

_MISSING: Final = object()
_LOGICAL: Final = ("$and", "$or", "$nor")
_REGEX_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class FilterError(ValueError):
    """Raise for a filter, sort or projection the API would reject."""


def _field(name: str) -> list[str]:
    return ["id" if part == "_id" else part for part in name.split(".")]


def _get(doc: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    # Python says True == 1; MongoDB does not.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _eq(value: Any, target: Any) -> bool:
    if value is _MISSING:
        return target is None
    if isinstance(value, list) and not isinstance(target, list):
        return any(_equal(item, target) for item in value)
    return _equal(value, target)


def _compare(op: str) -> Callable[[Any], _Test]:
    def build(target: Any) -> _Test:
        if not (_is_number(target) or isinstance(target, str)):
            raise FilterError(f"{op} needs a number or a string, got {target!r}")

        def one(value: Any) -> bool:
            comparable = (_is_number(value) and _is_number(target)) or (
                isinstance(value, str) and isinstance(target, str)
            )
            if not comparable:
                return False
            if op == "$gt":
                return bool(value > target)
            if op == "$gte":
                return bool(value >= target)
            if op == "$lt":
                return bool(value < target)
            return bool(value <= target)

        def test(value: Any) -> bool:
            if isinstance(value, list):
                return any(one(item) for item in value)
            return one(value)

        return test

    return build


def _in(target: Any) -> _Test:
    if not isinstance(target, list):
        raise FilterError(f"$in needs an array, got {target!r}")
    return lambda value: any(_eq(value, t) for t in target)


def _regex(target: Any, options: Any) -> _Test:
    if not isinstance(target, str):
        raise FilterError(f"$regex needs a string, got {target!r}")
    if not isinstance(options, str) or any(ch not in _REGEX_FLAGS for ch in options):
        raise FilterError(f"$options must be made of the letters imsx, got {options!r}")
    flags = 0
    for ch in options:
        flags |= _REGEX_FLAGS[ch]
    try:
        pattern = re.compile(target, flags)
    except re.error as exc:
        raise FilterError(f"invalid $regex {target!r}: {exc}") from None

    def test(value: Any) -> bool:
        values = value if isinstance(value, list) else [value]
        return any(isinstance(v, str) and pattern.search(v) is not None for v in values)

    return test


def _not(test: _Test) -> _Test:
    return lambda value: not test(value)


def _present_and(test: _Test) -> _Test:
    return lambda value: value is not _MISSING and test(value)


def _equals(target: Any) -> _Test:
    return lambda value: _eq(value, target)


def _exists(target: Any) -> _Test:
    if not isinstance(target, bool):
        raise FilterError(f"$exists needs true or false, got {target!r}")
    return lambda value: (value is not _MISSING) == target


def _operator(op: str, target: Any, ops: dict[str, Any]) -> _Test:
    if op == "$eq":
        return _equals(target)
    if op == "$ne":
        return _not(_equals(target))
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _present_and(_compare(op)(target))
    if op == "$in":
        return _in(target)
    if op == "$nin":
        return _not(_in(target))
    if op == "$regex":
        return _regex(target, ops.get("$options", ""))
    if op == "$exists":
        return _exists(target)
    if op == "$not":
        if not isinstance(target, dict) or not _is_operator_dict(target):
            raise FilterError("$not needs an operator expression such as {'$gt': 1}")
        return _not(_operators(target))
    raise FilterError(f"unknown operator {op!r}")


def _operators(ops: dict[str, Any]) -> _Test:
    if "$options" in ops and "$regex" not in ops:
        raise FilterError("$options needs a $regex beside it")
    tests = [_operator(op, target, ops) for op, target in ops.items() if op != "$options"]
    return lambda value: all(test(value) for test in tests)


def _is_operator_dict(cond: dict[str, Any]) -> bool:
    keys = list(cond)
    if keys and all(k.startswith("$") for k in keys):
        return True
    if any(k.startswith("$") for k in keys):
        raise FilterError(f"cannot mix operators and fields in {cond!r}")
    return False


def _condition(name: str, cond: Any) -> Predicate:
    path = _field(name)
    if isinstance(cond, dict) and _is_operator_dict(cond):
        test = _operators(cond)
        return lambda doc: test(_get(doc, path))
    return lambda doc: _eq(_get(doc, path), cond)


def _all(parts: list[Predicate]) -> Predicate:
    return lambda doc: all(p(doc) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda doc: any(p(doc) for p in parts)


def compile_filter(expr: Any) -> Predicate:
    """Return a predicate for a decoded filter; raise FilterError for an invalid one."""
    if not isinstance(expr, dict):
        raise FilterError(f"the filter must be a JSON object, got {type(expr).__name__}")
    parts: list[Predicate] = []
    for key, cond in expr.items():
        if key in _LOGICAL:
            if not isinstance(cond, list) or not cond:
                raise FilterError(f"{key} needs a non-empty array of expressions")
            subs = [compile_filter(sub) for sub in cond]
            if key == "$and":
                parts.append(_all(subs))
            elif key == "$or":
                parts.append(_any(subs))
            else:
                parts.append(_not(_any(subs)))
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r}")
        else:
            parts.append(_condition(key, cond))
    return _all(parts)


def _sort_key(value: Any) -> tuple[int, Any]:
    # MongoDB's order of types: null < numbers < strings < objects < arrays < booleans.
    if value is _MISSING or value is None:
        return (0, 0)
    if _is_number(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        return (3, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    if isinstance(value, list):
        return (4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (5, bool(value))


def _key_of(path: list[str]) -> Callable[[Doc], tuple[int, Any]]:
    return lambda doc: _sort_key(_get(doc, path))


def sort_items(items: list[Doc], spec: str) -> list[Doc]:
    """Return ``items`` sorted by ``"a,-b"`` (``-`` descends), ties broken by id."""
    keys: list[tuple[list[str], bool]] = []
    for raw in spec.split(","):
        part = raw.strip()
        descending = part.startswith("-")
        name = part.lstrip("+-")
        if not name:
            raise FilterError(f"invalid sort {spec!r}: an empty field name")
        keys.append((_field(name), descending))
    result = sorted(items, key=lambda doc: str(doc.get("id", "")))
    # Stable sorts applied from the last key to the first give a multi-key sort.
    for path, descending in reversed(keys):
        result.sort(key=_key_of(path), reverse=descending)
    return result


def parse_fields(spec: str) -> list[list[str]]:
    """Return the field paths of a comma-separated projection; ``id`` is always included."""
    paths = [_field(part.strip()) for part in spec.split(",") if part.strip()]
    if ["id"] not in paths:
        paths.insert(0, ["id"])
    return paths


def project(doc: Doc, paths: list[list[str]]) -> Doc:
    """Return a copy of ``doc`` holding only the projected fields that it has."""
    result: Doc = {}
    for path in paths:
        value = _get(doc, path)
        if value is _MISSING:
            continue
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result
