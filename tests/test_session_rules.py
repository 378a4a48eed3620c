"""The session's rules around a limiter, the deadline and the retry quota, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from test_session import (  # tests/ on sys.path
    ANY,
    BASE,
    KPI,
    KPI_ID,
    SNAPSHOT,
    client,
    snapshot,
)

from gtmhub_async import (
    BadRequestError,
    DeadlineExceededError,
    GtmhubClient,
    GtmhubError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.limits import Limiter
from gtmhub_async.routes import CREATE_SNAPSHOT
from gtmhub_async.session import CallState, ClientStats
from gtmhub_async.testing.simulator import run_virtual as run


class RecordingLimiter:
    """A limiter that lets everything through and writes down what the session told it."""

    def __init__(self, events: list[object], hold: asyncio.Event | None = None) -> None:
        self.events = events
        self.hold = hold

    async def acquire(self) -> None:
        """Record the acquire."""
        self.events.append("acquire")

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Record the answer; wait on ``hold`` when one is given."""
        self.events.append((status, retry_after))
        if self.hold is not None:
            await self.hold.wait()

    async def aclose(self) -> None:
        """Release nothing."""


class RecordingRate:
    """A LimiterFactory that opens one RecordingLimiter."""

    def __init__(self, events: list[object], hold: asyncio.Event | None = None) -> None:
        self.events = events
        self.hold = hold

    def open(self, *, key: str) -> Limiter:
        """Return the recording limiter."""
        return RecordingLimiter(self.events, self.hold)


def answers(events: list[object], *results: CallbackResult) -> Callable[..., Any]:
    queue = list(results)

    async def answer(url: Any, **kwargs: Any) -> CallbackResult:
        events.append("sent")
        return queue.pop(0)

    return answer


async def test_every_attempt_waits_for_the_limiter_and_reports_its_answer() -> None:
    events: list[object] = []
    with aioresponses() as mocked:
        mocked.add(
            ANY,
            "GET",
            repeat=True,
            callback=answers(
                events,
                CallbackResult(status=429, headers={"Retry-After": "2"}),
                CallbackResult(status=503, headers={"Retry-After": "1"}),
                CallbackResult(status=500),
                CallbackResult(status=200, body=KPI),
            ),
        )
        async with client(rate_limit=RecordingRate(events)) as c:
            await c.kpis.get(KPI_ID)
            stats = c.stats
    assert events == [
        *("acquire", "sent", (429, 2.0)),
        *("acquire", "sent", (503, 1.0)),
        *("acquire", "sent", (500, None)),
        *("acquire", "sent", (200, None)),
    ]
    assert stats == ClientStats(
        calls=1, attempts=4, retries=3, throttled=1, server_errors=2, transport_errors=0
    )


async def test_with_a_limiter_the_session_leaves_the_retry_after_wait_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("gtmhub_async.session.asyncio.sleep", fake_sleep)
    for rate in (RecordingRate([]), None):
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=429, headers={"Retry-After": "3"})
            mocked.add(ANY, "GET", status=503, headers={"Retry-After": "2"})
            mocked.add(ANY, "GET", status=200, body=KPI)
            async with client(rate_limit=rate) as c:
                await c.kpis.get(KPI_ID)
        # With a limiter its shared gate waits; without one the session does, once each.
        assert slept == ([] if rate is not None else [3.0, 2.0])


def test_a_deadline_during_the_backoff_after_a_429_is_not_an_unknown_outcome() -> None:
    policy = RetryPolicy(backoff_base=100.0, backoff_max=100.0)

    async def main() -> tuple[GtmhubError, bool, float]:
        loop = asyncio.get_running_loop()
        with aioresponses() as mocked:
            mocked.add(ANY, "POST", status=429, repeat=True)
            async with client(retry=policy) as c:
                start = loop.time()
                state = CallState()
                params = CREATE_SNAPSHOT.params(KPI_ID, snapshot(), timeout=5.0)
                try:
                    await c.open_session().call(CREATE_SNAPSHOT, params, state=state)
                except GtmhubError as exc:
                    return exc, state.in_flight, loop.time() - start
        raise AssertionError("the call succeeded")

    error, in_flight, elapsed = run(main)
    assert type(error) is DeadlineExceededError
    assert str(error) == (
        f"POST /v1/kpis/{KPI_ID}/snapshots did not complete within its time budget "
        "of 5 s (1 attempt)"
    )
    assert error.attempts == 1
    assert in_flight is False
    assert elapsed == pytest.approx(5.0, abs=0.01)


