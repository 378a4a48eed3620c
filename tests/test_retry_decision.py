"""The retry decision on its own: every branch, with plain calls and no event loop."""

from __future__ import annotations

import random

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gtmhub_async.errors import (
    RateLimitError,
    ServerError,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.retry import RetryPolicy, RetryQuota
from gtmhub_async.retry_decision import (
    Attempt,
    CallState,
    Raise,
    Retry,
    Return,
    decide,
    unknown_outcome,
)
from gtmhub_async.transport import Answer, SendFailure
from gtmhub_async.wire import PreparedRequest

URL = "https://api.example/v1/kpis"


class _Top(random.Random):
    """An RNG whose uniform() returns its upper bound: a backoff shows its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def request(*, idempotent: bool) -> PreparedRequest:
    method = "GET" if idempotent else "POST"
    return PreparedRequest("kpis.x", method, "/v1/kpis", (), None, idempotent)


def answer(status: int, body: bytes = b"{}") -> Answer:
    return Answer(status, CIMultiDictProxy(CIMultiDict()), body)


def run(
    outcome: Answer | SendFailure,
    *,
    idempotent: bool = True,
    attempt: int = 1,
    retry_after: float | None = None,
    limiter_waits: bool = False,
    time_left: float = 30.0,
    policy: RetryPolicy | None = None,
    quota: RetryQuota | None = None,
    state: CallState | None = None,
) -> Retry | Return | Raise:
    state = state or CallState(attempt=attempt)
    return decide(
        outcome,
        Attempt(
            request=request(idempotent=idempotent),
            url=URL,
            retry_after=retry_after,
            limiter_waits=limiter_waits,
        ),
        state,
        policy or RetryPolicy(),
        quota or RetryQuota(),
        time_left=time_left,
        rng=_Top(),
    )


def never_sent() -> SendFailure:
    return SendFailure(ConnectionRefusedError("refused"), never_sent=True, timed_out=False)


def maybe_sent() -> SendFailure:
    return SendFailure(aiohttp.ServerDisconnectedError(), never_sent=False, timed_out=False)


@pytest.mark.parametrize("status", [200, 201, 204, 302])
def test_an_answer_under_400_is_returned_and_refunds_the_quota(status: int) -> None:
    quota = RetryQuota(available=100)
    state = CallState(attempt=2, spent=5)
    assert run(answer(status), quota=quota, state=state) == Return()
    assert quota.available == 105


def test_a_first_time_success_gives_back_one_token() -> None:
    quota = RetryQuota(available=100)
    assert run(answer(200), quota=quota) == Return()
    assert quota.available == 101


def test_a_4xx_that_is_not_retried_is_returned_for_the_parser() -> None:
    assert run(answer(404)) == Return()
    assert run(answer(400), idempotent=False) == Return()


def test_a_429_without_retry_after_backs_off_and_takes_quota() -> None:
    quota = RetryQuota(available=100)
    state = CallState(attempt=2)
    decision = run(answer(429), quota=quota, state=state)
    assert decision == Retry(1.0)  # the ceiling of the second retry: 0.5 * 2
    assert (quota.available, state.spent) == (95, 5)


def test_a_429_with_retry_after_waits_it_out_without_quota() -> None:
    quota = RetryQuota(available=100)
    assert run(answer(429), retry_after=3.0, quota=quota) == Retry(3.0)
    assert quota.available == 100


def test_with_a_limiter_the_retry_after_is_left_to_its_gate() -> None:
    assert run(answer(429), retry_after=3.0, limiter_waits=True) == Retry(0.0)


def test_a_retry_after_longer_than_the_limiters_gate_is_waited_out_here() -> None:
    # The gate closes for at most ADAPTIVE.max_gate (60 s): the rest must not be skipped.
    policy = RetryPolicy(max_retry_after=120.0)
    for retry_after, delay in ((90.0, 90.0), (60.0, 0.0)):
        decision = run(
            answer(429),
            retry_after=retry_after,
            limiter_waits=True,
            time_left=300.0,
            policy=policy,
        )
        assert decision == Retry(delay)


def test_a_post_is_resent_after_a_429_but_not_after_a_plain_503() -> None:
    assert run(answer(429), idempotent=False) == Retry(0.5)
    decision = run(answer(503), idempotent=False)
    assert isinstance(decision, Raise)
    assert type(decision.error) is UnknownOutcomeError
    assert str(decision.error) == (
        "POST /v1/kpis may have been applied: the server answered 503. It was not sent "
        "again, because sending it twice could apply it twice; check the server before "
        "retrying it yourself"
    )
    assert type(decision.cause) is ServerError
    assert decision.error.attempts == 1


def test_a_503_with_retry_after_is_resent_even_for_a_post() -> None:
    assert run(answer(503), idempotent=False, retry_after=2.0) == Retry(2.0)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_5xx_retry_a_get_and_make_a_post_unknown(status: int) -> None:
    assert run(answer(status)) == Retry(0.5)
    decision = run(answer(status), idempotent=False, attempt=3)
    assert isinstance(decision, Raise)
    assert type(decision.error) is UnknownOutcomeError
    assert f"the server answered {status}" in str(decision.error)
    assert decision.error.attempts == 3


def test_a_500_ignores_a_retry_after_and_backs_off() -> None:
    assert run(answer(500), retry_after=9.0) == Retry(0.5)


def test_the_last_attempt_returns_the_answer() -> None:
    policy = RetryPolicy(max_attempts=2)
    assert run(answer(429), attempt=2, policy=policy) == Return()
    assert run(answer(503), attempt=2, policy=policy, retry_after=1.0) == Return()


def test_a_spent_quota_returns_the_answer() -> None:
    quota = RetryQuota(available=4)
    assert run(answer(500), quota=quota) == Return()
    assert quota.available == 4


def test_a_retry_after_beyond_the_time_left_raises_the_answer_with_the_limit() -> None:
    decision = run(answer(429), retry_after=20.0, time_left=10.0)
    assert isinstance(decision, Raise)
    assert type(decision.error) is RateLimitError
    assert str(decision.error).endswith(
        "(Retry-After 20 s is longer than the 10 s this call may still wait)"
    )
    assert decision.cause is None


def test_a_retry_after_beyond_the_policy_maximum_raises() -> None:
    decision = run(answer(429), retry_after=61.0, time_left=100.0)
    assert isinstance(decision, Raise)
    assert str(decision.error).endswith(
        "(Retry-After 61 s is longer than the 60 s this call may still wait)"
    )


def test_a_retry_after_of_exactly_the_time_left_is_waited() -> None:
    assert run(answer(429), retry_after=10.0, time_left=10.0) == Retry(10.0)


def test_a_never_sent_failure_is_retried_even_for_a_post() -> None:
    quota = RetryQuota(available=100)
    assert run(never_sent(), idempotent=False, quota=quota) == Retry(0.5)
    assert quota.available == 95


def test_a_maybe_sent_failure_retries_a_get() -> None:
    assert run(maybe_sent()) == Retry(0.5)


def test_a_maybe_sent_failure_makes_a_post_unknown() -> None:
    failure = maybe_sent()
    decision = run(failure, idempotent=False, attempt=2)
    assert isinstance(decision, Raise)
    assert type(decision.error) is UnknownOutcomeError
    assert str(decision.error).startswith(
        "POST /v1/kpis may have been applied: the connection failed after the request "
        "was sent (Server disconnected)."
    )
    assert decision.cause is failure.cause
    assert decision.error.attempts == 2
    assert (decision.error.method, decision.error.url) == ("POST", URL)


def test_a_timed_out_attempt_costs_twice_the_quota() -> None:
    quota = RetryQuota(available=100)
    state = CallState(attempt=1)
    timed_out = SendFailure(TimeoutError(), never_sent=False, timed_out=True)
    assert run(timed_out, quota=quota, state=state) == Retry(0.5)
    assert (quota.available, state.spent) == (90, 10)


@pytest.mark.parametrize(("quota", "attempt"), [(RetryQuota(available=9), 1), (RetryQuota(), 4)])
def test_a_transport_failure_without_quota_or_attempts_left_raises(
    quota: RetryQuota, attempt: int
) -> None:
    timed_out = SendFailure(TimeoutError(), never_sent=True, timed_out=True)
    decision = run(timed_out, quota=quota, attempt=attempt)
    assert isinstance(decision, Raise)
    assert type(decision.error) is TransportError
    assert str(decision.error) == (
        f"GET /v1/kpis failed after {attempt} attempt{'s' if attempt != 1 else ''}: "
        "TimeoutError: TimeoutError"
    )
    assert decision.error.attempts == attempt
    assert decision.cause is timed_out.cause


def test_a_retry_that_costs_one_token_is_still_a_retry() -> None:
    quota = RetryQuota(retry_cost=1, available=1)
    assert run(answer(500), quota=quota) == Retry(0.5)
    assert quota.available == 0


def test_an_unknown_outcome_chains_the_answer_that_made_it_unknown() -> None:
    cause = ServerError(502, "bad gateway")
    error = unknown_outcome(request(idempotent=False), URL, 1, "the server answered 502", cause)
    assert error.__cause__ is cause
    assert error.response_error is cause
    assert (error.method, error.url, error.attempts) == ("POST", URL, 1)
