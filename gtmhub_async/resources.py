"""Resource namespaces (``client.kpis`` ...) whose methods are bound from the route table."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from gtmhub_async import bulk, routes
from gtmhub_async.bulk import BulkResult, SnapshotUpload
from gtmhub_async.journal import FsyncMode
from gtmhub_async.pagination import KpiIterator
from gtmhub_async.reconcile import reconcile_result
from gtmhub_async.routes import Route
from gtmhub_async.session import SessionSource

__all__ = ["Endpoint", "Insights", "KpiSnapshots", "Kpis", "Resource", "Users"]

P = ParamSpec("P")
RespT = TypeVar("RespT")


class Resource:
    """A group of endpoints sharing one client."""

    __slots__ = ("_bound", "_client")

    def __init__(self, client: SessionSource) -> None:
        self._client = client
        # Bound endpoint methods, made once per resource instead of on every access.
        self._bound: dict[Endpoint[..., Any], Callable[..., Any]] = {}


class Endpoint(Generic[P, RespT]):
    """A method bound from one route: its parameters are those of the route's parameter class."""

    __slots__ = ("doc", "route", "signature")

    def __init__(self, route: Route[P, RespT]) -> None:
        self.route = route
        self.doc = getattr(route.params, "__doc__", None)
        self.signature = inspect.signature(route.params).replace(
            return_annotation=inspect.Signature.empty
        )

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(
        self, obj: Resource, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, RespT]]: ...

    def __get__(
        self, obj: Resource | None, owner: type[Any]
    ) -> Self | Callable[P, Coroutine[Any, Any, RespT]]:
        if obj is None:
            return self
        bound = obj._bound.get(self)
        if bound is None:
            bound = obj._bound[self] = self._bind(obj)
        return bound

    def _bind(self, obj: Resource) -> Callable[P, Coroutine[Any, Any, RespT]]:
        route = self.route
        client = obj._client

        async def call(*args: P.args, **kwargs: P.kwargs) -> RespT:
            # Build (and so validate) the parameters before touching the session:
            # bad input fails the same way whether or not the client is open.
            params = route.params(*args, **kwargs)
            return await client.open_session().call(route, params)

        call.__name__ = route.name.rpartition(".")[2]
        call.__qualname__ = route.name
        call.__doc__ = self.doc
        call.__signature__ = self.signature  # type: ignore[attr-defined]  # read by inspect/help()
        return call


class Insights(Resource):
    """Endpoints about insights."""

    __slots__ = ()

    kpi_usages = Endpoint(routes.INSIGHT_KPI_USAGES)


class KpiSnapshots(Resource):
    """The ``/v1/kpi-snapshots`` query."""

    __slots__ = ()

    list = Endpoint(routes.LIST_SNAPSHOTS)


class Users(Resource):
    """Endpoints about the token's user."""

    __slots__ = ()

    favorite_kpi_virtual_group = Endpoint(routes.FAVORITE_VIRTUAL_GROUP)


