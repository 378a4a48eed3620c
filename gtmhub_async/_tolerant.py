"""Generated structure functions for response models: inferred fields never fail a read.

For each response model (an attrs class with an ``unread`` field) one Python
function is generated from source, once, that reads every field straight from
the decoded dict. A field marked confirmed (``models.CONFIRMED``) is read
strictly: a wrong kind of value raises and the read fails. Any other field is
inferred [I]: a null where the type allows None reads as None; any other value
that does not read as the declared type gives the field its unknown value (None,
or its default when None is not allowed), keeps the raw value in ``unread`` and
writes a debug line. Readers never coerce: an object in an id list, or a number
where a string is meant, is unread, never ``str()``-ed.
"""

from __future__ import annotations

import enum
import logging
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

import attrs

__all__ = ["is_tolerant", "make_structure_fn", "read_date", "read_datetime"]

logger = logging.getLogger("gtmhub_async.models")

_MISSING: Final = object()
Reader = Callable[[Any], Any]


def is_tolerant(cl: Any) -> bool:
    """Return True for a response model: an attrs class with an ``unread`` field."""
    return attrs.has(cl) and any(f.name == "unread" for f in attrs.fields(cl))


def _read_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _read_int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _read_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def read_datetime(value: Any) -> datetime:
    """Read an ISO 8601 timestamp; a naive one is taken as UTC."""
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def read_date(value: Any) -> date:
    """Read a YYYY-MM-DD day."""
    if type(value) is not str:
        raise TypeError(f"expected a YYYY-MM-DD string, got {type(value).__name__}")
    # Tolerate a full timestamp where a day is meant: the day is its first 10 characters.
    return date.fromisoformat(value[:10])


def _read_str_tuple(value: Any) -> tuple[str, ...]:
    if type(value) is not list and not isinstance(value, list | tuple):
        raise TypeError("expected a list of strings")
    for item in value:
        if type(item) is not str and not isinstance(item, str):
            raise TypeError("expected a list of strings")
    return tuple(value)


