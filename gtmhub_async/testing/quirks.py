"""Quirks: the real API's behaviours, as ``FakeGtmhub`` options, so tests can reproduce them.

Each option stands for something FINDINGS.md says a real server may do. The fake
checks them with its own code (it never imports the SDK's route table or models),
so it stays an independent oracle.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import orjson

__all__ = ["PAGE_PARAMS", "Quirks", "WRITE_REPLIES", "ZONE_FORMS"]

#: Which query parameter sets the page size of /v2/kpis ("none": it is ignored).
PAGE_PARAMS: Final = ("take", "limit", "none")
#: What a 2xx write answers: its object ("normal"), no body, ``{}``, a bare id, or text.
WRITE_REPLIES: Final = ("normal", "empty", "{}", "id", "text")
#: Time-zone forms: ``UTC``/``UTC±H``/``UTC±HH:MM`` [C for UTC±H], and IANA names [I].
ZONE_FORMS: Final = frozenset({"utc", "iana"})

_UTC: Final = re.compile(r"UTC(?:[+-](?:1[0-4]|0?\d)(?::[0-5]\d)?)?\Z")


def _cap(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive int or None, got {value!r}")


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}"
            )

    return check


def _forms(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, frozenset) or not value <= ZONE_FORMS:
        raise ValueError(f"time_zone_forms must be None or a frozenset of {sorted(ZONE_FORMS)}")


def _jsonable(inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    orjson.dumps(dict(value))


@attrs.frozen(kw_only=True)
class Quirks:
    """How the fake departs from the tidy defaults, as a real server may [see FINDINGS.md].

    - ``page_cap``: serve at most this many KPIs per page, whatever was asked
      (a page shorter than asked is then not the last one);
    - ``page_param``: the parameter that sets the page size: ``take``, ``limit``,
      or ``none`` (the default size of 100 is served whatever is sent);
    - ``ignore_skip``: every page starts at the first KPI;
    - ``write_reply``: the body of a 2xx write answer: ``normal`` (the object),
      ``empty``, ``{}``, ``id`` (a bare JSON string) or ``text`` (``ok``);
    - ``kpi_overrides``: camelCase fields laid over every KPI the fake answers with,
      e.g. ``{"dateCreated": 5, "formatting": {"fractionSize": None}}`` (a nested
      object is merged one level deep);
    - ``time_zone_forms``: the snapshot ``timeZone`` forms accepted (``utc``,
      ``iana``); None accepts any text;
    - ``total_count``: whether a /v2/kpis page carries ``totalCount`` [I].
    """

    page_cap: int | None = attrs.field(default=None, validator=_cap)
    page_param: Literal["take", "limit", "none"] = attrs.field(
        default="take", validator=_one_of(PAGE_PARAMS)
    )
    ignore_skip: bool = False
    write_reply: Literal["normal", "empty", "{}", "id", "text"] = attrs.field(
        default="normal", validator=_one_of(WRITE_REPLIES)
    )
    kpi_overrides: Mapping[str, Any] = attrs.field(factory=dict, validator=_jsonable)
    time_zone_forms: frozenset[str] | None = attrs.field(default=None, validator=_forms)
    total_count: bool = True

    def page_size(self, query: Mapping[str, str]) -> str | None:
        """Return the raw page-size parameter the server honours (None: the default size)."""
        if self.page_param == "none":
            return None
        return query.get(self.page_param)

    def served(self, size: int) -> int:
        """Return how many items a page asked to hold ``size`` really holds."""
        return size if self.page_cap is None else min(size, self.page_cap)

    def kpi(self, kpi: dict[str, Any]) -> dict[str, Any]:
        """Return ``kpi`` with ``kpi_overrides`` laid over it."""
        if not self.kpi_overrides:
            return kpi
        out = dict(kpi)
        for key, value in self.kpi_overrides.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return out

    def write_body(self, payload: Any) -> bytes | None:
        """Return the body of a 2xx write answer; None: the payload as JSON."""
        reply = self.write_reply
        if reply == "normal":
            return None
        if reply == "empty":
            return b""
        if reply == "{}":
            return b"{}"
        if reply == "id":
            found = payload.get("id") if isinstance(payload, dict) else None
            return orjson.dumps(found or "")
        return b"ok"

    def time_zone_ok(self, value: str) -> bool:
        """Return True if the fake accepts ``value`` as a snapshot ``timeZone``."""
        forms = self.time_zone_forms
        if forms is None:
            return True
        if "utc" in forms and _UTC.match(value):
            return True
        return "iana" in forms and _known_zone(value)


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
