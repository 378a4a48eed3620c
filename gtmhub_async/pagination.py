"""Walk every KPI of ``GET /v2/kpis`` page by page, fetching the next page ahead of time.

A walk ends only on an empty page or when ``skip`` reaches ``totalCount``; duplicates
are dropped and a page of only seen KPIs raises ``PaginationError``. The reasoning:
docs/design.md, "Notes by module".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from gtmhub_async._page_walk import DEFAULT_SORT_KEY, PageWalk, total_sort
from gtmhub_async.errors import PaginationError
from gtmhub_async.models import Kpi, KpiPage
from gtmhub_async.session import SessionSource

__all__ = [
    "DEFAULT_SORT_KEY",
    "KpiIterator",
    "KpiPageIterator",
    "PaginationError",
    "total_sort",
]


class _Closing:
    """Shared close behaviour: ``aclose``, ``async with`` and cancel-on-garbage-collection."""

    _walk: PageWalk
    #: Whether dropping this object abandons the walk: not once ``pages()`` handed it on.
    _owns_walk = True

    @property
    def position(self) -> int:
        """Return the skip of the next item to yield: pass it as ``start`` to resume."""
        return self._walk.position

    async def aclose(self) -> None:
        """Stop the walk: cancel any prefetched page in flight and wait for it."""
        await self._walk.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # ``break`` out of ``async for`` closes nothing: when the iterator is dropped,
        # its pages in flight are cancelled here (they finish on the next loop turn).
        walk = getattr(self, "_walk", None)
        if walk is not None and self._owns_walk:
            walk.abandon()


class KpiPageIterator(_Closing, AsyncIterator[KpiPage]):
    """Iterate over the pages of a walk (duplicates dropped, cut at ``max_items``)."""

    def __init__(self, walk: PageWalk) -> None:
        self._walk = walk

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> KpiPage:
        page = await self._walk.next_page()
        if page is None:
            raise StopAsyncIteration
        self._walk.position = self._walk.page_end
        return page


class KpiIterator(_Closing, AsyncIterator[Kpi]):
    """Iterate over every KPI matching a filter, one page ahead; see ``Kpis.list``.

    Use it as ``async with client.kpis.list() as kpis: async for kpi in kpis: ...``
    to stop any prefetch deterministically when the loop ends early; a plain
    ``async for`` relies on the iterator being garbage collected, which CPython
    does at once after ``break`` unless something else holds the iterator.
    A failed page raises ``PaginationError`` (its ``position`` resumes the walk).
    """

    # The keywords of Kpis.list (resources.py), which forwards them one by one so that
    # its public signature stays explicit: a known pair for `duplicates`.
    def __init__(
        self,
        client: SessionSource,
        *,
        filter: Mapping[str, Any] | str | None = None,
        sort: Sequence[str] | str | None = None,
        fields: Sequence[str] | str | None = None,
        page_size: int = 100,
        max_items: int | None = None,
        start: int = 0,
        prefetch: int = 1,
    ) -> None:
        self._walk = PageWalk(
            client,
            filter=filter,
            sort=sort,
            fields=fields,
            page_size=page_size,
            max_items=max_items,
            start=start,
            prefetch=prefetch,
        )
        self._items: list[Kpi] = []
        self._index = 0
        self._started = False

    def pages(self) -> KpiPageIterator:
        """Return an iterator over whole pages instead of single KPIs."""
        if self._started:
            raise RuntimeError("pages() must be called before iterating over the KPIs")
        self._started = True
        # The page iterator owns the walk now: ``client.kpis.list().pages()`` drops this
        # object at once, and that must not stop the walk the page iterator goes on with.
        self._owns_walk = False
        return KpiPageIterator(self._walk)

    async def aclose(self) -> None:
        """Stop the walk: drop the current page, cancel any prefetched page and wait for it."""
        self._items = []
        self._index = 0
        await self._walk.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Kpi:
        self._started = True
        walk = self._walk
        while self._index >= len(self._items):
            # Drop the finished page before waiting for the next: only pages that are
            # still needed stay alive, however long the walk.
            self._items = []
            self._index = 0
            page = await walk.next_page()
            if page is None:
                raise StopAsyncIteration
            self._items = page.items
        index = self._index
        self._index = index + 1
        offsets = walk.offsets
        walk.position = offsets[index + 1] if index + 1 < len(offsets) else walk.page_end
        return self._items[index]