def _open_enum(enum_type: type[enum.Enum]) -> Reader:
    by_value = {member.value: member for member in enum_type}

    def read(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected a string for {enum_type.__name__}")
        # An unknown value stays a plain str: a new server-side option must not break reads.
        return by_value.get(value, value)

    _LOOKUP[read] = by_value.get
    return read


#: An open enum's reader -> its value lookup, which the generated code calls for a str.
_LOOKUP: Final[dict[Reader, Callable[[Any, Any], Any]]] = {}


_SIMPLE: Final[dict[Any, Reader]] = {
    str: _read_str,
    int: _read_int,
    float: _read_float,
    datetime: read_datetime,
    date: read_date,
}


def _members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _reader(tp: Any, structure_of: Callable[[Any], Reader]) -> tuple[Reader, bool]:
    """Return a strict reader for a field type and whether the type allows None."""
    members = _members(tp)
    nullable = type(None) in members
    rest = [m for m in members if m is not type(None)]
    enums = [m for m in rest if isinstance(m, type) and issubclass(m, enum.Enum)]
    if enums and str in rest:
        return _open_enum(enums[0]), nullable
    inner = rest[0] if len(rest) == 1 else None
    if inner in _SIMPLE:
        return _SIMPLE[inner], nullable
    if inner == tuple[str, ...]:
        return _read_str_tuple, nullable
    if typing.get_origin(inner) is list:
        (item_type,) = typing.get_args(inner)
        item = structure_of(item_type)

        def read_list(value: Any) -> list[Any]:
            if type(value) is not list:
                raise TypeError(f"expected a JSON array, got {type(value).__name__}")
            return [item(v) for v in value]

        return read_list, nullable
    if inner is not None and attrs.has(inner):
        return structure_of(inner), nullable
    raise TypeError(f"no tolerant reader for {tp!r}")


def _note(unread: dict[str, Any] | None, model: str, key: str, value: Any) -> dict[str, Any]:
    logger.debug("%s.%s could not be read (%.80r); kept in .unread", model, key, value)
    if unread is None:
        unread = {}
    unread[key] = value
    return unread


def _assigns_only(cl: type[Any], fields: Any) -> bool:
    """Return True when ``cl.__init__`` only stores its arguments (no checks, no hooks)."""
    return (
        "__slots__" in cl.__dict__
        and not hasattr(cl, "__attrs_post_init__")
        and not hasattr(cl, "__attrs_pre_init__")
        and all(f.init and f.validator is None and f.converter is None for f in fields)
    )


#: The exact type a reader returns unchanged: the generated code skips the call for it.
_SAME: Final[dict[Reader, type]] = {_read_str: str, _read_int: int, _read_float: float}


def make_structure_fn(
    cl: type[Any], camel: Callable[[str], str], structure_of: Callable[[Any], Reader]
) -> Callable[[Any, Any], Any]:
    """Generate the structure function of one response model.

    A value whose exact type is the one its reader would return unchanged is
    taken without calling the reader; when ``__init__`` only assigns, the slots
    are set directly (the same stores, without the keyword-argument call).
    """
    every = attrs.fields(cl)
    fields = [f for f in every if f.name not in ("extra", "unread")]
    hints = typing.get_type_hints(cl)
    direct = _assigns_only(cl, every)
    names: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_note": _note,
        "_cl": cl,
        "_new": object.__new__,
        "_known": frozenset(camel(f.name) for f in fields),
    }
    name = cl.__name__
    lines = [
        "def structure(data, _=None):",
        "    if type(data) is not dict:",
        f"        raise TypeError('expected a JSON object for {name}, got '"
        " + type(data).__name__)",
        "    unread = None",
        "    missing = 0",
    ]
    args = []
    for i, field in enumerate(fields):
        key = camel(field.name)
        read, nullable = _reader(hints[field.name], structure_of)
        names[f"_r{i}"] = read
        has_default = field.default is not attrs.NOTHING
        if has_default:
            names[f"_d{i}"] = field.default
        unknown = None if nullable else field.default
        names[f"_u{i}"] = unknown
        lines += [f"    if {key!r} not in data:"]
        lines.append(
            f"        a{i} = _d{i}; missing += 1"
            if has_default
            else f"        raise KeyError({key!r})"
        )
        lines += ["    else:", f"        v = data[{key!r}]"]
        same = _SAME.get(read)
        lookup = _LOOKUP.get(read)
        if same is not None:
            names[f"_t{i}"] = same
            lines += [f"        if type(v) is _t{i}:", f"            a{i} = v", "        else:"]
            pad = "            "
        elif lookup is not None:
            names[f"_l{i}"] = lookup
            lines += [
                "        if type(v) is str:",
                f"            a{i} = _l{i}(v, v)",
                "        else:",
            ]
            pad = "            "
        else:
            pad = "        "
        call = f"_r{i}(v)"
        if read is read_datetime:
            # A "Z" time is always aware: fromisoformat alone reads it (a bad one raises).
            names["_fromiso"] = datetime.fromisoformat
            call = f"_fromiso(v) if type(v) is str and v[-1:] == 'Z' else {call}"
        if field.metadata.get("confirmed"):
            lines.append(f"{pad}a{i} = {call}")
        else:
            if nullable:
                lines += [f"{pad}if v is None:", f"{pad}    a{i} = None", f"{pad}else:"]
                pad += "    "
            lines += [
                f"{pad}try:",
                f"{pad}    a{i} = {call}",
                f"{pad}except (TypeError, ValueError, KeyError):",
                f"{pad}    a{i} = _u{i}",
                f"{pad}    unread = _note(unread, {name!r}, {key!r}, v)",
            ]
        args.append((field.name, f"a{i}"))
    n = len(fields)
    lines += [
        f"    if len(data) + missing == {n}:",
        "        extra = {}",
        "    elif missing:",
        "        extra = {k: v for k, v in data.items() if k not in _known}",
        "    else:",
        # Every known key is there: copying the dict and deleting them keeps the order
        # of the unknown ones and runs in C, at half the cost of a comprehension.
        "        extra = data.copy()",
    ]
    lines += [f"        del extra[{camel(f.name)!r}]" for f in fields]
    args += [("extra", "extra"), ("unread", "unread or {}")]
    if direct:
        lines.append("    obj = _new(_cl)")
        for j, (attr, value) in enumerate(args):
            names[f"_s{j}"] = cl.__dict__[attr].__set__  # the slot's own store
            lines.append(f"    _s{j}(obj, {value})")
        lines.append("    return obj")
    else:
        lines.append(f"    return _cl({', '.join(f'{a}={v}' for a, v in args)})")
    # The source is built above from the model's own fields only, never from data.
    exec("\n".join(lines), names)
    fn: Callable[[Any, Any], Any] = names["structure"]
    fn.__qualname__ = f"structure_{name}"
    return fn
