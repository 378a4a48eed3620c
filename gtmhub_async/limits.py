"""Client-side rate limiting: the Limiter interface, RateLimit and LocalLimiter.

A rate limit is configuration; ``open(key=...)`` gives a ``Limiter`` bound to the running
loop, which paces starts evenly and holds a 429 gate with the rules of ``adaptive``.
The pacing reasoning: docs/design.md, "Notes by module".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import Protocol, runtime_checkable

import attrs

from gtmhub_async._validate import check_positive
from gtmhub_async.adaptive import ADAPTIVE, AdaptiveRate, is_throttle
from gtmhub_async.errors import ClientStateError

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "MAX_GATE_SECONDS",
    "AdaptiveRate",
    "Limiter",
    "LimiterFactory",
    "LimiterStats",
    "LocalLimiter",
    "RateLimit",
    "is_throttle",
]

logger = logging.getLogger("gtmhub_async.limits")

#: The longest a single throttle may close the gate, whatever its Retry-After says.
MAX_GATE_SECONDS = ADAPTIVE.max_gate


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
    check_positive(attribute.name, value)


@attrs.frozen
class LimiterStats:
    """A read-only snapshot of a limiter, for observability."""

    #: The allowed rate now, in requests per ``time_period``.
    rate: float
    #: The configured ``max_rate``.
    max_rate: float
    #: Requests allowed to start.
    acquired: int
    #: Acquires that had to wait (for a slot or for the gate).
    waits: int
    #: Seconds spent waiting, summed over every acquire.
    wait_seconds: float
    #: Throttles reported (429, or 503 with Retry-After).
    throttled: int
    #: How many times an open gate was closed.
    gate_closures: int
    #: How many times the rate was lowered.
    decreases: int
    #: Seconds until the gate reopens (0.0 when open).
    gate_remaining: float
    #: Coroutines waiting in ``acquire`` now.
    waiting: int


@attrs.frozen
class RateLimit:
    """At most ``max_rate`` requests start in any window of ``time_period`` seconds.

    Starts are paced evenly (see the module docstring for the 2% slack), and a
    429 closes a gate shared by every coroutine of the client and lowers the
    rate to what the server accepted: a tentative level, held only once a second
    throttle confirms it (the rules: ``gtmhub_async.adaptive``).

    The default, ``DEFAULT_RATE_LIMIT``, is 10 requests per second. Gtmhub
    publishes no limits, so the default is chosen to be safe rather than fast:
    10/s is at or below the per-tenant limits that API gateways commonly default
    to, a single integration pushing KPI values rarely needs more (36,000
    requests an hour), and if the real limit is lower the first 429 teaches the
    limiter the server's ceiling. Raise it when you know your account allows more.
    """

    max_rate: float = attrs.field(validator=_positive)
    time_period: float = attrs.field(default=1.0, validator=_positive)

    def open(self, *, key: str) -> Limiter:
        """Return a limiter bound to the running loop; raise RuntimeError outside one."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        return LocalLimiter(self, asyncio.get_running_loop())


#: The client's default: 10 requests per second (see ``RateLimit``).
DEFAULT_RATE_LIMIT = RateLimit(10, 1.0)


