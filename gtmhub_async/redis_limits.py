"""A rate budget shared through Redis by every process that uses one Gtmhub account.

``RedisRateLimit`` is accepted wherever a ``RateLimit`` is. Its guarantee is the
same, but across every worker (process, host) that uses the same key: no more
than ``max_rate`` requests start in any window of ``time_period`` seconds.

**Algorithm: a start schedule (GCRA with zero burst tolerance) in one Lua script.**
Redis keeps ``tat``, the next free start slot. Each acquire runs one script,
atomically: ``start = max(now, tat, gate)``, then ``tat = start + interval`` with
``interval = (time_period + slack) / rate``, and it answers "your slot is in
``start - now`` seconds". The worker sleeps exactly that long (reserve, then
sleep; no polling). ``max_rate`` consecutive slots span ``time_period + slack``,
so no window of ``time_period`` holds more than ``max_rate`` starts, at start-up
too: an idle key banks no credit (``max(now, tat)``). GCRA *with* a burst
tolerance of ``max_rate`` would let up to ~2x through a window at start, and a
sliding log (ZSET) stores one member per request and makes waiters retry; the
schedule needs one number and tells each waiter its exact time. ``now`` is the
Redis server's ``TIME``, so the workers' clocks do not matter. The default slack
is the local limiter's, from ``adaptive.ADAPTIVE``: ``max(2% of time_period, 15 ms)``.

Three things keep the schedule honest once the reply has left Redis:

* Each worker holds at most one reservation at a time (its coroutines queue in
  FIFO order on a local lock), so a cancelled waiter wastes at most one slot and
  the schedule never runs far ahead of the requests that use it.
* A worker that slept for its slot asks Redis once more (a read-only check)
  before it starts: if a 429 closed the shared gate meanwhile, the slot is given
  up and the worker waits for the gate.
* A worker that wakes up late (a busy event loop, a slow reply: lateness beyond
  the fastest round trip seen) by more than a third of the slack gives its slot up
  and reserves a new one, so late starts never bunch up with the next ones.
  Giving a slot up only ever lowers the rate.

What no limiter sees is the time between ``acquire`` returning and the request
reaching the API. The API can count ``max_rate + 1`` in a window only if one
request reaches it more than the slack (20 ms by default) later, relative to its
slot, than a request ``max_rate`` slots after it. Measured on a 2-core box with
127.0.0.1 networking (``tests/test_redis_limits.py`` logs each request's slot,
in Redis ``TIME``, next to its arrival): requests arrive 1.5-10 ms after their
slot alone (p99 about 7 ms) and at most 11 ms after it with one to four
CPU-bound processes beside the workers (load average up to 5); the slots never
put more than ``max_rate`` in a window, and neither did the arrivals. A worker stalled for
longer than the slack (a host far busier than that, a GC pause, a slow proxy on
the way) can still push one window over; raise ``slack`` there.

**The gate and the adaptive rate are shared, with the rules of
``gtmhub_async.adaptive``.** The script (``redis_script.lua``, package data) gets
every number from ``adaptive.ADAPTIVE`` as ARGV and holds none of its own. A
throttle reported to any worker (``on_response``: a 429, or a 503 with
Retry-After) runs it in "throttle" mode: the gate's reopen time, stored in
Redis, moves to ``now + Retry-After`` (capped; without Retry-After an exponential
backoff), and, for a 429 (or a wave of 503s) with the gate open, at most once per
``time_period``, the rate gets a tentative or confirmed level and climbs from
the gate's reopening exactly as ``AdaptiveRate`` does.

**Where this differs from AdaptiveRate** (deliberately):

* *What is counted.* ``AdaptiveRate`` counts the answers accepted in the last
  window; counting them here would cost a Redis write per response on every
  worker. The script counts instead the slots it granted (a ring of 50 buckets
  per period, written by the acquire that already runs) in the period before the
  slot of the worker's latest start, which is what the server let through before
  the throttled request; a slot a worker gives up is taken off again on its next
  call. A 503 wave is judged against the slots of the last period.
* *Saturated* means that the reporting worker had coroutines waiting in acquire.
* *No catch-up.* ``AdaptiveRate.catch_up`` (``slack / 4``) lets a start that a
  late timer delayed be made up on the next one. Here each worker reserves its
  next slot as soon as its previous one is used, so the schedule runs ahead of
  the workers and a late wake-up delays only its own start, which the lateness
  check bounds; granting slots in the past would spend slack that jitter
  between processes needs.
* *Backoff streak.* It resets once the gate has been open for a ``time_period``,
  instead of at the first accepted answer (again: no write per response).

**Redis down, slow or restarted.** Every Redis call is bounded by
``redis_timeout`` (socket timeouts on the clients it creates, and
``asyncio.timeout`` around each call), and never retried by redis-py, so a
failure surfaces at once. With ``on_redis_error="raise"`` acquire raises
``RateLimiterUnavailableError`` (no request was sent: it does not count as an
attempt). With ``"local"`` the worker falls back to a local ``RateLimit`` of
``max_rate / expected_workers``, logs one warning per outage, and probes Redis
at most every ``probe_interval`` seconds. The switches are made safe by quiet
spells: the first local start comes a ``time_period + slack`` after the last
start Redis allowed (every Redis start is confirmed by Redis just before it
happens), and when a worker returns, its first Redis start comes a
``time_period + slack`` after its last local start, while the key runs at
``max_rate / expected_workers`` for a recovery spell (``probe_interval +
time_period + slack`` after each return), until every worker has had the chance
to come back. So, with ``expected_workers`` right, no window holds more than
``max_rate`` starts across an outage either. A restart that a user-supplied
client hides by reconnecting leaves an empty key: a worker passes the last slot
it was given, and the script then starts the new schedule a whole
``time_period + slack`` after it.

Keys: ``{prefix}:{<sha256 of base URL|account id>}`` (never the token), one hash
per account, with a PEXPIRE of ``idle_ttl`` beyond the last slot or gate, so an
idle account leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from importlib import resources
from typing import Any, Final, Literal

import attrs
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

# One definition of the shared rules and their numbers: gtmhub_async.adaptive.
from gtmhub_async._validate import check_positive
from gtmhub_async.adaptive import ADAPTIVE, is_throttle
from gtmhub_async.errors import ClientStateError, RateLimiterUnavailableError
from gtmhub_async.limits import Limiter, RateLimit

__all__ = ["RedisLimiter", "RedisLimiterStats", "RedisRateLimit"]

logger = logging.getLogger("gtmhub_async.redis_limits")

OnRedisError = Literal["raise", "local"]

#: The default prefix of every key the limiter writes.
DEFAULT_PREFIX: Final = "gtmhub_async:rate"

_US = 1_000_000.0

# One script, three modes (gtmhub_async/redis_script.lua, package data); every
# number it uses comes from ARGV.
_SCRIPT: Final = (resources.files("gtmhub_async") / "redis_script.lua").read_text("utf-8")

_SCRIPT_SHA: Final = hashlib.sha1(_SCRIPT.encode()).hexdigest()


class _Unavailable(Exception):
    """Redis did not answer in time, or answered with an error."""


@attrs.frozen
class RedisLimiterStats:
    """A read-only snapshot of a Redis limiter, for observability."""

    #: Requests allowed to start (through Redis or the local fallback).
    acquired: int
    #: Of those, started under the local fallback.
    acquired_locally: int
    #: Slots given up: the gate closed while waiting, or the worker woke up late.
    forfeited: int
    #: Throttles reported (429, or 503 with Retry-After).
    throttled: int
    #: Times the script was loaded (the first call, then after each NOSCRIPT).
    script_loads: int
    #: Redis failures seen.
    redis_errors: int
    #: Outages: switches from Redis to the local fallback.
    fallbacks: int
    #: True while the local fallback is in use.
    local: bool


class RedisRateLimit:
    """At most ``max_rate`` requests start in any ``time_period``, over every worker of a key.

    ``redis`` is a ``redis.asyncio.Redis`` (or ``RedisCluster``) client, which
    the limiter never closes; or use ``RedisRateLimit.from_url``, whose
    limiters create and close their own. Give it short socket timeouts and no
    retries: a limiter must fail fast, not hang (each call is also cut off
    after ``redis_timeout``). ``slack`` is the pacing headroom added to every
    ``time_period`` (default ``max(2% of time_period, 15 ms)``, as the local
    limiter); raise it when the jitter between workers and the API is larger.
    See the module docstring for the algorithm.
    """

    __slots__ = (
        "_client_kwargs",
        "_floor",
        "_redis",
        "_url",
        "expected_workers",
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

    def __init__(
        self,
        redis: Redis | RedisCluster,
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
        if not isinstance(redis, Redis | RedisCluster):
            raise TypeError(
                "redis must be a redis.asyncio.Redis or RedisCluster client, got "
                f"{type(redis).__module__}.{type(redis).__qualname__} (a synchronous "
                "redis.Redis cannot be awaited; use RedisRateLimit.from_url for a URL)"
            )
        self._redis: Redis | RedisCluster | None = redis
        self._url: str | None = None
        self._client_kwargs: dict[str, Any] = {}
        self._configure(
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
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"url must start with redis://, rediss:// or unix://, got {url.split(':')[0]!r}"
            )
        self = cls.__new__(cls)
        self._redis = None
        self._url = url
        self._client_kwargs = dict(redis_kwargs)
        self._configure(
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
        return self

    def _configure(
        self,
        max_rate: float,
        time_period: float,
        *,
        key: str | None,
        prefix: str,
        on_redis_error: OnRedisError,
        expected_workers: int,
        redis_timeout: float,
        idle_ttl: float,
        probe_interval: float,
        slack: float | None,
    ) -> None:
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
        self._floor = ADAPTIVE.floor(self.max_rate)
        if slack is None:
            slack = ADAPTIVE.slack(self.time_period)
        self.slack = check_positive("slack", slack)
        if self.idle_ttl < self.time_period + self.slack:
            raise ValueError(
                f"idle_ttl must be at least time_period + slack "
                f"({self.time_period + self.slack:g} s), got {idle_ttl!r}"
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


class RedisLimiter:
    """Hand out start slots from the schedule in Redis to this worker's coroutines."""

    def __init__(
        self,
        config: RedisRateLimit,
        client: Redis | RedisCluster,
        *,
        owns_client: bool,
        key: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config = config
        self._client = client
        self._owns_client = owns_client
        self._loop = loop
        #: The Redis key of the shared budget.
        self.redis_key = config.redis_key(key)
        self._open_key = key
        self._lock = asyncio.Lock()
        self._closed = False
        self._loaded = False
        self._sha = _SCRIPT_SHA
        self._span = config.time_period + config.slack
        # Lateness beyond this gives the slot up: a third of the slack; the rest is
        # left for what follows acquire (the event loop reaching the request, the
        # network, the API server's own timestamps), which no limiter can see.
        self._tolerance = config.slack / 3
        self._min_rtt = math.inf
        self._last_slot = 0  # server microseconds of the last slot Redis gave this worker
        self._granted: float | None = None  # server seconds of the slot of the last acquire
        self._forfeit_slot = 0  # server microseconds of a slot given up, told on the next call
        self._waiting = 0  # coroutines inside acquire(): "saturated" when a throttle comes
        self._gate_until = -math.inf  # loop time: this worker's own view of the gate
        # The local fallback ("local" mode).
        self._fallback: Limiter | None = None
        self._local = False
        self._quiet_until = -math.inf
        self._next_probe = -math.inf
        self._last_local_start = -math.inf
        self._warned = False
        # Counters.
        self._acquired = 0
        self._acquired_locally = 0
        self._forfeited = 0
        self._throttled = 0
        self._script_loads = 0
        self._redis_errors = 0
        self._fallbacks = 0

    @property
    def stats(self) -> RedisLimiterStats:
        """Return a snapshot of the limiter's counters."""
        return RedisLimiterStats(
            acquired=self._acquired,
            acquired_locally=self._acquired_locally,
            forfeited=self._forfeited,
            throttled=self._throttled,
            script_loads=self._script_loads,
            redis_errors=self._redis_errors,
            fallbacks=self._fallbacks,
            local=self._local,
        )

    @property
    def last_slot(self) -> float | None:
        """Return the slot of the last acquire, in Redis server seconds (None: local fallback).

        The Redis server's ``TIME`` (Unix seconds) at which the schedule let the
        request start; a request reaches the API some time after it (the worker's
        event loop, the network). Tests compare the two to tell a schedule that
        handed out too many slots from a worker that sent its request late.
        """
        return self._granted

    def _check_open(self) -> None:
        if self._closed:
            raise ClientStateError("the rate limiter is closed")

    async def _eval(
        self,
        mode: str,
        *,
        rejoin: float = 0.0,
        delay: float = -1.0,
        status: int = 429,
        saturated: bool = False,
    ) -> list[int]:
        """Run the script once, loading it first if Redis does not know it."""
        cfg = self.config
        p = ADAPTIVE
        forfeit, self._forfeit_slot = self._forfeit_slot, 0
        slot = 0 if self._granted is None else round(self._granted * _US)
        args = (
            mode,
            repr(cfg.max_rate),
            repr(self._span * _US),
            repr(cfg.time_period * _US),
            repr(cfg._floor),
            str(cfg.expected_workers),
            str(math.ceil(cfg.idle_ttl * 1000)),
            str(self._last_slot),
            repr(rejoin * _US),
            repr(delay * _US if delay >= 0 else -1.0),
            repr(p.max_gate * _US),
            repr(p.beta),
            repr(p.hold),
            repr(p.confirm_band),
            repr(p.doubling_periods),
            repr(p.recovery_periods),
            repr(p.probe_first),
            repr(p.probe_max),
            repr(p.wave_share),
            str(p.wave_min),
            repr(p.backoff_first * _US),
            repr(p.backoff_max * _US),
            str(status),
            str(slot),
            "1" if saturated else "0",
            str(forfeit),
        )
        client = self._client
        try:
            async with asyncio.timeout(cfg.redis_timeout):
                if not self._loaded:
                    await self._load()
                try:
                    reply = await client.evalsha(self._sha, 1, self.redis_key, *args)
                except NoScriptError:
                    # SCRIPT FLUSH, a restart, or a failover to a replica without it.
                    logger.debug("Redis lost the rate limit script: loading it again")
                    await self._load()
                    reply = await client.evalsha(self._sha, 1, self.redis_key, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_errors += 1
            what = "no answer within" if isinstance(exc, TimeoutError) else "error"
            raise _Unavailable(
                f"{what} {cfg.redis_timeout:g} s: {type(exc).__name__}: {exc}"
                if isinstance(exc, TimeoutError)
                else f"{what}: {type(exc).__name__}: {exc}"
            ) from exc
        return [int(x) for x in reply]

    async def _load(self) -> None:
        sha = await self._client.script_load(_SCRIPT)
        self._sha = sha.decode() if isinstance(sha, bytes) else str(sha)
        self._loaded = True
        self._script_loads += 1

    async def acquire(self) -> None:
        """Wait until a request may start: a free slot in Redis and an open 429 gate."""
        self._check_open()
        if asyncio.get_running_loop() is not self._loop:
            raise ClientStateError("the rate limiter was opened on another event loop")
        self._waiting += 1
        try:
            await self._acquire()
        finally:
            self._waiting -= 1

    async def _acquire(self) -> None:
        async with self._lock:
            while True:
                self._check_open()
                now = self._loop.time()
                if now < self._gate_until:
                    await asyncio.sleep(self._gate_until - now)
                    continue
                if self._local and now < self._next_probe:
                    await self._acquire_local()
                    return
                try:
                    if self._local:
                        self._next_probe = now + self.config.probe_interval
                        await self._rejoin()
                    else:
                        await self._acquire_redis(rejoin=False)
                except _Unavailable as exc:
                    self._unavailable(exc)
                    continue
                self._acquired += 1
                return

    async def _acquire_redis(self, *, rejoin: bool) -> None:
        """Reserve a slot, sleep until it, confirm it; give it up if the gate closed or late."""
        loop = self._loop
        rejoin_for = self.config.probe_interval + self._span if rejoin else 0.0
        while True:
            self._check_open()
            t0 = loop.time()
            wait_us, slot, _ = await self._eval("acquire", rejoin=rejoin_for)
            rejoin_for = 0.0
            t1 = loop.time()
            self._min_rtt = min(self._min_rtt, t1 - t0)
            self._last_slot = slot
            wait = wait_us / _US
            trips = 1
            if wait > 0:
                await asyncio.sleep(wait)
                self._check_open()
                t2 = loop.time()
                gate_us, _ = await self._eval("check")
                self._min_rtt = min(self._min_rtt, loop.time() - t2)
                trips = 2
                if gate_us > 0:
                    # A 429 closed the gate while this worker slept: the slot is void.
                    self._forfeited += 1
                    self._forfeit_slot = slot
                    continue
            late = (loop.time() - t0) - wait - trips * self._min_rtt
            if late > self._tolerance:
                self._forfeited += 1
                self._forfeit_slot = slot
                logger.debug("woke up %.1f ms late for a slot: reserving another", late * 1e3)
                continue
            self._granted = slot / _US
            return

    async def _rejoin(self) -> None:
        """Come back from the local fallback once Redis answers again."""
        await self._eval("check")  # cheap: is Redis back?
        # No window may hold both this worker's local starts and its Redis starts.
        quiet = self._last_local_start + self._span - self._loop.time()
        if quiet > 0:
            await asyncio.sleep(quiet)
        await self._acquire_redis(rejoin=True)
        self._local = False
        logger.warning("Redis answers again: the shared rate limit %s is back", self.redis_key)

    async def _acquire_local(self) -> None:
        if self._fallback is None:
            self._fallback = RateLimit(
                self.config.max_rate / self.config.expected_workers, self.config.time_period
            ).open(key=self._open_key)
        quiet = self._quiet_until - self._loop.time()
        if quiet > 0:
            await asyncio.sleep(quiet)
        await self._fallback.acquire()
        self._last_local_start = self._loop.time()
        self._granted = None
        self._acquired += 1
        self._acquired_locally += 1

    def _unavailable(self, exc: _Unavailable) -> None:
        if self.config.on_redis_error == "raise":
            raise RateLimiterUnavailableError(
                f"the shared rate limit in Redis ({self.redis_key}) is unavailable: {exc}. "
                "No request was sent; on_redis_error='local' would fall back to a local "
                "limit instead"
            ) from exc.__cause__
        if self._local:
            return  # a failed probe: stay local
        self._local = True
        self._fallbacks += 1
        now = self._loop.time()
        # No window may hold both starts Redis allowed (all confirmed by now) and local ones.
        self._quiet_until = now + self._span
        self._next_probe = now + self.config.probe_interval
        if not self._warned:
            self._warned = True
            logger.warning(
                "the shared rate limit in Redis (%s) is unavailable (%s): falling back to a "
                "local limit of %g requests per %g s until it answers again",
                self.redis_key,
                exc,
                self.config.max_rate / self.config.expected_workers,
                self.config.time_period,
            )

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Learn from an answer: a throttle closes the gate of every worker on the key."""
        if self._fallback is not None:
            await self._fallback.on_response(status, retry_after)
        if not is_throttle(status, retry_after):
            return
        self._throttled += 1
        now = self._loop.time()
        gate = 0.0 if retry_after is None else ADAPTIVE.gate_seconds(retry_after)
        if gate > 0:
            # This worker pauses at once, even if Redis cannot be told.
            self._gate_until = max(self._gate_until, now + gate)
        if self._local or self._closed:
            return
        try:
            gate_us, was_open, _ = await self._eval(
                "throttle",
                delay=-1.0 if retry_after is None else max(retry_after, 0.0),
                status=status,
                saturated=self._waiting > 0,
            )
        except _Unavailable as exc:
            # The answer is in hand: failing the call for it would turn a retryable
            # 429 into an error. The next acquire meets the outage.
            logger.warning("could not share a %d with the other workers: %s", status, exc)
            return
        self._gate_until = max(self._gate_until, self._loop.time() + gate_us / _US)
        if was_open:
            logger.debug("shared gate closed for %.3g s after a %d", gate_us / _US, status)

    async def aclose(self) -> None:
        """Close the fallback and, if this limiter created it, the Redis client."""
        if self._closed:
            return
        self._closed = True
        if self._fallback is not None:
            await self._fallback.aclose()
        if self._owns_client:
            await self._client.aclose()
