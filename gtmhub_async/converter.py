"""The one private cattrs converter: snake_case models to camelCase JSON and back.

Hooks are generated once per class (cattrs code generation), so structuring a
``Kpi`` costs a few attribute look-ups, not reflection. Rules:

- attribute ``owner_ids`` is ``ownerIds`` on the wire;
- keys a model does not name are kept in its ``extra`` mapping on the way in, and
  merged back into the body on the way out (so unknown fields survive an update);
- ``UNSET`` fields are left out; a ``None`` whose default is ``None`` is left out
  too (the API treats a missing optional field and null alike, and a request body
  should not invent nulls); ``None`` on an ``UNSET``-default field sends null;
- datetimes are always timezone-aware (a naive value from the server is UTC);
- an enum field accepts values the enum does not know and keeps them as ``str``;
- a response model (one with an ``unread`` field) is read by a generated function
  in which inferred fields never fail (see ``_tolerant``); ``unread`` is never sent.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter

from gtmhub_async._tolerant import is_tolerant, make_structure_fn, read_date, read_datetime
from gtmhub_async.models import UNSET, Unset

__all__ = ["camel", "converter", "structure", "structure_hook", "unstructure"]

T = TypeVar("T")

#: Key under which the unknown fields travel into a generated structure function.
_EXTRA_KEY = "\x00extra"


def camel(name: str) -> str:
    """Return the camelCase wire name of a snake_case attribute."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _structure_datetime(value: Any, _: Any) -> datetime:
    return read_datetime(value)


