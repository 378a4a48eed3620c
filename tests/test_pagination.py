"""Pagination: ``client.kpis.list`` against FakeGtmhub, and a stub for the 100,000-KPI walk."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gtmhub_async import (
    GtmhubClient,
    GtmhubError,
    Kpi,
    KpiPage,
    NotFoundError,
    PaginationError,
)
from gtmhub_async.pagination import KpiIterator
from gtmhub_async.routes import LIST_KPIS_PAGE, MAX_PAGE_SIZE, ListKpisPage
from gtmhub_async.testing import FakeGtmhub

TASK_PREFIX = "gtmhub_async kpis.list"


def prefetch_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX)]


def list_queries(fake: FakeGtmhub) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path == "/v2/kpis"]


async def collect(it: AsyncIterator[Kpi]) -> list[str]:
    return [kpi.id async for kpi in it]


async def wait_for(predicate: Any) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110  # the fake's request log has no event to wait on
            await asyncio.sleep(0.001)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGtmhub]:
    async with FakeGtmhub(seed=5) as server:
        yield server


@pytest.fixture
async def client(fake: FakeGtmhub) -> AsyncIterator[GtmhubClient]:
    async with fake.client(rate_limit=None) as c:
        yield c


async def test_walks_1050_kpis_once_each_in_id_order(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(1050)
    ids = await collect(client.kpis.list(page_size=100))
    assert ids == sorted(fake.kpis)
    assert len(ids) == len(set(ids)) == 1050
    queries = list_queries(fake)
    assert [q["skip"] for q in queries] == [str(100 * i) for i in range(11)]
    assert all(q["sort"] == "_id" for q in queries)
    # Once totalCount is known the last page asks for no more than is left.
    assert [q["take"] for q in queries] == ["100"] * 10 + ["50"]


async def test_caller_sort_gets_the_id_as_tie_breaker(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(30, name=lambda i: f"KPI {i % 3}")
    ids = await collect(client.kpis.list(sort="-name", page_size=7, fields=["name"]))
    expected = sorted(fake.kpis.values(), key=lambda k: k["id"])
    expected.sort(key=lambda k: k["name"], reverse=True)
    assert ids == [k["id"] for k in expected]
    assert {q["sort"] for q in list_queries(fake)} == {"-name,_id"}
    fake.clear_requests()
    await collect(client.kpis.list(sort=["-_id"], max_items=3))
    assert list_queries(fake)[0]["sort"] == "-_id"


async def test_max_items_reads_only_what_it_needs(fake: FakeGtmhub, client: GtmhubClient) -> None:
    fake.add_kpis(1050)
    ids = await collect(client.kpis.list(page_size=100, max_items=250, prefetch=4))
    assert ids == sorted(fake.kpis)[:250]
    assert [(q["skip"], q["take"]) for q in list_queries(fake)] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "50"),
    ]
    fake.clear_requests()
    assert await collect(client.kpis.list(max_items=0)) == []
    assert fake.requests == []


async def test_stops_at_a_short_page_and_on_an_empty_collection(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    assert await collect(client.kpis.list()) == []
    assert len(list_queries(fake)) == 1
    fake.add_kpis(200)
    fake.clear_requests()
    assert len(await collect(client.kpis.list(page_size=100, start=150))) == 50
    assert len(list_queries(fake)) == 1


async def test_pages_yields_kpi_pages(fake: FakeGtmhub, client: GtmhubClient) -> None:
    fake.add_kpis(250)
    it = client.kpis.list(page_size=100)
    pages = [page async for page in it.pages()]
    assert all(isinstance(p, KpiPage) and p.total_count == 250 for p in pages)
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert it.position == 250
    it2 = client.kpis.list()
    await anext(it2)
    with pytest.raises(RuntimeError, match="before iterating"):
        it2.pages()
    await it2.aclose()


async def test_pages_chained_on_a_dropped_list_iterator_still_walk_every_page(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(250)
    # The KpiIterator is garbage now: its page iterator goes on with the walk alone.
    pages = [page async for page in client.kpis.list(page_size=100).pages()]
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert [k.id for p in pages for k in p.items] == sorted(fake.kpis)


async def test_error_carries_the_position_and_the_walk_resumes(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(1050)
    # The third request (skip=200) fails with a status that is not retried.
    fake.script([None, None, 404])
    seen: list[str] = []
    it = client.kpis.list(page_size=100)
    with pytest.raises(PaginationError) as info:
        async for kpi in it:
            seen.append(kpi.id)
    exc = info.value
    assert isinstance(exc, GtmhubError)
    assert isinstance(exc.__cause__, NotFoundError)
    assert exc.position == it.position == 200
    assert exc.yielded == 200 == len(seen)
    assert "resume with start=200" in str(exc)
    assert prefetch_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    seen += await collect(client.kpis.list(page_size=100, start=exc.position))
    assert seen == sorted(fake.kpis)


async def test_position_mid_page_resumes_with_the_next_item(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(120)
    async with client.kpis.list(page_size=50) as it:
        first = [kpi.id async for kpi, _ in zip_count(it, 73)]
        position = it.position
    assert position == 73
    rest = await collect(client.kpis.list(page_size=50, start=position))
    assert first + rest == sorted(fake.kpis)


async def zip_count(it: AsyncIterator[Kpi], n: int) -> AsyncIterator[tuple[Kpi, int]]:
    i = 0
    async for kpi in it:
        yield kpi, i
        i += 1
        if i == n:
            return


async def test_next_page_is_in_flight_while_the_caller_is_busy(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    async with client.kpis.list(page_size=100) as it:
        await anext(it)
        # The caller is busy with the first item: the second page is requested anyway.
        await wait_for(lambda: len(list_queries(fake)) == 2)
        assert list_queries(fake)[1]["skip"] == "100"
        await asyncio.sleep(0.02)
        assert len(list_queries(fake)) == 2, "one page ahead by default, not more"
    assert prefetch_tasks() == []


async def test_prefetch_several_pages_or_none(fake: FakeGtmhub, client: GtmhubClient) -> None:
    fake.add_kpis(1000)
    async with client.kpis.list(page_size=100, prefetch=3) as it:
        await anext(it)
        await wait_for(lambda: len(list_queries(fake)) == 4)
    fake.clear_requests()
    async with client.kpis.list(page_size=100, prefetch=0) as it:
        await anext(it)
        await asyncio.sleep(0.02)
        assert len(list_queries(fake)) == 1
        assert prefetch_tasks() == []


async def test_slow_page_is_fetched_while_the_caller_works() -> None:
    async with FakeGtmhub(seed=1, latency=0.03) as fake:
        fake.add_kpis(300)
        async with fake.client(rate_limit=None) as client:
            loop = asyncio.get_running_loop()
            asked_for_next_page: list[float] = []
            async for i, _ in aenumerate(client.kpis.list(page_size=100)):
                if i % 100 == 99:
                    await asyncio.sleep(0.03)  # the caller's slow work on the page
                    asked_for_next_page.append(loop.time())
            arrivals = [r.time for r in fake.requests]
    assert len(arrivals) == 3
    # Each following page reached the server before the caller was done with the last.
    assert arrivals[1] < asked_for_next_page[0]
    assert arrivals[2] < asked_for_next_page[1]


async def aenumerate(it: AsyncIterator[Kpi]) -> AsyncIterator[tuple[int, Kpi]]:
    i = 0
    async for kpi in it:
        yield i, kpi
        i += 1


async def test_shifting_data_yields_no_duplicates(
    fake: FakeGtmhub, client: GtmhubClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_kpis(300)
    original = set(fake.kpis)
    seen: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.pagination"):
        # Newest first: the KPIs added after the first page land before the walk's position.
        async for kpi in client.kpis.list(sort="-_id", page_size=100, prefetch=0):
            seen.append(kpi.id)
            if len(seen) == 100:
                fake.add_kpis(7)
            if len(seen) == 150:
                for kpi_id in sorted(fake.kpis)[:3]:
                    fake.kpis.pop(kpi_id)
    assert len(seen) == len(set(seen))
    assert set(seen) >= original - set(sorted(original)[:3])
    messages = [r.getMessage() for r in caplog.records]
    assert any("changed from 300 to 307" in m for m in messages)


async def test_duplicates_from_a_shift_are_dropped_and_max_items_still_reached(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    seen: list[str] = []
    async for kpi in client.kpis.list(sort="-_id", page_size=100, prefetch=0, max_items=200):
        seen.append(kpi.id)
        if len(seen) == 100:
            fake.add_kpis(5)
    assert len(seen) == len(set(seen)) == 200
    assert [(q["skip"], q["take"]) for q in list_queries(fake)] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "5"),
    ]


async def test_early_break_leaves_no_pending_task(fake: FakeGtmhub, client: GtmhubClient) -> None:
    fake.add_kpis(1000)
    async for _ in client.kpis.list(page_size=50, prefetch=4):
        await wait_for(lambda: len(prefetch_tasks()) == 4)
        break
    # The dropped iterator cancelled its fetches; they end on the next turns of the loop.
    await wait_for(lambda: prefetch_tasks() == [])


async def test_aclose_and_async_with_cancel_and_await_in_flight_pages(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(1000)
    it = client.kpis.list(page_size=50, prefetch=4)
    await anext(it)
    assert len(prefetch_tasks()) == 4
    await it.aclose()
    assert prefetch_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await anext(it)

    with pytest.raises(ZeroDivisionError):
        async with client.kpis.list(page_size=50, prefetch=2) as it:
            async for _ in it:
                _ = 1 / 0
    assert prefetch_tasks() == []


async def test_garbage_collected_iterator_cancels_its_fetches(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(1000)
    it = client.kpis.list(page_size=50, prefetch=3)
    await anext(it)
    tasks = prefetch_tasks()
    assert len(tasks) == 3
    del it
    gc.collect()
    await asyncio.wait(tasks, timeout=5)
    # Cancelled before they were sent: only the first page reached the server.
    assert all(t.cancelled() for t in tasks)
    assert [(q["skip"], q["take"]) for q in list_queries(fake)] == [("0", "50")]


async def test_failed_prefetch_that_is_never_awaited_is_not_reported(
    fake: FakeGtmhub, client: GtmhubClient
) -> None:
    fake.add_kpis(300)
    fake.script([None, 404])
    it = client.kpis.list(page_size=100)
    await anext(it)
    (task,) = prefetch_tasks()
    await asyncio.wait([task])
    # The prefetch failed (its page answered 404) and nobody awaited it.
    assert [r.status for r in fake.requests if r.path == "/v2/kpis"] == [200, 404]
    # asyncio logs "Task exception was never retrieved" when it collects a finished task
    # whose flag is still set; the client's deadline timer may keep the task alive past
    # this test, so the flag is read instead of waiting for the log (CPython's Task and
    # _asyncio.Task both expose it).
    assert task._log_traceback is False
    del it, task
    gc.collect()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"page_size": 0}, ValueError, "page_size must be between 1 and 500, got 0"),
        ({"page_size": MAX_PAGE_SIZE + 1}, ValueError, "page_size must be between 1 and 500"),
        ({"page_size": "10"}, TypeError, "page_size must be an int, got str"),
        ({"page_size": True}, TypeError, "page_size must be an int, got bool"),
        ({"max_items": -1}, ValueError, "max_items must be >= 0, got -1"),
        ({"max_items": 2.5}, TypeError, "max_items must be an int"),
        ({"prefetch": -1}, ValueError, "prefetch must be >= 0, got -1"),
        ({"start": -5}, ValueError, "start must be >= 0, got -5"),
        ({"sort": 3}, TypeError, "sort must be a str or a sequence of str"),
        ({"sort": "name,"}, ValueError, "sort must not be empty"),
        ({"fields": [1]}, TypeError, "fields must be a str or a sequence of str"),
        ({"filter": 42}, TypeError, "filter must be a mapping or a str, got int"),
    ],
)
def test_arguments_are_checked_before_any_request(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    # The client is not even open: the check happens when list() is called.
    c = GtmhubClient("token", "5be26318e5274a0007f17f61")
    with pytest.raises(error, match=message.replace("(", r"\(")):
        c.kpis.list(**kwargs)


class _StubKpis:
    """Serve synthetic pages of ``n`` KPIs, as ``client.kpis.list_page`` would."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.alive: weakref.WeakSet[Kpi] = weakref.WeakSet()
        self.calls = 0

    async def list_page(self, *, skip: int, take: int, **_: Any) -> KpiPage:
        self.calls += 1
        await asyncio.sleep(0)
        items = [Kpi(id=f"{i:024x}") for i in range(skip, min(skip + take, self.n))]
        self.alive.update(items)
        return KpiPage(items=items, total_count=self.n)