class LocalLimiter:
    """Hand out start slots to coroutines in FIFO order, paced and gated by AdaptiveRate.

    Not an aiolimiter.AsyncLimiter: its rate is fixed when it is built, it has
    no notion of a gate that holds every waiter, and swapping in a new one on a
    rate change would drop its queue and so its FIFO order. What is needed is
    small: one deque of futures, one timer, one "next start" time.
    """

    __slots__ = (
        "_acquired",
        "_catch_up",
        "_closed",
        "_last_grant",
        "_loop",
        "_next_start",
        "_steady_interval",
        "_throttled",
        "_time",
        "_timer",
        "_wait_seconds",
        "_waiters",
        "_waits",
        "core",
    )

    core: AdaptiveRate  #: The rate and gate math, clocked by the loop.

    def __init__(self, config: RateLimit, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # The loop's clock; time.monotonic itself when the loop does not override time()
        # (what BaseEventLoop.time returns): one Python frame less per read.
        self._time = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        core = self.core = AdaptiveRate(config.max_rate, config.time_period, clock=loop.time)
        # The fast paths' constants, computed once. Until the first decrease the rate is
        # max_rate at every instant, so the interval is too (the same float as
        # core.interval()); afterwards it is asked for on every grant.
        self._steady_interval = (core.time_period + core.slack) / core.max_rate
        self._catch_up = core.catch_up
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # Earliest loop time the next request may start: it never lies in the
        # past by more than an interval's worth, so idling banks no burst.
        self._next_start = -math.inf
        # (future, _next_start before it was granted): lets a waiter cancelled
        # right after its grant hand the slot back.
        self._last_grant: tuple[asyncio.Future[None], float] | None = None
        self._closed = False
        self._acquired = 0
        self._waits = 0
        self._wait_seconds = 0.0
        self._throttled = 0

    @property
    def stats(self) -> LimiterStats:
        """Return a snapshot of the limiter's counters."""
        now = self._loop.time()
        return LimiterStats(
            rate=self.core.rate(now),
            max_rate=self.core.max_rate,
            acquired=self._acquired,
            waits=self._waits,
            wait_seconds=self._wait_seconds,
            throttled=self._throttled,
            gate_closures=self.core.gate_closures,
            decreases=self.core.decreases,
            gate_remaining=max(0.0, self.core.gate_until - now),
            waiting=sum(1 for fut in self._waiters if not fut.done()),
        )

    def _ready_at(self) -> float:
        return max(self._next_start, self.core.gate_until)

    def _grant(self, now: float) -> None:
        # Timers fire late (0.1-1 ms under load); spacing from the actual start
        # would lose that on every grant (98% -> 96% measured). Keep the schedule
        # instead, but let it lag `now` by at most `catch_up`, so a stall never
        # turns into a burst: any max_rate + 1 starts still span at least
        # time_period + slack - catch_up.
        slot = now - self._catch_up
        if slot < self._next_start:
            slot = self._next_start
        core = self.core
        self._next_start = slot + (
            self._steady_interval if core.decreases == 0 else core.interval(now)
        )
        self._acquired += 1
        # Only the latest grant may hand its slot back: a later one holds the schedule.
        self._last_grant = None

    def try_acquire(self, now: float | None = None) -> bool:
        """Take a start slot if one is free now, without waiting; return whether it did.

        The synchronous fast path of ``acquire()`` (no coroutine, no allocation):
        False means "await ``acquire()``", which also reports a closed limiter or a
        foreign loop. It never jumps the queue: with waiters it is always False.
        ``now``: the loop's time, when the caller has just read it (one clock read less).
        """
        if self._waiters or self._closed:
            return False
        if now is None:
            now = self._time()
        core = self.core
        if now < self._next_start or now < core.gate_until:
            return False
        if asyncio.get_running_loop() is not self._loop:
            return False
        # _grant(now), inlined: one call less on every request.
        slot = now - self._catch_up
        if slot < self._next_start:
            slot = self._next_start
        self._next_start = slot + (
            self._steady_interval if core.decreases == 0 else core.interval(now)
        )
        self._acquired += 1
        self._last_grant = None
        return True

    async def acquire(self) -> None:
        """Wait until a request may start: a free start slot and an open 429 gate."""
        if self._closed:
            raise ClientStateError("the rate limiter is closed")
        if asyncio.get_running_loop() is not self._loop:
            raise ClientStateError("the rate limiter was opened on another event loop")
        if self.try_acquire():
            return
        now = self._loop.time()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            self._forget(fut)
            raise
        finally:
            self._waits += 1
            self._wait_seconds += self._loop.time() - now

    def _forget(self, fut: asyncio.Future[None]) -> None:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            # Granted, then cancelled before it could start: give the slot back
            # if no one was granted after it.
            if self._last_grant is not None and self._last_grant[0] is fut:
                self._next_start = self._last_grant[1]
                self._acquired -= 1
                self._last_grant = None
        else:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        if waiters and not self._closed:
            self._timer = self._loop.call_at(self._ready_at(), self._wake)

    def _wake(self) -> None:
        self._timer = None
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        now = self._loop.time()
        # call_at may run a handle up to clock_resolution early: check, re-arm if so.
        if waiters and now >= self._ready_at():
            fut = waiters.popleft()
            before = self._next_start
            fut.set_result(None)
            self._grant(now)
            self._last_grant = (fut, before)
        self._arm()

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """Learn from an answer: a 429 (or a 503 with Retry-After) closes the gate."""
        self.heard(status, retry_after)

    def heard(self, status: int, retry_after: float | None) -> None:
        """Learn from an answer, synchronously: what ``on_response()`` does, without awaiting."""
        if status != 429 and (status != 503 or retry_after is None):  # is_throttle, inlined
            self.core.on_accepted(self._time())
            return
        self._throttled += 1
        saturated = any(not fut.done() for fut in self._waiters)
        if self.core.on_throttled(retry_after, status=status, saturated=saturated):
            logger.debug(
                "gate closed for %.3g s after a %d (Retry-After %s)",
                self.core.gate_until - self._loop.time(),
                status,
                retry_after,
            )
        self._arm()

    async def aclose(self) -> None:
        """Stop the timer and fail every waiter with ClientStateError."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(ClientStateError("the rate limiter was closed"))
