"""Rules of gtmhub_async._page_walk and pagination that mutation testing found unchecked (see tests/MUTATION.md)."""  # noqa: E501

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_pagination import (  # tests/ is on sys.path
    client,
    collect,
    fake,
    list_queries,
    prefetch_tasks,
)

from gtmhub_async import GtmhubClient, Kpi, KpiPage, PaginationError
from gtmhub_async.pagination import KpiIterator
from gtmhub_async.routes import ListKpisPage
from gtmhub_async.testing import FakeGtmhub, Quirks

__all__ = ["client", "fake"]  # the fixtures, imported for pytest


def spans(fake: FakeGtmhub) -> list[tuple[str, str]]:
    return [(q["skip"], q["take"]) for q in list_queries(fake)]


@pytest.fixture
async def ignoring_take() -> AsyncIterator[FakeGtmhub]:
    """A server that serves its default 100 KPIs a page, whatever ``take`` says."""
    async with FakeGtmhub(seed=5, quirks=Quirks(page_param="none")) as server:
        yield server


# --- What is sent ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sort": 3}, "sort must be a str or a sequence of str, got int"),
        ({"fields": [1]}, "fields must be a str or a sequence of str, got list"),
        ({"fields": {"name": 1}}, "fields must be a str or a sequence of str, got dict"),
    ],
)
def test_a_wrong_sort_or_fields_names_the_type_given(kwargs: dict[str, Any], message: str) -> None:
    c = GtmhubClient("token", "5be26318e5274a0007f17f61")
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        c.kpis.list(**kwargs)