def _unstructure_datetime(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def _structure_date(value: Any, _: Any) -> date:
    return read_date(value)


def _structure_id_tuple(value: Any, _: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of ids, got {type(value).__name__}")
    ids = tuple(value)
    if all(type(item) is str for item in ids):
        return ids
    return tuple(str(item) for item in ids)


def _structure_mapping(value: Any, _: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _union_members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return ()


def _is_open_enum_union(tp: Any) -> bool:
    members = _union_members(tp)
    return str in members and any(
        isinstance(m, type) and issubclass(m, enum.Enum) and m is not Unset for m in members
    )


def _make_open_enum_hook(tp: Any) -> Callable[[Any, Any], Any]:
    members = _union_members(tp)
    enum_type = next(
        m for m in members if isinstance(m, type) and issubclass(m, enum.Enum) and m is not Unset
    )
    nullable = type(None) in members
    by_value = {member.value: member for member in enum_type}

    def structure(value: Any, _: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected a string for {enum_type.__name__}, got {value!r}")
        # An unknown value stays a plain str: a new server-side option must not break reads.
        return by_value.get(value, value)

    return structure


_SIMPLE = (str, int, float, bool, datetime, date)


def _is_simple_optional(tp: Any) -> bool:
    members = _union_members(tp)
    return (
        len(members) == 2
        and type(None) in members
        and any(m in _SIMPLE for m in members if m is not type(None))
    )


def _make_simple_optional_hook(conv: cattrs.Converter) -> Callable[[Any], Any]:
    # cattrs' generic Optional handling dispatches twice per field; a KPI has nine of them.
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner = next(m for m in _union_members(tp) if m is not type(None))
        hook = conv.get_structure_hook(inner)

        def structure(value: Any, _: Any) -> Any:
            return None if value is None else hook(value, inner)

        return structure

    return factory


def _is_unset_union(tp: Any) -> bool:
    return Unset in _union_members(tp) and not _is_open_enum_union(tp)


def _make_structure_factory(conv: cattrs.Converter) -> Callable[[type[Any]], Any]:
    def factory(cl: type[Any]) -> Callable[[Any, Any], Any]:
        fields = attrs.fields(cl)
        has_extra = any(f.name == "extra" for f in fields)
        overrides = {f.name: override(rename=camel(f.name)) for f in fields if f.name != "extra"}
        if has_extra:
            overrides["extra"] = override(rename=_EXTRA_KEY)
        base = make_dict_structure_fn(
            cl,
            conv,
            _cattrs_forbid_extra_keys=False,
            _cattrs_detailed_validation=False,
            **overrides,  # type: ignore[arg-type]  # cattrs types **kwargs as AttributeOverride only
        )
        known = frozenset(camel(f.name) for f in fields if f.name != "extra")
        name = cl.__name__

        def structure(data: Any, _: Any) -> Any:
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object for {name}, got {type(data).__name__}")
            if has_extra:
                extra = {k: v for k, v in data.items() if k not in known}
                if extra:
                    data = {**data, _EXTRA_KEY: extra}
            return base(data, cl)

        return structure

    return factory


def _make_unstructure_factory(conv: cattrs.Converter) -> Callable[[type[Any]], Any]:
    def factory(cl: type[Any]) -> Callable[[Any], dict[str, Any]]:
        fields = attrs.fields(cl)
        has_extra = any(f.name == "extra" for f in fields)
        overrides = {
            f.name: override(rename=camel(f.name))
            for f in fields
            if f.name not in ("extra", "unread")
        }
        if has_extra:
            overrides["extra"] = override(omit=True)
        if any(f.name == "unread" for f in fields):
            overrides["unread"] = override(omit=True)
        base = make_dict_unstructure_fn(cl, conv, **overrides)  # type: ignore[arg-type]  # as above
        droppable = frozenset(
            camel(f.name)
            for f in fields
            if f.name != "unread" and (f.default is None or f.default is UNSET)
        )
        # Only a None whose default is None is dropped; a None on an UNSET field sends null.
        none_droppable = frozenset(camel(f.name) for f in fields if f.default is None)

        def unstructure(obj: Any) -> dict[str, Any]:
            out = base(obj)
            if droppable:
                out = {
                    k: v
                    for k, v in out.items()
                    if not (v is UNSET or (v is None and k in none_droppable))
                }
            if has_extra and obj.extra:
                return {**obj.extra, **out}
            return out

        return unstructure

    return factory


def _build() -> cattrs.Converter:
    conv = make_converter()
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(datetime, _unstructure_datetime)
    conv.register_structure_hook(date, _structure_date)
    conv.register_unstructure_hook(date, date.isoformat)
    # Generic aliases are not classes, so these two are matched by equality.
    conv.register_structure_hook_func(lambda tp: tp == tuple[str, ...], _structure_id_tuple)
    conv.register_structure_hook_func(lambda tp: tp == Mapping[str, Any], _structure_mapping)
    conv.register_unstructure_hook(Unset, lambda value: value)
    conv.register_structure_hook_factory(_is_open_enum_union, _make_open_enum_hook)
    conv.register_structure_hook_factory(_is_simple_optional, _make_simple_optional_hook(conv))

    def structure_unset_union(value: Any, tp: Any) -> Any:
        rest = tuple(m for m in _union_members(tp) if m is not Unset)
        target: Any = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007 - built at run time
        return conv.structure(value, target)

    conv.register_structure_hook_func(_is_unset_union, structure_unset_union)
    conv.register_structure_hook_factory(attrs.has, _make_structure_factory(conv))
    tolerant: dict[Any, Callable[..., Any]] = {}

    def reader_of(tp: Any) -> Callable[[Any], Any]:
        if is_tolerant(tp):
            return tolerant_factory(tp)
        hook = conv.get_structure_hook(tp)
        return lambda value: hook(value, tp)

    def tolerant_factory(cl: Any) -> Callable[..., Any]:
        fn = tolerant.get(cl)
        if fn is None:
            fn = tolerant[cl] = make_structure_fn(cl, camel, reader_of)
        return fn

    # Registered last, so it is tried before the generic attrs factory above.
    conv.register_structure_hook_factory(is_tolerant, tolerant_factory)
    conv.register_unstructure_hook_factory(attrs.has, _make_unstructure_factory(conv))
    return conv


#: The SDK's private converter. Users never need it; tests and tools may.
converter: cattrs.Converter = _build()


#: Structure hooks by class, looked up once: cattrs' dispatch costs more than the hook.
_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}


def structure_hook(cl: type[T]) -> Callable[[Any, Any], T]:
    """Return the function that builds a ``cl`` from decoded JSON (``hook(data, cl)``)."""
    hook = _HOOKS.get(cl)
    if hook is None:
        hook = _HOOKS[cl] = converter.get_structure_hook(cl)
    return hook


def structure(data: Any, cl: type[T]) -> T:
    """Build a model of type ``cl`` from decoded JSON."""
    hook = _HOOKS.get(cl)
    if hook is None:
        hook = structure_hook(cl)
    result: T = hook(data, cl)
    return result


def unstructure(obj: Any) -> Any:
    """Turn a model into JSON-ready data with camelCase keys."""
    return converter.unstructure(obj)
