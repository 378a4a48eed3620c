"""Rules of gtmhub_async.session that mutation testing found unchecked (see tests/MUTATION.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from test_session import ACCOUNT, ANY, KPI, KPI_ID, TOKEN, client  # tests/ on sys.path

from gtmhub_async import GtmhubClient, RateLimit, RetryPolicy
from gtmhub_async.limits import LocalLimiter
from gtmhub_async.testing.simulator import run_virtual as run


@pytest.mark.parametrize(
    ("base", "prefix"),
    [
        ("https://gw.example/tenantX/", "/tenantX"),
        ("https://gw.example/tenantX", "/tenantX"),
        ("https://gw.example/", ""),
        ("https://gw.example", ""),
    ],
)
async def test_a_base_url_path_is_kept_once_whatever_its_trailing_slash(
    base: str, prefix: str
) -> None:
    expected = f"https://gw.example{prefix}/v1/kpis/{KPI_ID}"
    with aioresponses() as mocked:
        mocked.get(expected, body=KPI)
        async with GtmhubClient(TOKEN, ACCOUNT, base_url=base, rate_limit=None) as c:
            kpi = await c.kpis.get(KPI_ID)
    assert kpi.id == KPI_ID
    ((method, url),) = mocked.requests
    assert (method, str(url)) == ("GET", expected)


async def test_a_quoted_base_url_path_is_sent_as_it_was_quoted_not_quoted_twice() -> None:
    seen: list[str] = []

    async def answer(url: Any, **kwargs: Any) -> CallbackResult:
        seen.append(str(url))
        return CallbackResult(status=200, body=KPI)

    with aioresponses() as mocked:
        mocked.add(ANY, "GET", callback=answer)
        async with GtmhubClient(
            TOKEN, ACCOUNT, base_url="https://gw.example/my%20tenant/", rate_limit=None
        ) as c:
            await c.kpis.get(KPI_ID)
    assert seen == [f"https://gw.example/my%20tenant/v1/kpis/{KPI_ID}"]


async def test_a_plain_local_limiter_is_asked_synchronously_not_through_acquire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(self: LocalLimiter) -> None:
        raise AssertionError("acquire() awaited although a slot was free")

    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=200, body=KPI, repeat=True)
        async with client(rate_limit=RateLimit(1000)) as c:
            # Patched after the client chose its path: the fast path must not reach it.
            monkeypatch.setattr(LocalLimiter, "acquire", refuse)
            for _ in range(3):
                await c.kpis.get(KPI_ID)
            assert c.stats.attempts == 3


def test_on_the_fast_path_a_503_retry_after_closes_the_gate_for_its_seconds() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=503, headers={"Retry-After": "2"})
            mocked.add(ANY, "GET", status=200, body=KPI)
            async with client(rate_limit=RateLimit(100), retry=RetryPolicy(backoff_base=0.0)) as c:
                start = loop.time()
                await c.kpis.get(KPI_ID)
                return loop.time() - start

    # The limiter's gate, not the session, waits the Retry-After out.
    assert run(main) == pytest.approx(2.0, abs=0.05)