def test_a_deadline_while_the_limiter_hears_of_an_applied_post_is_an_unknown_outcome() -> None:
    async def main() -> tuple[GtmhubError, bool, list[object]]:
        events: list[object] = []
        with aioresponses() as mocked:
            mocked.add(ANY, "POST", status=201, body=SNAPSHOT)
            rate = RecordingRate(events, hold=asyncio.Event())
            async with client(rate_limit=rate) as c:
                state = CallState()
                params = CREATE_SNAPSHOT.params(KPI_ID, snapshot(), timeout=2.0)
                try:
                    await c.open_session().call(CREATE_SNAPSHOT, params, state=state)
                except GtmhubError as exc:
                    return exc, state.in_flight, events
        raise AssertionError("the call succeeded")

    error, in_flight, events = run(main)
    # The server applied it; the call did not hear so in time: the caller must not resend.
    assert type(error) is UnknownOutcomeError
    assert "time budget ran out after 2 s while the request was in flight" in str(error)
    assert error.attempts == 1
    assert error.url == f"{BASE}/v1/kpis/{KPI_ID}/snapshots"
    assert in_flight
    assert events == ["acquire", (201, None)]


@pytest.mark.parametrize(
    ("failure", "retries"),
    [
        (TimeoutError(), 50),
        (aiohttp.ConnectionTimeoutError(), 50),
        (aiohttp.ServerDisconnectedError(), 100),
    ],
    ids=["read-timeout", "connect-timeout", "disconnect"],
)
async def test_a_timed_out_attempt_costs_twice_the_retry_quota(
    failure: Exception, retries: int
) -> None:
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", exception=failure, repeat=True)
        async with client(retry=RetryPolicy(max_attempts=4, backoff_base=0.0)) as c:
            for _ in range(60):
                with pytest.raises(TransportError, match="failed after"):
                    await c.kpis.get(KPI_ID)
            # 60 calls would like 3 retries each; the quota of 500 holds 500 / 10 after
            # timeouts, 500 / 5 after other failures.
            assert c.stats.retries == retries
            assert c.stats.attempts == 60 + retries
            assert c.stats.transport_errors == 60 + retries


async def test_a_success_gives_back_what_its_retries_cost_or_one_token() -> None:
    def available(c: GtmhubClient) -> int:
        session = c._session_obj
        assert session is not None
        return session._quota.available

    with aioresponses() as mocked:
        for _ in range(4):
            mocked.add(ANY, "GET", status=500)
        mocked.add(ANY, "GET", status=200, body=KPI)
        mocked.add(ANY, "GET", status=500)
        mocked.add(ANY, "GET", status=502)
        mocked.add(ANY, "GET", status=200, body=KPI)
        mocked.add(ANY, "GET", status=400)
        async with client() as c:
            with pytest.raises(ServerError):
                await c.kpis.get(KPI_ID)
            seen = [available(c)]
            await c.kpis.get(KPI_ID)
            seen.append(available(c))
            await c.kpis.get(KPI_ID)
            seen.append(available(c))
            with pytest.raises(BadRequestError):
                await c.kpis.get(KPI_ID)
            seen.append(available(c))
    # A 400 is no success: it gives nothing back.
    assert seen == [485, 486, 486, 486]


def test_each_attempt_may_wait_for_a_connection_only_within_the_time_left() -> None:
    async def main() -> list[aiohttp.ClientTimeout]:
        timeouts: list[aiohttp.ClientTimeout] = []

        async def answer(url: Any, **kwargs: Any) -> CallbackResult:
            timeouts.append(kwargs["timeout"])
            await asyncio.sleep(1.0)
            return CallbackResult(status=503)

        with aioresponses() as mocked:
            mocked.add(ANY, "GET", callback=answer, repeat=True)
            async with client() as c:
                await asyncio.gather(
                    *(c.kpis.get(KPI_ID, timeout=t) for t in (30.0, 2.5)),
                    return_exceptions=True,
                )
        return timeouts

    timeouts = run(main)
    assert {t.total for t in timeouts} == {None}
    connects = sorted(t.connect or 0.0 for t in timeouts)
    # 30 s call: 10 s at most per attempt; 2.5 s call: 2.5 s, then 1.5 s after a 1 s answer.
    expected = [0.5, 1.5, 2.5, 10.0, 10.0, 10.0, 10.0]
    assert connects == pytest.approx(expected, abs=0.01)