class Kpis(Resource):
    """KPI endpoints: read, list, create, update, delete, snapshots."""

    __slots__ = ()

    list_page = Endpoint(routes.LIST_KPIS_PAGE)
    snapshots = Endpoint(routes.LIST_KPI_SNAPSHOTS)
    get = Endpoint(routes.GET_KPI)
    create = Endpoint(routes.CREATE_KPI)
    create_snapshot = Endpoint(routes.CREATE_SNAPSHOT)
    bulk_update = Endpoint(routes.BULK_UPDATE_KPIS)
    update = Endpoint(routes.UPDATE_KPI)
    delete = Endpoint(routes.DELETE_KPI)

    def list(
        self,
        *,
        filter: Mapping[str, Any] | str | None = None,
        sort: Sequence[str] | str | None = None,
        fields: Sequence[str] | str | None = None,
        page_size: int = 100,
        max_items: int | None = None,
        start: int = 0,
        prefetch: int = 1,
    ) -> KpiIterator:
        """Iterate over every KPI matching ``filter``, fetching ``prefetch`` pages ahead.

        The order is ``sort`` with the id as the last key (the id alone by default),
        so that offset pages never overlap. ``max_items`` caps the items yielded,
        ``start`` is the offset of the first one: a ``PaginationError``'s ``position``
        (or the iterator's ``position``) resumes an interrupted walk. Use
        ``async with client.kpis.list() as kpis:`` to cancel the prefetch on early exit;
        ``.pages()`` yields whole ``KpiPage`` objects instead. A page shorter than asked
        is not the end (a server may cap it [C]): the walk ends on an empty page or at
        ``totalCount``, and raises ``PaginationError`` if the server makes no progress.
        """
        return KpiIterator(
            self._client,
            filter=filter,
            sort=sort,
            fields=fields,
            page_size=page_size,
            max_items=max_items,
            start=start,
            prefetch=prefetch,
        )

    async def upload_snapshots(
        self,
        items: Iterable[SnapshotUpload] | AsyncIterable[SnapshotUpload],
        *,
        concurrency: int = 16,
        on_progress: Callable[[int, int | None], object] | None = None,
        stop_on_error: bool = False,
        journal: str | os.PathLike[str] | None = None,
        retry_unknown: bool = False,
        keep_succeeded: bool = True,
        result: BulkResult | None = None,
        reconcile: bool = False,
        fsync: FsyncMode = "group",
        fsync_interval: float = 0.0,
    ) -> BulkResult:
        """Post many snapshots, ``concurrency`` at a time, and say what became of each.

        ``items`` is read lazily by a pool of ``concurrency`` workers, under the client's
        rate limit and retry rules. Each item read lands in exactly one of
        ``succeeded``, ``failed`` (not applied), ``unknown`` (may have been applied: it is
        never sent again) or ``not_attempted``. ``on_progress(done, total)`` is called as
        items finish (``total`` is None unless ``items`` has a length).
        ``stop_on_error`` stops reading at the first failed or unknown item; those in
        flight still finish. ``keep_succeeded=False`` keeps only the count of successes.

        ``journal`` is a file that gets one JSON line per finished item; a run with the
        same journal skips the items it records as succeeded (``skipped_count``, part of
        ``succeeded``) and reports those it records as unknown without sending them,
        unless ``retry_unknown``. Cancelling the upload re-raises CancelledError once no
        worker is left; pass ``result=BulkResult()`` to read what was done until then.

        The journal is write-ahead: an intent line is on disk (``fsync="group"``, the
        default, or ``"line"``; ``"none"`` only flushes) before each POST leaves, so that
        an item a crash left in flight is never resent blindly. ``reconcile=True`` settles
        every unknown item by reading its day back (see ``reconcile``): applied items
        succeed (``reconciled_count``), absent ones are sent once more (``resent_count``),
        others stay unknown with a ``SnapshotConflictError`` (``conflict_count``).
        """
        return await bulk.upload_snapshots(
            self._client,
            items,
            concurrency=concurrency,
            on_progress=on_progress,
            stop_on_error=stop_on_error,
            journal=journal,
            retry_unknown=retry_unknown,
            keep_succeeded=keep_succeeded,
            result=result,
            reconcile=reconcile,
            fsync=fsync,
            fsync_interval=fsync_interval,
        )

    async def reconcile(self, result: BulkResult, *, concurrency: int = 16) -> BulkResult:
        """Settle ``result``'s unknown items by reading their days back; return ``result``.

        Applied -> succeeded (``reconciled_count``); absent -> sent once more
        (``resent_count``); anything else stays unknown with a ``SnapshotConflictError``
        (``conflict_count``). What read-back can prove: README, "Exactly-once uploads".
        """
        return await reconcile_result(self._client, result, concurrency=concurrency)
