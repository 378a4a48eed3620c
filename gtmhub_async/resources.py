"""Resource namespaces (``client.kpis`` ...) whose methods are bound from the route table."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

from gtmhub_async import routes
from gtmhub_async.pagination import KpiIterator
from gtmhub_async.routes import Route

if TYPE_CHECKING:
    from gtmhub_async.client import GtmhubClient

__all__ = ["Endpoint", "Insights", "KpiSnapshots", "Kpis", "Resource", "Users"]

P = ParamSpec("P")
RespT = TypeVar("RespT")


class Resource:
    """A group of endpoints sharing one client."""

    __slots__ = ("_bound", "_client")

    def __init__(self, client: GtmhubClient) -> None:
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
            return await client._session().call(route, params)

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
        ``.pages()`` yields whole ``KpiPage`` objects instead.
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
