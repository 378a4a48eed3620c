"""The 11 KPI endpoints of the fake: request data in, ``Reply`` out, no HTTP machinery.

Paths are relative to the API root (``/v1/...``, ``/v2/...``) as in ``routes.py``.
Response shapes the vendor does not document are the fake's inference [I]:
the snapshot list rows ``{kpiId, group, value}``, the snapshot POST answer, the
favourite answer ``{}``, and ``totalCount`` / ``count`` beside the /v2/kpis
``items`` [C]. ``Quirks`` (``quirks.py``) turns on what a real server may also do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gtmhub_async.testing import query, validate
from gtmhub_async.testing.quirks import Quirks
from gtmhub_async.testing.store import Store
from gtmhub_async.testing.validate import Reject

__all__ = ["Api", "Reply", "Request", "WRITE_METHODS"]

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MENTION: Final = re.compile(r"@\[([^\]]*)\]\([0-9a-fA-F]{24}\)")
_MARKUP: Final = re.compile(r"\*\*|__|`|^#+\s*", re.MULTILINE)


@dataclass(frozen=True)
class Request:
    """What an endpoint sees of a request: method, path below the API root, query, body."""

    method: str
    path: str
    query: Mapping[str, str]
    body: bytes


@dataclass
class Reply:
    """An answer before it is written: status, JSON payload (None: no body) and headers."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def plain_text(description: str) -> str:
    """Return a description without mention markup and markdown [I: markup syntax inferred]."""
    return _MARKUP.sub("", _MENTION.sub(r"\1", description))


