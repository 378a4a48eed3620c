"""RedisRateLimit: the configuration of a rate budget shared through Redis."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gtmhub_async._validate import check_positive
from gtmhub_async.adaptive import ADAPTIVE
from gtmhub_async.redis_limits.limiter import RedisLimiter

__all__ = ["DEFAULT_PREFIX", "OnRedisError", "RedisRateLimit", "RedisUrl"]

OnRedisError = Literal["raise", "local"]

#: The default prefix of every key the limiter writes.
DEFAULT_PREFIX: Final = "gtmhub_async:rate"


@attrs.frozen
class RedisUrl:
    """A Redis URL from which each limiter opens (and closes) its own client."""

    url: str
    client_kwargs: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"url must be a str, got {type(self.url).__name__}")
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "url must start with redis://, rediss:// or unix://, "
                f"got {self.url.split(':')[0]!r}"
            )


class RedisRateLimit:
    """At most ``max_rate`` requests start in any ``time_period``, over every worker of a key.

    ``redis`` is a ``redis.asyncio.Redis`` (or ``RedisCluster``) client, which
    the limiter never closes; or use ``RedisRateLimit.from_url``, whose
    limiters create and close their own. Give it short socket timeouts and no
    retries: a limiter must fail fast, not hang (each call is also cut off
    after ``redis_timeout``). ``slack`` is the pacing headroom added to every
    ``time_period`` (default ``max(2% of time_period, 15 ms)``, as the local
    limiter); raise it when the jitter between workers and the API is larger.
    The algorithm and its reasoning: docs/design.md, "Redis limiter".
    """

    __slots__ = (
        "_client_kwargs",
        "_redis",
        "_url",
        "expected_workers",
        "floor",
        "idle_ttl",
        "key",
        "max_rate",
        "on_redis_error",
        "prefix",
        "probe_interval",
        "redis_timeout",
        "slack",
        "time_period",
    )

    max_rate: float
    time_period: float
    key: str | None
    prefix: str
    on_redis_error: OnRedisError
    expected_workers: int
    redis_timeout: float
    idle_ttl: float
    probe_interval: float
    slack: float
    floor: float  #: The lowest rate the adaptive rules drop to.

    def __init__(
        self,
        redis: Redis | RedisCluster | RedisUrl,
        max_rate: float,
        time_period: float = 1.0,
        *,
        key: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        on_redis_error: OnRedisError = "raise",
        expected_workers: int = 1,
        redis_timeout: float = 0.5,
        idle_ttl: float = 60.0,
        probe_interval: float = 1.0,
        slack: float | None = None,
    ) -> None:
        if isinstance(redis, RedisUrl):
            self._redis: Redis | RedisCluster | None = None
            self._url: str | None = redis.url
            self._client_kwargs: dict[str, Any] = dict(redis.client_kwargs)
        elif isinstance(redis, Redis | RedisCluster):
            self._redis = redis
            self._url = None
            self._client_kwargs = {}
        else:
            raise TypeError(
                "redis must be a redis.asyncio.Redis or RedisCluster client, got "
                f"{type(redis).__module__}.{type(redis).__qualname__} (a synchronous "
                "redis.Redis cannot be awaited; use RedisRateLimit.from_url for a URL)"
            )
        self.max_rate = check_positive("max_rate", max_rate)
        self.time_period = check_positive("time_period", time_period)
        if key is not None and (not isinstance(key, str) or not key):
            raise TypeError(f"key must be a non-empty str or None, got {key!r}")
        if not isinstance(prefix, str) or not prefix:
            raise TypeError(f"prefix must be a non-empty str, got {prefix!r}")
        if on_redis_error not in ("raise", "local"):
            raise ValueError(f"on_redis_error must be 'raise' or 'local', got {on_redis_error!r}")
        self.key = key
        self.prefix = prefix
        self.on_redis_error = on_redis_error
        self.expected_workers = int(
            check_positive("expected_workers", expected_workers, integer=True)
        )
        self.redis_timeout = check_positive("redis_timeout", redis_timeout)
        self.idle_ttl = check_positive("idle_ttl", idle_ttl)
        self.probe_interval = check_positive("probe_interval", probe_interval)
        # The shared parameter set gives the defaults: slack = max(2% of
        # time_period, 15 ms), floor = 1% of max_rate (at least 1, at most max_rate).
        self.floor = ADAPTIVE.floor(self.max_rate)
        if slack is None:
            slack = ADAPTIVE.slack(self.time_period)
        self.slack = check_positive("slack", slack)
        if self.idle_ttl < self.time_period + self.slack:
            raise ValueError(
                f"idle_ttl must be at least time_period + slack "
                f"({self.time_period + self.slack:g} s), got {idle_ttl!r}"
            )

    @classmethod
    def from_url(
        cls,
        url: str,
        max_rate: float,
        time_period: float = 1.0,
        *,
        key: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        on_redis_error: OnRedisError = "raise",
        expected_workers: int = 1,
        redis_timeout: float = 0.5,
        idle_ttl: float = 60.0,
        probe_interval: float = 1.0,
        slack: float | None = None,
        **redis_kwargs: Any,
    ) -> RedisRateLimit:
        """Return a limit whose limiters each open (and close) their own client for ``url``."""
        # The same keywords as __init__, forwarded one by one so that the signature
        # stays explicit for users and type checkers (duplicates: explained here).
        return cls(
            RedisUrl(url, redis_kwargs),
            max_rate,
            time_period,
            key=key,
            prefix=prefix,
            on_redis_error=on_redis_error,
            expected_workers=expected_workers,
            redis_timeout=redis_timeout,
            idle_ttl=idle_ttl,
            probe_interval=probe_interval,
            slack=slack,
        )

    def __repr__(self) -> str:
        where = self._url if self._url is not None else type(self._redis).__name__
        return (
            f"RedisRateLimit({where}, max_rate={self.max_rate:g}, "
            f"time_period={self.time_period:g}, on_redis_error={self.on_redis_error!r})"
        )

    def redis_key(self, key: str) -> str:
        """Return the Redis key of the budget that ``open(key=key)`` shares."""
        name = self.key or hashlib.sha256(key.encode()).hexdigest()[:32]
        # Braces: a hash tag, so the one key maps to one slot in Redis Cluster too.
        return f"{self.prefix}:{{{name}}}"

    def open(self, *, key: str) -> RedisLimiter:
        """Return a limiter bound to the running loop; raise RuntimeError outside one."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        loop = asyncio.get_running_loop()
        if self._redis is not None:
            return RedisLimiter(self, self._redis, owns_client=False, key=key, loop=loop)
        assert self._url is not None
        kwargs: dict[str, Any] = {
            "socket_timeout": self.redis_timeout,
            "socket_connect_timeout": self.redis_timeout,
            # The limiter decides what a failure means; redis-py must not retry it.
            "retry": Retry(NoBackoff(), 0),
        }
        kwargs.update(self._client_kwargs)
        client = Redis.from_url(self._url, **kwargs)
        return RedisLimiter(self, client, owns_client=True, key=key, loop=loop)
