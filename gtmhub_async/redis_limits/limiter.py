"""RedisLimiter: one worker's side of the shared schedule, the slot protocol.

Reserve a slot in Redis, sleep until it, confirm it (give it up if a 429 closed the
gate meanwhile, or if the worker woke up late), and report throttles so that every
worker on the key pauses. The reasoning: docs/design.md, "Redis limiter".
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import attrs
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from gtmhub_async.adaptive import ADAPTIVE, is_throttle
from gtmhub_async.errors import ClientStateError
from gtmhub_async.redis_limits.outage import Outage
from gtmhub_async.redis_limits.script import SCRIPT, SCRIPT_SHA, US, Unavailable, script_args

if TYPE_CHECKING:
    from gtmhub_async.redis_limits.config import RedisRateLimit

__all__ = ["RedisLimiter", "RedisLimiterStats"]

logger = logging.getLogger("gtmhub_async.redis_limits")


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
        self._lock = asyncio.Lock()
        self._closed = False
        self._loaded = False
        self._sha = SCRIPT_SHA
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
        self._outage = Outage(
            config, redis_key=self.redis_key, open_key=key, loop=loop, span=self._span
        )
        # Counters.
        self._acquired = 0
        self._forfeited = 0
        self._throttled = 0
        self._script_loads = 0
        self._redis_errors = 0

    @property
    def stats(self) -> RedisLimiterStats:
        """Return a snapshot of the limiter's counters."""
        return RedisLimiterStats(
            acquired=self._acquired,
            acquired_locally=self._outage.acquired_locally,
            forfeited=self._forfeited,
            throttled=self._throttled,
            script_loads=self._script_loads,
            redis_errors=self._redis_errors,
            fallbacks=self._outage.fallbacks,
            local=self._outage.local,
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
        forfeit, self._forfeit_slot = self._forfeit_slot, 0
        args = script_args(
            mode,
            cfg,
            span=self._span,
            last_slot=self._last_slot,
            rejoin=rejoin,
            delay=delay,
            status=status,
            slot=0 if self._granted is None else round(self._granted * US),
            saturated=saturated,
            forfeit=forfeit,
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
            raise Unavailable(
                f"{what} {cfg.redis_timeout:g} s: {type(exc).__name__}: {exc}"
                if isinstance(exc, TimeoutError)
                else f"{what}: {type(exc).__name__}: {exc}"
            ) from exc
        return [int(x) for x in reply]

    async def _load(self) -> None:
        sha = await self._client.script_load(SCRIPT)
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
                if self._outage.stays_local(now):
                    await self._outage.acquire_local()
                    self._granted = None
                    self._acquired += 1
                    return
                try:
                    if self._outage.local:
                        await self._rejoin()
                    else:
                        await self._acquire_redis(rejoin=False)
                except Unavailable as exc:
                    self._outage.fail(exc)
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
            wait = wait_us / US
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
            self._granted = slot / US
            return

    async def _rejoin(self) -> None:
        """Come back from the local fallback once Redis answers again."""
        await self._eval("check")  # cheap: is Redis back?
        # No window may hold both this worker's local starts and its Redis starts.
        await self._outage.quiet_before_rejoin()
        await self._acquire_redis(rejoin=True)
        self._outage.rejoined()

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Learn from an answer: a throttle closes the gate of every worker on the key."""
        await self._outage.on_response(status, retry_after)
        if not is_throttle(status, retry_after):
            return
        self._throttled += 1
        now = self._loop.time()
        gate = 0.0 if retry_after is None else ADAPTIVE.gate_seconds(retry_after)
        if gate > 0:
            # This worker pauses at once, even if Redis cannot be told.
            self._gate_until = max(self._gate_until, now + gate)
        if self._outage.local or self._closed:
            return
        try:
            gate_us, was_open, _ = await self._eval(
                "throttle",
                delay=-1.0 if retry_after is None else max(retry_after, 0.0),
                status=status,
                saturated=self._waiting > 0,
            )
        except Unavailable as exc:
            # The answer is in hand: failing the call for it would turn a retryable
            # 429 into an error. The next acquire meets the outage.
            logger.warning("could not share a %d with the other workers: %s", status, exc)
            return
        self._gate_until = max(self._gate_until, self._loop.time() + gate_us / US)
        if was_open:
            logger.debug("shared gate closed for %.3g s after a %d", gate_us / US, status)

    async def aclose(self) -> None:
        """Close the fallback and, if this limiter created it, the Redis client."""
        if self._closed:
            return
        self._closed = True
        await self._outage.aclose()
        if self._owns_client:
            await self._client.aclose()