class Api:
    """Route requests to the endpoint methods and run them against a ``Store``."""

    def __init__(self, store: Store, *, max_page_size: int, quirks: Quirks | None = None) -> None:
        self.store = store
        self.max_page_size = max_page_size
        #: The real-API behaviours in force (see ``Quirks``).
        self.quirks = quirks or Quirks()
        h = self
        # Literal segments come before {kpiId}: /v1/kpis/snapshots is not a KPI id.
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"/v1/insights/(?P<id>[^/]+)/usages/kpis"), h.insight_usages),
            ("GET", re.compile(r"/v1/kpi-snapshots"), h.list_snapshots),
            ("GET", re.compile(r"/v1/kpis/snapshots"), h.list_snapshots),
            ("GET", re.compile(r"/v2/kpis"), h.list_kpis_page),
            ("POST", re.compile(r"/v1/kpis"), h.create_kpi),
            ("PATCH", re.compile(r"/v1/kpis"), h.bulk_update),
            ("GET", re.compile(r"/v1/kpis/(?P<kpiId>[^/]+)"), h.get_kpi),
            ("PATCH", re.compile(r"/v1/kpis/(?P<kpiId>[^/]+)"), h.update_kpi),
            ("DELETE", re.compile(r"/v1/kpis/(?P<kpiId>[^/]+)"), h.delete_kpi),
            ("POST", re.compile(r"/v1/kpis/(?P<kpiId>[^/]+)/snapshots"), h.create_snapshot),
            ("PUT", re.compile(r"/v1/users/kpi-virtual-group/favorite"), h.favorite),
        ]

    def dispatch(self, request: Request) -> Reply:
        """Run the endpoint a request names; raise ``Reject`` for an error answer."""
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            return handler(request, **match.groupdict())
        if allowed:
            raise Reject(
                405,
                f"{request.method} is not allowed on {request.path}",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise Reject(404, f"no route {request.method} {request.path}")

    def route_template(self, method: str, path: str) -> str | None:
        """Return the ``routes.py`` template (``/v1/kpis/{kpiId}``) a request matches, if any."""
        for route_method, pattern, _ in self._routes:
            if route_method == method and pattern.fullmatch(path):
                return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.pattern)
        return None

    # --- KPIs ------------------------------------------------------------------------

    def _existing(self, raw_id: str) -> str:
        kpi_id = validate.object_id(raw_id, "kpiId")
        if kpi_id not in self.store.kpis:
            raise Reject(404, f"KPI {kpi_id} not found")
        return kpi_id

    def create_kpi(self, request: Request) -> Reply:
        """POST /v1/kpis: create a KPI -> 201 with it."""
        changes = validate.kpi_changes(validate.json_body(request.body), create=True)
        return Reply(201, self.quirks.kpi(self.store.create_kpi(changes)))

    def get_kpi(self, request: Request, kpiId: str) -> Reply:
        """GET /v1/kpis/{kpiId}: read a KPI, its description as markup or plain text."""
        formatting = request.query.get("formatting", "mentionsMarkup")
        if formatting not in validate.FORMATTINGS:
            raise Reject(
                400,
                f"formatting must be one of {', '.join(validate.FORMATTINGS)}; got {formatting!r}",
            )
        kpi = self.store.get_kpi(self._existing(kpiId))
        assert kpi is not None
        if formatting == "plainText" and isinstance(kpi.get("description"), str):
            kpi["description"] = plain_text(kpi["description"])
        return Reply(200, self.quirks.kpi(kpi))

    def update_kpi(self, request: Request, kpiId: str) -> Reply:
        """PATCH /v1/kpis/{kpiId}: change only the fields sent -> 200 with the KPI."""
        kpi_id = validate.object_id(kpiId, "kpiId")
        changes = validate.kpi_changes(validate.json_body(request.body), create=False)
        return Reply(200, self.quirks.kpi(self.store.update_kpi(self._existing(kpi_id), changes)))

    def bulk_update(self, request: Request) -> Reply:
        """PATCH /v1/kpis: apply a list of ``{id, ...changes}`` all or nothing -> 204 [I]."""
        body = validate.json_body(request.body)
        if not isinstance(body, list) or not body:
            raise Reject(400, "the bulk update body must be a non-empty JSON array of objects")
        planned: list[tuple[str, dict[str, Any]]] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                raise Reject(400, f"item {index} of the bulk update must be a JSON object")
            kpi_id = validate.object_id(item.get("id"), f"id of item {index}")
            planned.append((kpi_id, validate.kpi_changes(item, create=False)))
        unknown = [kpi_id for kpi_id, _ in planned if kpi_id not in self.store.kpis]
        if unknown:
            raise Reject(404, f"KPIs not found: {', '.join(unknown)}; nothing was updated")
        for kpi_id, changes in planned:
            self.store.update_kpi(kpi_id, changes)
        return Reply(204)

    def delete_kpi(self, request: Request, kpiId: str) -> Reply:
        """DELETE /v1/kpis/{kpiId}: delete a KPI and its snapshots -> 204."""
        self.store.delete_kpi(self._existing(kpiId))
        return Reply(204)

    def insight_usages(self, request: Request, id: str) -> Reply:
        """GET /v1/insights/{id}/usages/kpis: the KPIs whose ``insightId`` is ``id`` [I]."""
        insight_id = validate.object_id(id, "insight id")
        kpis = [
            self.quirks.kpi(self.store.get_kpi(k) or {})
            for k, v in self.store.kpis.items()
            if v.get("insightId") == insight_id
        ]
        return Reply(200, kpis)

    # --- Snapshots ---------------------------------------------------------------------

    def create_snapshot(self, request: Request, kpiId: str) -> Reply:
        """POST /v1/kpis/{kpiId}/snapshots: store a value for one day -> 201 with it."""
        kpi_id = validate.object_id(kpiId, "kpiId")
        body = validate.snapshot_body(validate.json_body(request.body))
        zone = body.get("timeZone")
        if isinstance(zone, str) and not self.quirks.time_zone_ok(zone):
            raise Reject(400, f"timeZone {zone!r} does not match the account's report settings")
        return Reply(201, self.store.add_snapshot(self._existing(kpi_id), body))

    def list_snapshots(self, request: Request) -> Reply:
        """GET /v1/kpi-snapshots and /v1/kpis/snapshots: daily values of the selected KPIs.

        Selectors (``ids``, ``groupIds``, ``ungrouped``, ``mykpis``) are united; with
        none, every KPI is selected [I]. ``timeZone`` and ``groupBy`` are accepted and
        ignored: groups are already days [I].
        """
        q = request.query
        ids = validate.id_csv(q["ids"], "ids") if "ids" in q else []
        group_ids = set(validate.id_csv(q["groupIds"], "groupIds")) if "groupIds" in q else set()
        ungrouped = validate.boolean(q["ungrouped"], "ungrouped") if "ungrouped" in q else False
        mine = validate.boolean(q["mykpis"], "mykpis") if "mykpis" in q else False
        first = validate.day(q["from"], "from") if "from" in q else None
        last = validate.day(q["to"], "to") if "to" in q else None
        if first is not None and last is not None and first > last:
            raise Reject(400, f"from ({first}) must not be after to ({last})")
        if "timeZone" in q and not q["timeZone"].strip():
            raise Reject(400, "timeZone must not be empty")
        kpis = self.store.kpis
        if not (ids or group_ids or ungrouped or mine):
            selected = set(kpis)
        else:
            selected = set(ids)
            for kpi_id, kpi in kpis.items():
                groups = kpi.get("groupIds") or []
                if (
                    (group_ids and group_ids.intersection(groups))
                    or (ungrouped and not groups)
                    or (mine and self.store.user_id in (kpi.get("ownerIds") or []))
                ):
                    selected.add(kpi_id)
        return Reply(200, self.store.daily_values(selected, first, last))

    # --- Listing -----------------------------------------------------------------------

    def list_kpis_page(self, request: Request) -> Reply:
        """GET /v2/kpis: filter, sort, project and page -> ``{items, totalCount, count}``."""
        q = request.query
        quirks = self.quirks
        skip = 0 if quirks.ignore_skip else validate.query_int(q.get("skip", "0"), "skip", 0)
        # A cap serves fewer than asked instead of refusing a large page size.
        most = None if quirks.page_cap is not None else self.max_page_size
        size = quirks.page_size(q)
        take = quirks.served(validate.query_int(size or "100", quirks.page_param, 1, most))
        try:
            items = list(self.store.kpis.values())
            if q.get("filter", "").strip():
                try:
                    expr = orjson.loads(q["filter"])
                except orjson.JSONDecodeError as exc:
                    raise query.FilterError(f"filter is not valid JSON: {exc}") from None
                predicate = query.compile_filter(expr)
                items = [kpi for kpi in items if predicate(kpi)]
            if q.get("sort", "").strip():
                items = query.sort_items(items, q["sort"])
            page = items[skip : skip + take]
            if q.get("fields", "").strip():
                paths = query.parse_fields(q["fields"])
                page = [query.project(kpi, paths) for kpi in page]
        except query.FilterError as exc:
            raise Reject(400, str(exc)) from None
        page = [quirks.kpi(kpi) for kpi in orjson.loads(orjson.dumps(page))]  # a deep copy
        body: dict[str, Any] = {"items": page, "totalCount": len(items), "count": len(page)}
        if not quirks.total_count:
            del body["totalCount"]
        return Reply(200, body)

    # --- Users -------------------------------------------------------------------------

    def favorite(self, request: Request) -> Reply:
        """PUT /v1/users/kpi-virtual-group/favorite: mark a virtual group -> 200 ``{}`` [I]."""
        group, favorite = validate.virtual_group_body(validate.json_body(request.body))
        self.store.favorites[group] = favorite
        return Reply(200, {})
