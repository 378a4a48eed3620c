"""The fallback states of a Redis limiter: on Redis, or local until Redis answers again."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from gtmhub_async.errors import RateLimiterUnavailableError
from gtmhub_async.limits import Limiter, RateLimit
from gtmhub_async.redis_limits.script import Unavailable

if TYPE_CHECKING:
    from gtmhub_async.redis_limits.config import RedisRateLimit

__all__ = ["Outage"]

logger = logging.getLogger("gtmhub_async.redis_limits")


class Outage:
    """Track whether a worker runs on a local limit, and make each switch safe.

    The switches are made safe by quiet spells of ``span`` (``time_period + slack``):
    no window holds both starts Redis allowed and local ones (docs/design.md).
    """

    def __init__(
        self,
        config: RedisRateLimit,
        *,
        redis_key: str,
        open_key: str,
        loop: asyncio.AbstractEventLoop,
        span: float,
    ) -> None:
        self._config = config
        self._redis_key = redis_key
        self._open_key = open_key
        self._loop = loop
        self._span = span
        self._fallback: Limiter | None = None
        #: True while the worker runs on its local limit.
        self.local = False
        self._quiet_until = -math.inf
        self._next_probe = -math.inf
        self._last_local_start = -math.inf
        self._warned = False
        #: How many times the worker fell back to its local limit.
        self.fallbacks = 0
        #: Starts the local limit allowed.
        self.acquired_locally = 0

    def stays_local(self, now: float) -> bool:
        """Tell whether the next start is local (True) or goes to Redis, as a probe if local."""
        if self.local and now < self._next_probe:
            return True
        if self.local:
            self._next_probe = now + self._config.probe_interval
        return False

    async def acquire_local(self) -> None:
        """Wait for a start from the local limit of ``max_rate / expected_workers``."""
        config = self._config
        if self._fallback is None:
            self._fallback = RateLimit(
                config.max_rate / config.expected_workers, config.time_period
            ).open(key=self._open_key)
        quiet = self._quiet_until - self._loop.time()
        if quiet > 0:
            await asyncio.sleep(quiet)
        await self._fallback.acquire()
        self._last_local_start = self._loop.time()
        self.acquired_locally += 1

    def fail(self, exc: Unavailable) -> None:
        """Raise RateLimiterUnavailableError, or fall back to the local limit ("local")."""
        config = self._config
        if config.on_redis_error == "raise":
            raise RateLimiterUnavailableError(
                f"the shared rate limit in Redis ({self._redis_key}) is unavailable: {exc}. "
                "No request was sent; on_redis_error='local' would fall back to a local "
                "limit instead"
            ) from exc.__cause__
        if self.local:
            return  # a failed probe: stay local
        self.local = True
        self.fallbacks += 1
        now = self._loop.time()
        # No window may hold both starts Redis allowed (all confirmed by now) and local ones.
        self._quiet_until = now + self._span
        self._next_probe = now + config.probe_interval
        if not self._warned:
            self._warned = True
            logger.warning(
                "the shared rate limit in Redis (%s) is unavailable (%s): falling back to a "
                "local limit of %g requests per %g s until it answers again",
                self._redis_key,
                exc,
                config.max_rate / config.expected_workers,
                config.time_period,
            )

    async def quiet_before_rejoin(self) -> None:
        """Wait until no window can hold both local starts and Redis ones."""
        quiet = self._last_local_start + self._span - self._loop.time()
        if quiet > 0:
            await asyncio.sleep(quiet)

    def rejoined(self) -> None:
        """Note that Redis answers again."""
        self.local = False
        logger.warning("Redis answers again: the shared rate limit %s is back", self._redis_key)

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Tell the local limit of an answer, once it exists."""
        if self._fallback is not None:
            await self._fallback.on_response(status, retry_after)

    async def aclose(self) -> None:
        """Close the local limit, once it exists."""
        if self._fallback is not None:
            await self._fallback.aclose()
