"""The route table: every KPI endpoint of the API, declared as data.

This module is the only place where an HTTP method or a path appears. Each row
is a ``Route`` naming the method, the path template, the call's parameter class
and how to read the answer. A parameter class is a frozen attrs class whose
fields say where they go (``path``, ``query`` or ``body``) and under which wire
name; its ``__init__`` is also the signature of the client method bound to the
route (see ``resources.py``). A new endpoint is a new parameter class and a new
row in ``ROUTES``; the table-driven tests pick it up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Final, Generic, Literal, ParamSpec, TypeVar

import attrs

from gtmhub_async import converter
from gtmhub_async._answers import any_json, model, model_list, no_content, write_model
from gtmhub_async._validate import (
    check_int,
    check_int_range,
    check_object_id,
    valid_object_id,
    valid_optional_date,
    valid_timeout,
)
from gtmhub_async.models import (
    CreateKpiRequest,
    Formatting,
    Kpi,
    KpiPage,
    KpiSnapshot,
    KpiSnapshotRequest,
    UpdateKpiRequest,
    VirtualKpiGroup,
    valid_object_ids,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ROUTES",
    "Call",
    "Route",
    "any_json",
    "model",
    "model_list",
    "no_content",
    "write_model",
]

P = ParamSpec("P")
RespT = TypeVar("RespT")
T = TypeVar("T")

#: ``path``: into the path template; ``query``: a query parameter; ``query_map``: a
#: mapping of query parameters; ``body``: the value is the whole JSON body; ``json``:
#: the value is one key of the JSON body.
Where = Literal["path", "query", "query_map", "body", "json"]

#: Largest ``take`` the SDK sends to /v2/kpis. The API's own cap is not published;
#: 500 is a conservative inference [I] that keeps one page's body small. A server
#: may serve fewer than asked (some v2 endpoints cap or page by ``limit`` [C]): the
#: walk in ``pagination.py`` is correct whatever size it is served.
MAX_PAGE_SIZE: Final = 500
#: The vendor's default page size [C].
DEFAULT_PAGE_SIZE: Final = 100


def _in(
    where: Where, wire: str | None = None, *, encode: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Return a parameter field's metadata: where it goes, its wire name, how to encode it."""
    # Used as attrs.field(metadata=_in(...)) so that mypy's attrs plugin still sees each
    # field's default and kw_only, and the bound methods get exact signatures.
    return {"in": where, "wire": wire, "encode": encode}