async def test_filter_and_fields_are_sent_with_every_page(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(30, name=lambda i: f"KPI {i % 3}")
    wanted = sorted(k["id"] for k in fake.kpis.values() if k["name"] == "KPI 1")
    ids = await collect(
        client.kpis.list(filter={"name": "KPI 1"}, fields=["name"], page_size=4, prefetch=0)
    )
    assert ids == wanted
    queries = list_queries(fake)
    assert len(queries) == 3
    assert all(json.loads(q["filter"]) == {"name": "KPI 1"} for q in queries)
    assert all(q["fields"] == "name" for q in queries)


async def test_max_items_of_one_reads_one_kpi(fake: FakeGtmhub, client: GtmhubClient) -> None:
    fake.add_kpis(5)
    assert await collect(client.kpis.list(max_items=1)) == sorted(fake.kpis)[:1]
    assert spans(fake) == [("0", "1")]


# --- Position -----------------------------------------------------------------------


async def test_position_is_start_before_the_first_item(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(5)
    it = client.kpis.list(start=3)
    assert it.position == 3
    empty = client.kpis.list(start=7, max_items=0)
    assert await collect(empty) == []
    assert empty.position == 7
    assert fake.requests == []


async def test_position_after_the_next_to_last_item_of_a_page_is_the_last_one(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(120)
    async with client.kpis.list(page_size=50) as it:
        first = [await anext(it) for _ in range(49)]
        assert it.position == 49
    rest = await collect(client.kpis.list(page_size=50, start=49))
    assert [k.id for k in first] + rest == sorted(fake.kpis)


async def test_a_walk_ended_by_an_empty_page_ends_at_its_position() -> None:
    # Without totalCount [I] only an empty page ends the walk.
    async with (
        FakeGtmhub(seed=5, quirks=Quirks(total_count=False)) as fake,
        fake.client(rate_limit=None) as client,
    ):
        fake.add_kpis(250)
        it = client.kpis.list(page_size=100, prefetch=0)
        assert await collect(it) == sorted(fake.kpis)
        assert it.position == 250
        assert spans(fake) == [("0", "100"), ("100", "100"), ("200", "100"), ("250", "50")]


# --- Errors -------------------------------------------------------------------------


async def test_a_failed_page_names_the_cause_type_in_its_message(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    fake.script([None, None, 404])
    it = client.kpis.list(page_size=100)
    with pytest.raises(PaginationError) as info:
        await collect(it)
    cause = info.value.__cause__
    assert type(cause).__name__ == "NotFoundError"
    assert str(info.value) == (
        f"listing KPIs failed at position 200 after 200 items: NotFoundError: {cause}; "
        "resume with start=200"
    )


async def test_a_server_ignoring_skip_stops_the_walk_at_its_position() -> None:
    async with (
        FakeGtmhub(seed=5, quirks=Quirks(ignore_skip=True)) as fake,
        fake.client(rate_limit=None) as client,
    ):
        fake.add_kpis(150)
        it = client.kpis.list(page_size=100)
        seen: list[str] = []
        with pytest.raises(PaginationError) as info:
            async for kpi in it:
                seen.append(kpi.id)
    assert seen == sorted(fake.kpis)[:100]
    assert str(info.value) == (
        "listing KPIs made no progress at position 100 after 100 items: the page holds "
        "only KPIs already yielded (does the server ignore skip?); stopped instead of looping"
    )
    assert info.value.position == it.position == 100
    assert info.value.yielded == 100


# --- A changing collection ----------------------------------------------------------


async def test_a_changed_total_is_logged_with_the_old_and_new_count_and_the_position(
    fake: FakeGtmhub, client: GtmhubClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_kpis(300)
    seen: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.pagination"):
        async for kpi in client.kpis.list(page_size=100, prefetch=0):
            seen.append(kpi.id)
            if len(seen) == 100:
                fake.add_kpis(7)
    assert seen == sorted(fake.kpis)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "gtmhub_async.pagination",
            logging.WARNING,
            "the number of KPIs changed from 300 to 307 while listing them (at position "
            "100): items inserted or deleted before that position may be missed",
        )
    ]


async def test_kpis_appended_after_the_known_end_are_read(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(250)
    seen: list[str] = []
    async for kpi in client.kpis.list(page_size=100):
        seen.append(kpi.id)
        if len(seen) == 1:
            # Let the page fetched ahead (skip=100) arrive: it still counts 250.
            await asyncio.wait(prefetch_tasks())
        if len(seen) == 200:
            # The page at skip=200 was not requested yet; when it is, it counts 260.
            fake.add_kpis(10)
    assert seen == sorted(fake.kpis)
    assert spans(fake) == [("0", "100"), ("100", "100"), ("200", "50"), ("250", "10")]


async def test_a_page_reaching_a_shrunk_total_ends_the_walk_at_once(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    kept = sorted(fake.kpis)[:200]
    seen: list[str] = []
    async for kpi in client.kpis.list(page_size=100):
        seen.append(kpi.id)
        if len(seen) == 1:
            for kpi_id in sorted(fake.kpis)[200:]:
                del fake.kpis[kpi_id]
            # The page fetched ahead (skip=100) arrives and counts 200: the walk ends there,
            # so the page after it (asked while 300 were known) is never requested.
            await asyncio.wait(prefetch_tasks())
    assert seen == kept
    assert spans(fake) == [("0", "100"), ("100", "100")]


# --- A server that serves more than asked -------------------------------------------


async def test_max_items_cuts_a_page_larger_than_asked(ignoring_take: FakeGtmhub) -> None:
    fake = ignoring_take
    fake.add_kpis(250)
    async with fake.client(rate_limit=None) as client:
        it = client.kpis.list(page_size=30, max_items=130)
        assert await collect(it) == sorted(fake.kpis)[:130]
        assert it.position == 130
        assert spans(fake) == [("0", "30"), ("100", "30")]
        rest = await collect(client.kpis.list(start=it.position))
    assert rest == sorted(fake.kpis)[130:]


async def test_a_walk_served_whole_by_its_first_page_fetches_nothing_ahead(
    ignoring_take: FakeGtmhub,
) -> None:
    fake = ignoring_take
    fake.add_kpis(100)
    async with fake.client(rate_limit=None) as client:
        # The KPI iterator is held: dropping it would stop the walk its pages share.
        it = client.kpis.list(page_size=30)
        pages = it.pages()
        page = await anext(pages)
        assert len(page.items) == 100
        assert prefetch_tasks() == []
        with pytest.raises(StopAsyncIteration):
            await anext(pages)
    assert spans(fake) == [("0", "30")]


async def renamed_walk(
    fake: FakeGtmhub, new_name: str, max_items: int
) -> tuple[list[str | None], list[str | None], int]:
    """Walk by name, 100 a page; after the first page ``n000`` is renamed to sort later.

    Return the names on both pages and the position after the walk.
    """
    fake.add_kpis(250, name=lambda i: f"n{i:03d}")
    moved = min(fake.kpis, key=lambda k: fake.kpis[k]["name"])
    async with fake.client(rate_limit=None) as client:
        it = client.kpis.list(sort="name", page_size=30, max_items=max_items)
        pages = it.pages()
        first = await anext(pages)
        # The second page is fetched ahead but not yet requested: it sees the rename.
        fake.kpis[moved]["name"] = new_name
        second = await anext(pages)
        assert prefetch_tasks() == [], "max_items is reached: nothing more is fetched"
        with pytest.raises(StopAsyncIteration):
            await anext(pages)
    return names(first), names(second), pages.position


def names(page: KpiPage) -> list[str | None]:
    return [kpi.name for kpi in page.items]


async def test_max_items_mid_page_ignores_a_duplicate_after_the_cut(
    ignoring_take: FakeGtmhub,
) -> None:
    # Page 2 (from 100) holds n101..n150, n000 again as "n150x", n151..: it is cut at n120.
    first, second, position = await renamed_walk(ignoring_take, "n150x", max_items=120)
    assert first == [f"n{i:03d}" for i in range(100)]
    assert second == [f"n{i:03d}" for i in range(101, 121)]
    assert position == 120
    assert spans(ignoring_take) == [("0", "30"), ("100", "20")]


async def test_max_items_at_a_page_end_resumes_after_its_trailing_duplicate(
    ignoring_take: FakeGtmhub,
) -> None:
    # Page 2 (from 100) holds n101..n199 then n000 again as "n199x": 99 new KPIs.
    _, second, position = await renamed_walk(ignoring_take, "n199x", max_items=199)
    assert second == [f"n{i:03d}" for i in range(101, 200)]
    # The trailing duplicate was read: the position is past it, not at it.
    assert position == 200
    assert spans(ignoring_take) == [("0", "30"), ("100", "99")]


async def test_every_page_keeps_the_servers_extra_fields(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(250)
    it = client.kpis.list(page_size=100)
    pages = [page async for page in it.pages()]
    assert [dict(page.extra) for page in pages] == [{"count": 100}, {"count": 100}, {"count": 50}]


# --- The iterators ------------------------------------------------------------------


async def test_kpi_iterator_defaults_to_100_a_page_and_one_page_ahead(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(500)
    async with KpiIterator(client) as it:
        await anext(it)
        assert len(prefetch_tasks()) == 1
    assert spans(fake)[0] == ("0", "100")


async def test_pages_may_be_asked_for_only_once_and_before_iterating(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(3)
    message = r"^pages\(\) must be called before iterating over the KPIs$"
    it = client.kpis.list()
    it.pages()
    with pytest.raises(RuntimeError, match=message):
        it.pages()
    it2 = client.kpis.list()
    await anext(it2)
    with pytest.raises(RuntimeError, match=message):
        it2.pages()
    await it2.aclose()


async def test_a_walk_whose_page_iterator_was_dropped_yields_nothing_more(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    it = client.kpis.list(page_size=50, prefetch=2)
    pages = it.pages()
    await anext(pages)
    del pages
    gc.collect()
    # The pages in flight were cancelled: going on would skip them.
    assert await collect(it) == []
    assert spans(fake) == [("0", "50")]


class _HangingSession:
    """Answer the first page; every later page waits forever."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def call(self, route: object, params: ListKpisPage) -> KpiPage:
        if params.skip == 0:
            return KpiPage(items=[Kpi(id=f"{i:024x}") for i in range(2)], total_count=10)
        self.waiting.set()
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


class _HangingClient:
    def __init__(self) -> None:
        self.session = _HangingSession()

    def open_session(self) -> _HangingSession:
        return self.session


def test_an_iterator_dropped_after_its_loop_closed_reports_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def start() -> KpiIterator:
        stub = _HangingClient()
        it = KpiIterator(stub, page_size=2)  # type: ignore[arg-type]  # a stub client
        await anext(it)
        await stub.session.waiting.wait()  # the page fetched ahead waits for its answer
        return it

    loop = asyncio.new_event_loop()
    it = loop.run_until_complete(start())
    loop.close()
    # Cancelling a task of a closed loop raises RuntimeError: the iterator ignores it.
    del it
    gc.collect()
    assert unraisable == []