async def test_each_failure_says_what_failed_after_how_many_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="gtmhub_async")
    path = f"/v1/kpis/{KPI_ID}"
    two = RetryPolicy(max_attempts=2, backoff_base=0.0)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", exception=aiohttp.ServerDisconnectedError(), repeat=True)
        async with client(retry=two) as c:
            with pytest.raises(TransportError) as disconnected:
                await c.kpis.get(KPI_ID)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", exception=TimeoutError(), repeat=True)
        async with client(retry=RetryPolicy(max_attempts=1)) as c:
            with pytest.raises(TransportError) as timed_out:
                await c.kpis.get(KPI_ID)
    with aioresponses() as mocked:
        mocked.add(ANY, "POST", status=500, body=b'{"message": "oops"}')
        async with client() as c:
            with pytest.raises(UnknownOutcomeError) as unknown:
                await c.kpis.create_snapshot(KPI_ID, snapshot())
    assert str(disconnected.value) == (
        f"GET {path} failed after 2 attempts: ServerDisconnectedError: Server disconnected"
    )
    assert disconnected.value.attempts == 2
    assert str(timed_out.value) == f"GET {path} failed after 1 attempt: TimeoutError: TimeoutError"
    assert (timed_out.value.method, timed_out.value.url) == ("GET", BASE + path)
    assert str(unknown.value) == (
        f"POST {path}/snapshots may have been applied: the server answered 500. It was not "
        "sent again, because sending it twice could apply it twice; check the server "
        "before retrying it yourself"
    )
    assert (unknown.value.method, unknown.value.url) == ("POST", f"{BASE}{path}/snapshots")
    cause = unknown.value.response_error
    assert cause is unknown.value.__cause__
    assert isinstance(cause, ServerError) and str(cause) == (
        f"HTTP 500 (POST {BASE}{path}/snapshots): oops"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"retrying GET {path} (attempt 2 of 2) in 0.00 s"
    ]


def test_a_deadline_after_two_attempts_counts_both() -> None:
    async def main() -> DeadlineExceededError:
        async def stall(url: Any, **kwargs: Any) -> CallbackResult:
            await asyncio.sleep(100.0)
            raise AssertionError("unreachable")

        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=503)
            mocked.add(ANY, "GET", callback=stall)
            async with client() as c:
                with pytest.raises(DeadlineExceededError) as info:
                    await c.kpis.get(KPI_ID, timeout=3.0)
        return info.value

    error = run(main)
    assert str(error) == (
        f"GET /v1/kpis/{KPI_ID} did not complete within its time budget of 3 s (2 attempts)"
    )
    assert error.attempts == 2
    assert (error.method, error.url) == ("GET", f"{BASE}/v1/kpis/{KPI_ID}")


async def test_a_retry_after_as_long_as_the_cap_is_waited_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("gtmhub_async.session.asyncio.sleep", fake_sleep)
    policy = RetryPolicy(max_retry_after=5.0, backoff_base=0.0)
    with aioresponses() as mocked:
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": "5"})
        mocked.add(ANY, "GET", status=429, headers={"Retry-After": "6"}, body=b'{"message": "no"}')
        async with client(retry=policy, timeout=30.0) as c:
            with pytest.raises(RateLimitError) as info:
                await c.kpis.get(KPI_ID)
    assert slept == [5.0]
    assert str(info.value) == (
        f"HTTP 429 (GET {BASE}/v1/kpis/{KPI_ID}): no (Retry-After 6 s is longer than the "
        "5 s this call may still wait)"
    )
    assert info.value.attempts == 2


def test_a_retry_after_past_the_deadline_names_the_time_left() -> None:
    async def main() -> RateLimitError:
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=429, headers={"Retry-After": "20"}, body=b"{}")
            async with client(timeout=10.0) as c:
                with pytest.raises(RateLimitError) as info:
                    await c.kpis.get(KPI_ID)
        return info.value

    error = run(main)
    assert str(error).endswith(
        "(Retry-After 20 s is longer than the 10 s this call may still wait)"
    )


def test_a_fresh_call_state_has_no_request_in_flight() -> None:
    assert CallState() == CallState(attempt=0, spent=0, in_flight=False)


