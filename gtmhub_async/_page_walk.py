"""The state of one walk over ``GET /v2/kpis``: pages in flight, position, recent ids.

The rules (when a walk ends, what a short page means, when it gives up) are in
the docstring of ``pagination.py``, the public face of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import Any, Final

from gtmhub_async._validate import check_int_range
from gtmhub_async.errors import PaginationError
from gtmhub_async.models import Kpi, KpiPage
from gtmhub_async.routes import LIST_KPIS_PAGE, MAX_PAGE_SIZE
from gtmhub_async.session import SessionSource

__all__ = ["DEFAULT_SORT_KEY", "PageWalk", "total_sort"]

logger = logging.getLogger("gtmhub_async.pagination")

#: The unique key appended to every sort. ``_id`` appears in v2 filters [C]; that
#: sort accepts it too is inferred [I] (the fake and the vendor's Mongo backing suggest it).
DEFAULT_SORT_KEY: Final = "_id"
_ID_KEYS: Final = frozenset({"_id", "-_id", "+_id", "id", "-id", "+id"})

#: Pages whose ids are remembered to drop duplicates (see ``_PageWalk._accept``).
_REMEMBERED_PAGES: Final = 2


def _names(name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        names = tuple(part.strip() for part in value.split(","))
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        names = tuple(v.strip() for v in value)
    else:
        raise TypeError(f"{name} must be a str or a sequence of str, got {type(value).__name__}")
    if not names or not all(names):
        raise ValueError(f"{name} must not be empty or contain an empty name, got {value!r}")
    return names


def total_sort(sort: object) -> tuple[str, ...]:
    """Return ``sort`` with the id appended as the last key, so that the order is total."""
    keys = _names("sort", sort) or ()
    if not any(key in _ID_KEYS for key in keys):
        # Ties under the caller's keys have no defined order between two requests:
        # without a unique last key a tie could straddle a page boundary and repeat.
        keys = (*keys, DEFAULT_SORT_KEY)
    return keys


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A prefetched page may fail and never be awaited (the walk stopped first):
    # reading the exception here keeps asyncio from logging "never retrieved".
    if not task.cancelled():
        task.exception()


async def _fetch_page(
    client: SessionSource,
    filter: Mapping[str, Any] | str | None,
    sort: Sequence[str],
    fields: Sequence[str] | None,
    skip: int,
    take: int,
) -> KpiPage:
    params = LIST_KPIS_PAGE.params(filter=filter, sort=sort, fields=fields, skip=skip, take=take)
    return await client.open_session().call(LIST_KPIS_PAGE, params)


class PageWalk:
    """The state of one walk: the pages in flight, the position and the recent ids."""

    def __init__(
        self,
        client: SessionSource,
        *,
        filter: Mapping[str, Any] | str | None,
        sort: Sequence[str] | str | None,
        fields: Sequence[str] | str | None,
        page_size: int,
        max_items: int | None,
        start: int,
        prefetch: int,
    ) -> None:
        if filter is not None and not isinstance(filter, Mapping | str):
            raise TypeError(f"filter must be a mapping or a str, got {type(filter).__name__}")
        self._client = client
        self._filter = filter
        self._sort = total_sort(sort)
        self._fields = _names("fields", fields)
        self._page_size = check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
        self._max_items = None if max_items is None else check_int_range("max_items", max_items, 0)
        self._start = check_int_range("start", start, 0)
        self._prefetch = check_int_range("prefetch", prefetch, 0)
        #: Pages requested but not yet handed out, in order: (skip, take, task).
        self._ahead: deque[tuple[int, int, asyncio.Task[KpiPage]]] = deque()
        #: The skip of the next page to request.
        self._next_skip = self._start
        #: One past the last offset to read (grows by one per dropped duplicate).
        self._end = None if self._max_items is None else self._start + self._max_items
        #: ``totalCount`` of the last page that had one (None: unknown [I]).
        self._total: int | None = None
        self._first_seen = False
        self._recent: deque[set[str]] = deque(maxlen=_REMEMBERED_PAGES)
        self._handed = 0
        self._position = self._start
        #: Where the last page handed out ends, and the offset of each of its items.
        self.page_end = self._start
        self.offsets: list[int] = []
        self._done = self._max_items == 0
        #: Set by ``_accept`` when a page's size differs from what was asked.
        self._realign: int | None = None

    @property
    def position(self) -> int:
        return self._position

    @position.setter
    def position(self, value: int) -> None:
        self._position = value

    def _fetch(self, skip: int, take: int) -> Coroutine[Any, Any, KpiPage]:
        # Only the client is referenced, never the walk: a prefetch task must not
        # keep an abandoned iterator alive, or its __del__ could not cancel the task.
        return _fetch_page(self._client, self._filter, self._sort, self._fields, skip, take)

    def _next_range(self) -> tuple[int, int] | None:
        skip = self._next_skip
        limit = self._end
        if self._total is not None:
            limit = self._total if limit is None else min(limit, self._total)
        if limit is not None and skip >= limit:
            return None
        take = self._page_size if limit is None else min(self._page_size, limit - skip)
        self._next_skip = skip + take
        return skip, take

    def _fill(self) -> None:
        # Before the first page the total is unknown: there is nothing to run ahead of.
        if self._done or not self._first_seen:
            return
        loop = asyncio.get_running_loop()
        while len(self._ahead) < self._prefetch:
            span = self._next_range()
            if span is None:
                return
            skip, take = span
            task = loop.create_task(
                self._fetch(skip, take), name=f"gtmhub_async kpis.list skip={skip}"
            )
            task.add_done_callback(_retrieve)
            self._ahead.append((skip, take, task))

    async def next_page(self) -> KpiPage | None:
        """Return the next page with duplicates dropped, or None at the end."""
        while not self._done:
            if self._ahead:
                skip, take, task = self._ahead.popleft()
                # Start the following fetch now, so that it overlaps this wait too.
                self._fill()
                fetch: Awaitable[KpiPage] = task
            else:
                span = self._next_range()
                if span is None:
                    self._done = True
                    break
                skip, take = span
                fetch = self._fetch(skip, take)
            try:
                page = await fetch
            except Exception as exc:
                self._position = skip
                await self.aclose()
                raise PaginationError(
                    f"listing KPIs failed at position {skip} after {self._handed} items: "
                    f"{type(exc).__name__}: {exc}; resume with start={skip}",
                    position=skip,
                    yielded=self._handed,
                ) from exc
            except BaseException:
                await self.aclose()
                raise
            try:
                accepted = self._accept(page, skip, take)
            except PaginationError:
                await self.aclose()
                raise
            if self._realign is not None and not self._done:
                # Pages in flight were asked at offsets that assumed full pages:
                # drop them and go on from where this page really ended.
                await self._cancel_ahead()
                self._next_skip, self._realign = self._realign, None
            if self._done:
                # The end is known: pages fetched ahead of it are of no use.
                await self.aclose()
            self._fill()
            if accepted is not None:
                return accepted
        await self.aclose()
        return None

    def _accept(self, page: KpiPage, skip: int, take: int) -> KpiPage | None:
        raw = page.items
        if (
            page.total_count is not None
            and self._total is not None
            and (page.total_count != self._total)
        ):
            logger.warning(
                "the number of KPIs changed from %d to %d while listing them (at position "
                "%d): items inserted or deleted before that position may be missed",
                self._total,
                page.total_count,
                skip,
            )
        self._first_seen = True
        if page.total_count is not None:
            # Without a (readable) totalCount [I] only an empty page ends the walk.
            self._total = page.total_count
        # An insert shifts the items after it one place right, so the head of this page
        # repeats the tail of the previous one. A shift by less than a page can only
        # repeat ids of the last page or two: remembering more would grow with the walk.
        recent = self._recent
        ids: set[str] = set()
        items: list[Kpi] = []
        offsets: list[int] = []
        for i, kpi in enumerate(raw):
            if kpi.id in ids or any(kpi.id in seen for seen in recent):
                continue
            ids.add(kpi.id)
            items.append(kpi)
            offsets.append(skip + i)
        if raw and not items:
            self._position = skip
            self._done = True
            raise PaginationError(
                f"listing KPIs made no progress at position {skip} after {self._handed} "
                f"items: the page holds only KPIs already yielded (does the server ignore "
                f"skip?); stopped instead of looping",
                position=skip,
                yielded=self._handed,
            )
        recent.append(ids)
        end = skip + len(raw)
        dropped = len(raw) - len(items)
        if dropped and self._end is not None:
            # A dropped duplicate is not an item: read as many more to reach max_items.
            self._end += dropped
        if self._max_items is not None and self._handed + len(items) >= self._max_items:
            keep = self._max_items - self._handed
            if keep < len(items):
                # Resume right after the last kept item: the next one was not yielded.
                end = offsets[keep - 1] + 1 if keep else skip
                del items[keep:], offsets[keep:]
            self._done = True
        total = self._total
        if not raw or (total is not None and end >= total):
            self._done = True
        elif len(raw) != take:
            # A capped page (or an ignored take) is not the end: go on from its end,
            # asking for the size served so that pages fetched ahead line up.
            self._page_size = min(len(raw), MAX_PAGE_SIZE)
            self._realign = end
        self._handed += len(items)
        self.page_end = end
        self.offsets = offsets
        if not items:
            self._position = end
            return None
        return KpiPage(items=items, total_count=page.total_count, extra=page.extra)

    async def aclose(self) -> None:
        """Stop the walk: cancel the pages in flight and wait until they are gone."""
        self._done = True
        await self._cancel_ahead()

    async def _cancel_ahead(self) -> None:
        tasks = [task for _, _, task in self._ahead]
        self._ahead.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def abandon(self) -> None:
        """Cancel the pages in flight without waiting (for ``__del__``)."""
        self._done = True
        while self._ahead:
            task = self._ahead.popleft()[2]
            # A closed loop raises RuntimeError: its tasks can never run again anyway.
            with contextlib.suppress(RuntimeError):
                task.cancel()