class _StubSession:
    """Stands for the client's Session: every call is a ``kpis.list_page``."""

    def __init__(self, kpis: _StubKpis) -> None:
        self.kpis = kpis

    async def call(self, route: object, params: ListKpisPage) -> KpiPage:
        assert route is LIST_KPIS_PAGE
        return await self.kpis.list_page(skip=params.skip, take=params.take)


class _StubClient:
    def __init__(self, n: int) -> None:
        self.kpis = _StubKpis(n)
        self._session = _StubSession(self.kpis)

    def open_session(self) -> _StubSession:
        return self._session


async def test_walking_100000_kpis_keeps_only_a_few_pages_alive() -> None:
    stub = _StubClient(100_000)
    page_size, prefetch = 500, 2
    it = KpiIterator(stub, page_size=page_size, prefetch=prefetch)  # type: ignore[arg-type]
    count = 0
    most_alive = 0
    async for kpi in it:
        assert int(kpi.id, 16) == count
        count += 1
        if count % 250 == 0:
            most_alive = max(most_alive, len(stub.kpis.alive))
    assert count == 100_000
    assert stub.kpis.calls == 200
    # The page being read, the pages fetched ahead, and one page being built.
    assert most_alive <= (prefetch + 2) * page_size
    assert len(it._walk._recent) == 2