def test_a_retry_after_of_exactly_the_time_left_is_waited_until_the_deadline() -> None:
    async def main() -> GtmhubError:
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=429, headers={"Retry-After": "10"})
            async with client(timeout=10.0) as c:
                with pytest.raises(GtmhubError) as info:
                    await c.kpis.get(KPI_ID)
        return info.value

    # Virtual time stands still until the loop idles: exactly 10 s are left at the 429.
    error = run(main)
    assert type(error) is DeadlineExceededError
    assert str(error).endswith("within its time budget of 10 s (1 attempt)")


async def test_every_throttle_and_server_error_is_counted() -> None:
    with aioresponses() as mocked:
        for status in (429, 429, 503, 500):
            mocked.add(ANY, "GET", status=status, headers={"Retry-After": "0"})
        mocked.add(ANY, "GET", status=200, body=KPI, repeat=True)
        async with client(retry=RetryPolicy(max_attempts=5, backoff_base=0.0)) as c:
            await c.kpis.get(KPI_ID)
            await c.kpis.get(KPI_ID)
            stats = c.stats
    assert stats == ClientStats(
        calls=2, attempts=6, retries=4, throttled=2, server_errors=2, transport_errors=0
    )


class _ClosedLimiter(RecordingLimiter):
    """A limiter whose gate never opens."""

    async def acquire(self) -> None:
        """Wait forever."""
        self.events.append("acquire")
        await asyncio.Event().wait()


class _ClosedRate(RecordingRate):
    def open(self, *, key: str) -> Limiter:
        """Return a limiter that never lets a request start."""
        return _ClosedLimiter(self.events)


def test_a_post_whose_deadline_ends_in_the_limiter_was_never_sent() -> None:
    async def main() -> tuple[GtmhubError, GtmhubError, CallState]:
        with aioresponses():
            async with client(rate_limit=_ClosedRate([])) as c:
                with pytest.raises(GtmhubError) as plain:
                    await c.kpis.create_snapshot(KPI_ID, snapshot(), timeout=1.0)
                state = CallState()
                params = CREATE_SNAPSHOT.params(KPI_ID, snapshot(), timeout=1.0)
                with pytest.raises(GtmhubError) as stated:
                    await c.open_session().call(CREATE_SNAPSHOT, params, state=state)
        return plain.value, stated.value, state

    plain, stated, state = run(main)
    for error in (plain, stated):
        assert type(error) is DeadlineExceededError
        assert str(error) == (
            f"POST /v1/kpis/{KPI_ID}/snapshots did not complete within its time budget "
            "of 1 s (0 attempts)"
        )
        assert error.attempts == 0
    assert state == CallState(attempt=0, spent=0, in_flight=False)


@pytest.mark.parametrize(
    ("limited", "last"), [(False, "7"), (True, "7"), (False, "70"), (True, "70")]
)
def test_retry_after_is_parsed_once_per_answer_and_the_final_error_carries_it(
    monkeypatch: pytest.MonkeyPatch, limited: bool, last: str
) -> None:
    # "7": the last attempt's answer ends the call; "70": longer than the call may wait,
    # so the retry decision itself raises.
    import gtmhub_async.session
    import gtmhub_async.wire

    parsed: list[str | None] = []
    real = gtmhub_async.wire.parse_retry_after

    def counting(value: str | None, **kwargs: Any) -> float | None:
        parsed.append(value)
        return real(value, **kwargs)

    monkeypatch.setattr(gtmhub_async.session, "parse_retry_after", counting)
    monkeypatch.setattr(gtmhub_async.wire, "parse_retry_after", counting)
    policy = RetryPolicy(max_attempts=2 if last == "7" else 3, backoff_base=0.0)
    rate = RecordingRate([]) if limited else None

    async def main() -> RateLimitError:
        with aioresponses() as mocked:
            mocked.add(ANY, "GET", status=429, headers={"Retry-After": "0"})
            mocked.add(ANY, "GET", status=429, headers={"Retry-After": last}, body=b"{}")
            async with client(retry=policy, rate_limit=rate) as c:
                with pytest.raises(RateLimitError) as info:
                    await c.kpis.get(KPI_ID)
        return info.value

    error = run(main)
    assert parsed == ["0", last]  # one parse per answer, none again for the error
    assert error.retry_after == float(last)
    assert error.attempts == 2
