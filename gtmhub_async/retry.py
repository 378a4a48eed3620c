"""RetryPolicy: how often, and after what, a call may be sent again."""

from __future__ import annotations

import random
from typing import Any

import attrs

from gtmhub_async._validate import check_int, check_number
from gtmhub_async.adaptive import is_throttle

__all__ = ["RetryPolicy", "RetryQuota"]


def _non_negative(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if check_number(attribute.name, value) < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _attempts(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if check_int("max_attempts", value) < 1:
        raise ValueError(f"max_attempts must be at least 1, got {value}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Full-jitter exponential backoff with a per-client retry quota."""

    max_attempts: int = attrs.field(default=4, validator=_attempts)
    backoff_base: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=20.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}), converter=frozenset
    )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Return the full-jitter delay before retry number ``attempt`` (1 for the first)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return rng.uniform(0.0, ceiling)

    def retries_status(self, status: int, *, idempotent: bool, retry_after: float | None) -> bool:
        """Say whether an answer with ``status`` may be sent again.

        A write (POST) is resent only after a 429 or a 503 that carries Retry-After:
        both say the server refused the request before doing anything. After a 500,
        502 or 504 it may have been applied, and a resent snapshot would be summed twice.
        """
        if status not in self.retry_statuses:
            return False
        return idempotent or is_throttle(status, retry_after)


@attrs.define
class RetryQuota:
    """A retry budget shared by a client, so that an outage cannot become a retry storm.

    The numbers are botocore's standard mode: each retry costs 5 tokens (10 after a
    timeout), each success gives 1 back, and the bucket holds 500.
    """

    capacity: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10
    available: int = attrs.field()

    @available.default
    def _full(self) -> int:
        return self.capacity

    def take(self, *, timed_out: bool) -> int:
        """Take the cost of one retry and return it, or 0 when the quota is spent."""
        cost = self.timeout_cost if timed_out else self.retry_cost
        if cost > self.available:
            return 0
        self.available -= cost
        return cost

    def give_back(self, amount: int = 1) -> None:
        """Return tokens after a success."""
        self.available = min(self.capacity, self.available + amount)
