"""Typed request and response models of the KPI API.

The vendor publishes no JSON schemas for these endpoints. Fields marked [C] in a
docstring are confirmed by public sources; the rest are inferred [I] from the
product and the vendor's other endpoints. Every response model keeps the fields
it does not name in ``extra`` and accepts values it does not know (an unknown
aggregation stays a plain string). An inferred field whose value is null or of
another JSON kind takes its "unknown" value (None, or the default) and its raw
value is kept in ``unread`` (never in ``extra``, so sending ``extra`` back cannot
echo a value the SDK could not read). Only confirmed fields (a KPI's ``id`` and
``name``, a page's ``items``) can fail a read. So a schema that differs from our
inference degrades to less typing, never to a crash, and nothing is coerced.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import attrs

from gtmhub_async._validate import check_finite, check_object_id, valid_date

__all__ = [
    "UNSET",
    "Aggregation",
    "CreateKpiRequest",
    "Formatting",
    "Kpi",
    "KpiFormatting",
    "KpiPage",
    "KpiSnapshot",
    "KpiSnapshotRequest",
    "TargetOperator",
    "Unset",
    "UpdateKpiRequest",
    "VirtualKpiGroup",
    "WriteResult",
    "check_object_id",
    "time_zone_form",
]


def valid_object_ids(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Check, as an attrs validator, that a field holds ids (or is None or UNSET)."""
    if value is UNSET or value is None:
        return
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{attribute.name} must be a sequence of ids, not {type(value).__name__}")
    for item in value:
        check_object_id(item, f"each of {attribute.name}")


def _id_tuple(value: Any) -> Any:
    # A str is a Sequence too: tuple("5be2...") would split it into characters.
    if value is UNSET or value is None or isinstance(value, str):
        return value
    return tuple(value) if isinstance(value, Sequence | set | frozenset) else value


