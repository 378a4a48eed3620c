"""RetryPolicy and RetryQuota on their own: the exact schedule, the rules, the budget."""

from __future__ import annotations

import random

import pytest

from gtmhub_async.retry import RetryPolicy, RetryQuota


class _Top(random.Random):
    """An RNG whose uniform() always returns its upper bound: backoff() shows its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        assert a == 0.0
        return b


def test_the_defaults_are_four_attempts_half_a_second_doubling_to_twenty() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.backoff_base, policy.backoff_max) == (4, 0.5, 20.0)
    assert policy.max_retry_after == 60.0
    assert policy.retry_statuses == frozenset({429, 500, 502, 503, 504})


def test_the_backoff_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=20.0)
    ceilings = [policy.backoff(attempt, _Top()) for attempt in range(1, 9)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_the_backoff_is_full_jitter_drawn_once_per_retry_from_the_given_rng() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=3.0)
    drawn = [policy.backoff(attempt, random.Random(42)) for attempt in (1, 2, 3, 4)]
    # uniform(0, c) is c * random(): the same seed gives the same fraction of each ceiling.
    fraction = random.Random(42).random()
    assert drawn == [fraction * 1.0, fraction * 2.0, fraction * 3.0, fraction * 3.0]
    rng = random.Random(7)
    twice = [policy.backoff(2, rng), policy.backoff(2, rng)]
    expected = random.Random(7)
    assert twice == [2.0 * expected.random(), 2.0 * expected.random()]
    assert twice[0] != twice[1]


def test_a_zero_base_never_waits() -> None:
    policy = RetryPolicy(backoff_base=0.0)
    assert [policy.backoff(a, _Top()) for a in (1, 2, 5)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_read_is_retried_after_every_retry_status(status: int) -> None:
    assert RetryPolicy().retries_status(status, idempotent=True, retry_after=None)


@pytest.mark.parametrize("status", [200, 400, 401, 404, 409, 501, 505])
def test_other_statuses_are_never_retried(status: int) -> None:
    policy = RetryPolicy()
    assert not policy.retries_status(status, idempotent=True, retry_after=1.0)
    assert not policy.retries_status(status, idempotent=False, retry_after=1.0)


def test_a_write_is_retried_only_when_the_server_refused_it_before_acting() -> None:
    policy = RetryPolicy()
    assert policy.retries_status(429, idempotent=False, retry_after=None)
    assert policy.retries_status(503, idempotent=False, retry_after=2.0)
    assert policy.retries_status(503, idempotent=False, retry_after=0.0)
    assert not policy.retries_status(503, idempotent=False, retry_after=None)
    for status in (500, 502, 504):
        assert not policy.retries_status(status, idempotent=False, retry_after=1.0)


def test_retry_statuses_can_be_narrowed() -> None:
    policy = RetryPolicy(retry_statuses=[503])
    assert policy.retry_statuses == frozenset({503})
    assert not policy.retries_status(429, idempotent=True, retry_after=None)
    assert not policy.retries_status(429, idempotent=False, retry_after=None)


@pytest.mark.parametrize("name", ["backoff_base", "backoff_max", "max_retry_after"])
def test_the_delays_must_be_non_negative_numbers(name: str) -> None:
    assert getattr(RetryPolicy(**{name: 0}), name) == 0
    with pytest.raises(ValueError, match=rf"^{name} must not be negative, got -0.5$"):
        RetryPolicy(**{name: -0.5})
    with pytest.raises(TypeError, match=rf"^{name} must be a number, got str$"):
        RetryPolicy(**{name: "1"})
    with pytest.raises(TypeError, match=rf"^{name} must be a number, got bool$"):
        RetryPolicy(**{name: True})


def test_max_attempts_must_be_a_positive_int() -> None:
    assert RetryPolicy(max_attempts=1).max_attempts == 1
    with pytest.raises(ValueError, match=r"^max_attempts must be at least 1, got 0$"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(TypeError, match=r"^max_attempts must be an int, got float$"):
        RetryPolicy(max_attempts=2.0)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(TypeError, match=r"^max_attempts must be an int, got bool$"):
        RetryPolicy(max_attempts=True)


def test_the_quota_is_botocores_standard_mode() -> None:
    quota = RetryQuota()
    assert (quota.capacity, quota.retry_cost, quota.timeout_cost) == (500, 5, 10)
    assert quota.available == 500
    assert quota.take(timed_out=False) == 5
    assert quota.available == 495
    assert quota.take(timed_out=True) == 10
    assert quota.available == 485


def test_the_quota_gives_the_last_tokens_and_then_refuses() -> None:
    quota = RetryQuota(capacity=15, retry_cost=5, timeout_cost=10)
    assert quota.take(timed_out=True) == 10
    assert quota.take(timed_out=False) == 5  # exactly what is left
    assert quota.available == 0
    assert quota.take(timed_out=False) == 0
    assert quota.available == 0
    quota.give_back()
    assert quota.available == 1
    quota.give_back(3)
    assert quota.available == 4
    assert quota.take(timed_out=False) == 0
    assert quota.available == 4
    quota.give_back(100)
    assert quota.available == 15
