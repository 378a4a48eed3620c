"""A rate budget shared through Redis by every process that uses one Gtmhub account.

``RedisRateLimit`` is accepted wherever a ``RateLimit`` is, with the same guarantee
across every worker (process, host) on the same key: no more than ``max_rate``
requests start in any window of ``time_period`` seconds. Needs the ``redis`` extra.

Modules: ``config`` (``RedisRateLimit``), ``limiter`` (the slot protocol),
``outage`` (the local fallback), ``script`` (the Lua script, ``script.lua``).
The algorithm and its reasoning are in docs/design.md, "Redis limiter".
"""

from __future__ import annotations

from gtmhub_async.redis_limits.config import DEFAULT_PREFIX, OnRedisError, RedisRateLimit, RedisUrl
from gtmhub_async.redis_limits.limiter import RedisLimiter, RedisLimiterStats

__all__ = [
    "DEFAULT_PREFIX",
    "OnRedisError",
    "RedisLimiter",
    "RedisLimiterStats",
    "RedisRateLimit",
    "RedisUrl",
]