def _non_empty_str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _optional_bool(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class Call:
    """Parameters every call takes: a per-call ``timeout`` (seconds, the whole call's budget)."""

    timeout: float | None = attrs.field(default=None, validator=valid_timeout)


# --- Parameter classes, one per route -------------------------------------------------


@attrs.frozen
class GetInsightKpiUsages(Call):
    """List the KPIs that use an insight."""

    insight_id: str = attrs.field(metadata=_in("path", "id"), validator=valid_object_id)


@attrs.frozen
class ListSnapshots(Call):
    """Query KPI snapshots by KPI ids, group ids, virtual groups and dates."""

    ids: Sequence[str] | None = attrs.field(
        metadata=_in("query"), default=None, kw_only=True, validator=valid_object_ids
    )
    group_ids: Sequence[str] | None = attrs.field(
        metadata=_in("query", "groupIds"), default=None, kw_only=True, validator=valid_object_ids
    )
    ungrouped: bool | None = attrs.field(
        metadata=_in("query"), default=None, kw_only=True, validator=_optional_bool
    )
    my_kpis: bool | None = attrs.field(
        metadata=_in("query", "mykpis"), default=None, kw_only=True, validator=_optional_bool
    )
    time_zone: str | None = attrs.field(
        metadata=_in("query", "timeZone"), default=None, kw_only=True
    )
    group_by: str | None = attrs.field(
        metadata=_in("query", "groupBy"), default=None, kw_only=True
    )
    from_date: date | None = attrs.field(
        metadata=_in("query", "from"), default=None, kw_only=True, validator=valid_optional_date
    )
    to_date: date | None = attrs.field(
        metadata=_in("query", "to"), default=None, kw_only=True, validator=valid_optional_date
    )

    def __attrs_post_init__(self) -> None:
        if self.from_date and self.to_date and self.from_date > self.to_date:
            raise ValueError(f"from_date {self.from_date} is after to_date {self.to_date}")


def _take(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int_range("take", value, 1, MAX_PAGE_SIZE)


def _skip(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if check_int("skip", value) < 0:
        raise ValueError(f"skip must be 0 or more, got {value}")


@attrs.frozen
class ListKpisPage(Call):
    """Read one page of KPIs with a Mongo-style filter, a sort and a projection [C].

    Paging is ``skip`` [C] and ``take`` [I: the vendor's paging page names it, while
    some v2 endpoints use ``limit`` and /v2/kpis documents neither]. Only ``take`` is
    sent: a strict server could refuse an unknown parameter, and a server that
    ignores ``take`` only serves its default page size, which the walk handles.
    """

    filter: Mapping[str, Any] | str | None = attrs.field(
        metadata=_in("query"), default=None, kw_only=True
    )
    sort: Sequence[str] | str | None = attrs.field(
        metadata=_in("query"), default=None, kw_only=True
    )
    fields: Sequence[str] | str | None = attrs.field(
        metadata=_in("query"), default=None, kw_only=True
    )
    skip: int = attrs.field(metadata=_in("query"), default=0, kw_only=True, validator=_skip)
    take: int = attrs.field(
        metadata=_in("query"), default=DEFAULT_PAGE_SIZE, kw_only=True, validator=_take
    )


@attrs.frozen
class GetKpi(Call):
    """Read one KPI by id."""

    kpi_id: str = attrs.field(metadata=_in("path", "kpiId"), validator=valid_object_id)
    formatting: Formatting | None = attrs.field(metadata=_in("query"), default=None, kw_only=True)


@attrs.frozen
class CreateKpi(Call):
    """Create a KPI."""

    kpi: CreateKpiRequest = attrs.field(
        metadata=_in("body"), validator=attrs.validators.instance_of(CreateKpiRequest)
    )


@attrs.frozen
class CreateSnapshot(Call):
    """Add a snapshot (a value for one day) to a KPI."""

    kpi_id: str = attrs.field(metadata=_in("path", "kpiId"), validator=valid_object_id)
    snapshot: KpiSnapshotRequest = attrs.field(
        metadata=_in("body"), validator=attrs.validators.instance_of(KpiSnapshotRequest)
    )


@attrs.frozen(kw_only=True)
class FavoriteVirtualGroup(Call):
    """Add a virtual KPI group to, or remove it from, the user's favourites.

    The body is undocumented; ``{"virtualGroup": ..., "favorite": ...}`` is inferred [I].
    Whether the PUT sets the flag or toggles it is not known [I], so it is not
    retried once it may have reached the server: a resent toggle would undo it.
    """

    group: VirtualKpiGroup | str = attrs.field(
        metadata=_in("json", "virtualGroup"), validator=_non_empty_str
    )
    favorite: bool = attrs.field(
        metadata=_in("json"), default=True, validator=attrs.validators.instance_of(bool)
    )


def _updates(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"updates must map KPI ids to UpdateKpiRequest, got {type(value).__name__}"
        )
    if not value:
        raise ValueError("updates must not be empty")
    for kpi_id, update in value.items():
        check_object_id(kpi_id, "each KPI id in updates")
        if not isinstance(update, UpdateKpiRequest):
            raise TypeError(f"updates[{kpi_id!r}] must be an UpdateKpiRequest")


def _bulk_body(updates: Mapping[str, UpdateKpiRequest]) -> list[dict[str, Any]]:
    return [{"id": kpi_id, **converter.unstructure(u)} for kpi_id, u in updates.items()]


@attrs.frozen
class BulkUpdateKpis(Call):
    """Update several KPIs in one request; the body is a list of ``{"id", ...changes}`` [I]."""

    updates: Mapping[str, UpdateKpiRequest] = attrs.field(
        metadata=_in("body", encode=_bulk_body), validator=_updates
    )


@attrs.frozen
class UpdateKpi(Call):
    """Change the given fields of a KPI (PATCH: the others stay as they are)."""

    kpi_id: str = attrs.field(metadata=_in("path", "kpiId"), validator=valid_object_id)
    update: UpdateKpiRequest = attrs.field(
        metadata=_in("body"), validator=attrs.validators.instance_of(UpdateKpiRequest)
    )

    def __attrs_post_init__(self) -> None:
        if self.update.is_empty():
            raise ValueError("update sets no field: nothing would change")


@attrs.frozen
class DeleteKpi(Call):
    """Delete a KPI and its snapshots."""

    kpi_id: str = attrs.field(metadata=_in("path", "kpiId"), validator=valid_object_id)


# --- How answers are read: see ``_answers.py`` ----------------------------------------

_RAW_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@attrs.frozen
class RawCall(Call):
    """Query parameters and a JSON body for an endpoint or shape the models do not cover."""

    params: Mapping[str, Any] | None = attrs.field(
        metadata=_in("query_map"), default=None, kw_only=True
    )
    json: Any = attrs.field(metadata=_in("body", encode=any_json), default=None, kw_only=True)


def raw_route(method: str, path: str) -> Route[..., Any]:
    """Return a route for ``client.request``: any method and path under /v1 or /v2."""
    if not isinstance(method, str) or method.upper() not in _RAW_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(sorted(_RAW_METHODS))}, got {method!r}"
        )
    if not isinstance(path, str) or not path.startswith(("/v1/", "/v2/")):
        raise ValueError(f"path must start with /v1/ or /v2/, got {path!r}")
    if any(part in (".", "..") for part in path.split("/")) or any(c in path for c in "?#{}"):
        raise ValueError(f"path must be a plain path without '..', '?', '#' or braces: {path!r}")
    method = method.upper()
    return Route(f"request {method} {path}", method, path, RawCall, any_json)


@attrs.frozen
class Route(Generic[P, RespT]):
    """One endpoint: method, path template, parameter class and answer parser."""

    name: str
    method: str
    path: str
    params: Callable[P, Call]
    parse: Callable[[Any], RespT]
    #: Whether sending it twice does the same as sending it once (retry rules).
    idempotent: bool = attrs.field()

    @idempotent.default
    def _idempotent(self) -> bool:
        return self.method != "POST"

    @property
    def is_write(self) -> bool:
        """Return True for a write (any method but GET): any 2xx answer means applied."""
        return self.method != "GET"


INSIGHT_KPI_USAGES: Final = Route(
    "insights.kpi_usages",
    "GET",
    "/v1/insights/{id}/usages/kpis",
    GetInsightKpiUsages,
    model_list(Kpi),
)
LIST_SNAPSHOTS: Final = Route(
    "kpi_snapshots.list", "GET", "/v1/kpi-snapshots", ListSnapshots, model_list(KpiSnapshot)
)
LIST_KPIS_PAGE: Final = Route("kpis.list_page", "GET", "/v2/kpis", ListKpisPage, model(KpiPage))
LIST_KPI_SNAPSHOTS: Final = Route(
    "kpis.snapshots", "GET", "/v1/kpis/snapshots", ListSnapshots, model_list(KpiSnapshot)
)
GET_KPI: Final = Route("kpis.get", "GET", "/v1/kpis/{kpiId}", GetKpi, model(Kpi))
CREATE_KPI: Final = Route("kpis.create", "POST", "/v1/kpis", CreateKpi, write_model(Kpi))
CREATE_SNAPSHOT: Final = Route(
    "kpis.create_snapshot",
    "POST",
    "/v1/kpis/{kpiId}/snapshots",
    CreateSnapshot,
    write_model(KpiSnapshot),
)
#: Not idempotent: set-or-toggle is unknown [I], and a resent toggle undoes the change.
FAVORITE_VIRTUAL_GROUP: Final = Route(
    "users.favorite_kpi_virtual_group",
    "PUT",
    "/v1/users/kpi-virtual-group/favorite",
    FavoriteVirtualGroup,
    no_content,
    idempotent=False,
)
BULK_UPDATE_KPIS: Final = Route(
    "kpis.bulk_update", "PATCH", "/v1/kpis", BulkUpdateKpis, no_content
)
UPDATE_KPI: Final = Route("kpis.update", "PATCH", "/v1/kpis/{kpiId}", UpdateKpi, write_model(Kpi))
DELETE_KPI: Final = Route("kpis.delete", "DELETE", "/v1/kpis/{kpiId}", DeleteKpi, no_content)

#: Every route, in the order of the vendor's reference page.
ROUTES: Final[tuple[Route[..., Any], ...]] = (
    INSIGHT_KPI_USAGES,
    LIST_SNAPSHOTS,
    LIST_KPIS_PAGE,
    LIST_KPI_SNAPSHOTS,
    GET_KPI,
    CREATE_KPI,
    CREATE_SNAPSHOT,
    FAVORITE_VIRTUAL_GROUP,
    BULK_UPDATE_KPIS,
    UPDATE_KPI,
    DELETE_KPI,
)