class Unset(enum.Enum):
    """The type of ``UNSET``: a field that is not sent at all (``None`` sends null)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Marks an update field that is left out of the request body.
UNSET: Final = Unset.UNSET


class Aggregation(enum.StrEnum):
    """How the snapshots of one day are combined ("summarize with" in the product) [I]."""

    LAST = "last"
    SUM = "sum"
    AVG = "avg"


class TargetOperator(enum.StrEnum):
    """Whether more or less is better for a KPI [C: should_increase in a public script]."""

    SHOULD_INCREASE = "should_increase"
    SHOULD_DECREASE = "should_decrease"


class Formatting(enum.StrEnum):
    """How ``GET /v1/kpis/{id}`` renders a description [C]."""

    MENTIONS_MARKUP = "mentionsMarkup"
    PLAIN_TEXT = "plainText"


class VirtualKpiGroup(enum.StrEnum):
    """The two built-in virtual KPI groups [C]; their wire names are inferred [I]."""

    MY_KPIS = "myKpis"
    UNGROUPED = "ungrouped"


def _extra() -> Any:
    return attrs.field(factory=dict, repr=False, eq=False)


def _unread() -> Any:
    # Present only on response models: it marks them for the tolerant structure functions.
    return attrs.field(factory=dict, repr=False, eq=False)


#: Field metadata of a response field that is confirmed [C] and may fail a read.
CONFIRMED: Final = {"confirmed": True}

_UTC_OFFSET = re.compile(r"UTC(?:[+-](?:\d{1,2})(?::[0-5]\d)?)?\Z")
_IANA = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*\Z")


def time_zone_form(value: str) -> str | None:
    """Return ``"utc"`` (``UTC``, ``UTC±H``, ``UTC±HH:MM``), ``"iana"`` (a known name) or None.

    The real API accepts ``UTC+2`` and ``UTC-7`` [C]; whether it accepts IANA names
    is not known [I]. None means "not known either way": the account's setting
    decides, so callers pass such a value through rather than refuse it.
    """
    if _UTC_OFFSET.match(value):
        hours = value[4:].partition(":")[0]
        return "utc" if not hours or int(hours) <= 14 else None
    if _IANA.match(value) and _is_iana(value):
        return "iana"
    return None


@functools.lru_cache(maxsize=256)
def _is_iana(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _time_zone(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class KpiFormatting:
    """Display formatting of a KPI's value [C in a create body: prefix, suffix, fractionSize].

    In an answer the shape is inferred [I]: a null or odd value reads as None.
    """

    prefix: str | None = ""
    suffix: str | None = ""
    fraction_size: int | None = 0
    extra: Mapping[str, Any] = _extra()
    unread: Mapping[str, Any] = _unread()


@attrs.frozen(kw_only=True)
class Kpi:
    """A KPI as the API returns it.

    ``id`` and ``name`` are confirmed [C] (a wrong kind of value in them fails the
    read); the other names follow the product's fields and the vendor's other
    resources [I] and never fail it (see ``unread``). With a ``fields`` projection
    only the projected fields are present, so everything but ``id`` is optional.
    """

    id: str = attrs.field(metadata=CONFIRMED)
    account_id: str | None = None
    name: str | None = attrs.field(default=None, metadata=CONFIRMED)
    description: str | None = None
    owner_ids: tuple[str, ...] = ()
    aggregation: Aggregation | str | None = None
    target_operator: TargetOperator | str | None = None
    formatting: KpiFormatting | None = None
    group_ids: tuple[str, ...] = ()
    insight_id: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    created_by_id: str | None = None
    modified_by_id: str | None = None
    extra: Mapping[str, Any] = _extra()
    unread: Mapping[str, Any] = _unread()


@attrs.frozen(kw_only=True)
class KpiPage:
    """One page of ``GET /v2/kpis`` ("kpisWithTotalCount").

    The ``items`` envelope is confirmed [C]; ``totalCount`` is inferred [I] from the
    groups list and is None when absent or unreadable (``count`` stays in ``extra``).
    """

    items: list[Kpi] = attrs.field(metadata=CONFIRMED)
    total_count: int | None = None
    extra: Mapping[str, Any] = _extra()
    unread: Mapping[str, Any] = _unread()


def _finite(inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    check_finite(attribute.name, value)


def _non_empty(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen(kw_only=True)
class KpiSnapshotRequest:
    """A value for one day of a KPI [C: group, value, timeZone]; ``description`` is [I].

    ``group`` is the date the value belongs to. Several snapshots in one group are
    combined by the KPI's aggregation, so posting one twice can change a sum.
    """

    group: date = attrs.field(validator=valid_date)
    value: float = attrs.field(validator=_finite)
    #: ``UTC``, ``UTC+2``, ``UTC-7`` [C], ``UTC+05:30`` or an IANA name [I]: any
    #: text is sent as is, because the account's setting decides, not the SDK.
    time_zone: str | None = attrs.field(default=None, validator=_time_zone)
    description: str | None = None


@attrs.frozen(kw_only=True)
class KpiSnapshot:
    """A stored snapshot as the API returns it; the shape is inferred [I]."""

    id: str | None = None
    kpi_id: str | None = None
    group: date | None = None
    value: float | None = None
    time_zone: str | None = None
    description: str | None = None
    date_created: datetime | None = None
    extra: Mapping[str, Any] = _extra()
    unread: Mapping[str, Any] = _unread()


@attrs.frozen(kw_only=True)
class WriteResult:
    """What a 2xx write answered when its body is not the model: the write was applied.

    The write endpoints document only "resource created response" / "ok" [C]; the
    body is unknown [I] (empty, ``{}``, a bare id, text, part of an object).
    ``id`` is the id the body carries, if any (a bare id, or an ``id`` key).
    """

    status: int
    body: bytes = attrs.field(repr=False)
    id: str | None = None


@attrs.frozen(kw_only=True)
class CreateKpiRequest:
    """The body of ``POST /v1/kpis`` [C: name, ownerIds, aggregation, targetOperator, formatting].

    ``description`` and ``groupIds`` are inferred [I]. ``extra`` is sent as is, for
    fields this model does not name.
    """

    name: str = attrs.field(validator=_non_empty)
    owner_ids: tuple[str, ...] = attrs.field(
        default=(), converter=_id_tuple, validator=valid_object_ids
    )
    aggregation: Aggregation | str = Aggregation.LAST
    target_operator: TargetOperator | str = TargetOperator.SHOULD_INCREASE
    formatting: KpiFormatting | None = None
    description: str | None = None
    group_ids: tuple[str, ...] = attrs.field(
        default=(), converter=_id_tuple, validator=valid_object_ids
    )
    extra: Mapping[str, Any] = _extra()


def _unset_or(validator: Any) -> Any:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not UNSET:
            validator(inst, attribute, value)

    return check


@attrs.frozen(kw_only=True)
class UpdateKpiRequest:
    """A partial update of a KPI: only the fields that are set are sent [C: PATCH semantics].

    A field left ``UNSET`` is not sent; ``None`` sends null. ``extra`` is merged
    into the body, for fields this model does not name (for example the unknown
    fields of a ``Kpi`` you read, to send them back unchanged).
    """

    name: str | Unset = attrs.field(default=UNSET, validator=_unset_or(_non_empty))
    description: str | Unset | None = UNSET
    owner_ids: tuple[str, ...] | Unset = attrs.field(
        default=UNSET, converter=_id_tuple, validator=valid_object_ids
    )
    aggregation: Aggregation | str | Unset = UNSET
    target_operator: TargetOperator | str | Unset = UNSET
    formatting: KpiFormatting | Unset | None = UNSET
    group_ids: tuple[str, ...] | Unset = attrs.field(
        default=UNSET, converter=_id_tuple, validator=valid_object_ids
    )
    extra: Mapping[str, Any] = _extra()

    def is_empty(self) -> bool:
        """Return True when the update would send an empty body."""
        return not self.extra and all(
            getattr(self, f.name) is UNSET for f in attrs.fields(type(self)) if f.name != "extra"
        )
