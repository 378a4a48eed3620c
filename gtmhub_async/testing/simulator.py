"""A discrete-event model of a rate-limited server driven through the real LocalLimiter.

``simulate(scenario, seed)`` runs ``scenario.workers`` coroutines that each
acquire a start from a real ``LocalLimiter``, travel to a modelled server
(one-way latency 20 ms +- 5 ms, seeded), are answered, travel back and report
the answer to the limiter. The server has a sliding-window limit that may change
over time, a window of time in which it throttles everything (429), random 503s
with a Retry-After, and a service time.

With ``virtual=True`` (tests) the run happens on an event loop whose clock jumps
to the next timer, so a minute of traffic takes a fraction of a second and the
same seed always gives the same result; with ``virtual=False`` (the benchmark)
the same scenario runs in real time.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs

from gtmhub_async.limits import LocalLimiter, RateLimit

__all__ = [
    "SCENARIOS",
    "Scenario",
    "SimResult",
    "SimServer",
    "VirtualClockLoop",
    "run_virtual",
    "simulate",
]

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Poll without blocking; when nothing is ready, jump the clock to the next timer."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._vloop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: nothing is scheduled and nothing can wake the loop")
        # A microsecond at least, as a real clock: a timer re-armed for "now" must end.
        self._vloop.now += max(timeout, 1e-6)
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """Run an event loop whose time jumps to the next timer instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0  # not 0: catches code that assumes the clock starts at zero
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        """Return the virtual time."""
        return self.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh virtual-time loop and return its result."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())


@attrs.define
class SimServer:
    """Answer requests at relative times: limit, throttle window, random 503s."""

    #: The sliding-window limit at a relative time (None: no limit).
    limit: Callable[[float], float | None]
    rng: random.Random
    period: float = 1.0
    #: Every request arriving in [start, end) is answered 429 with ``throttle_retry_after``.
    throttle: tuple[float, float] | None = None
    throttle_retry_after: float = 1.0
    #: Share of requests answered 503 with Retry-After ``unavailable_retry_after``.
    unavailable: float = 0.0
    unavailable_retry_after: float = 0.0
    accepted: deque[float] = attrs.field(factory=deque)
    #: (relative arrival time, status) of every request.
    log: list[tuple[float, int]] = attrs.field(factory=list)

    def handle(self, t: float) -> tuple[int, float | None]:
        """Answer a request arriving at relative time ``t``: (status, Retry-After)."""
        answer: tuple[int, float | None]
        limit = self.limit(t)
        while self.accepted and self.accepted[0] < t - self.period:
            self.accepted.popleft()
        if self.throttle is not None and self.throttle[0] <= t < self.throttle[1]:
            answer = (429, self.throttle_retry_after)
        elif limit is not None and len(self.accepted) >= limit:
            # Servers round Retry-After up to whole seconds.
            answer = (429, float(max(1, math.ceil(self.accepted[0] + self.period - t))))
        elif self.unavailable and self.rng.random() < self.unavailable:
            answer = (503, self.unavailable_retry_after)
        else:
            self.accepted.append(t)
            answer = (200, None)
        self.log.append((t, answer[0]))
        return answer

    def http_answer(self, t: float) -> tuple[int, dict[str, str]] | None:
        """Answer as a stub HTTP server does: None for a 200, else (status, headers)."""
        status, retry_after = self.handle(t)
        if retry_after is None:
            return None
        return status, {"Retry-After": f"{retry_after:g}"}


def _no_limit(t: float) -> float | None:
    return None


@attrs.frozen
class Scenario:
    """Describe what the server does and what the client asks for, over ``seconds``."""

    name: str
    max_rate: float
    seconds: float
    workers: int = 64
    limit: Callable[[float], float | None] = _no_limit
    throttle: tuple[float, float] | None = None
    throttle_retry_after: float = 1.0
    unavailable: float = 0.0
    unavailable_retry_after: float = 0.0
    service_time: float = 0.0
    #: Seconds each worker pauses after an answer (light traffic when > 0).
    think: float = 0.0
    time_period: float = 1.0


@attrs.frozen
class SimResult:
    """Hold what a run produced: the server's log and the limiter's rate over time."""

    log: list[tuple[float, int]]
    #: (relative time, limiter rate) every 0.25 s.
    rates: list[tuple[float, float]]
    limiter: LocalLimiter

    def accepted_rate(self, start: float, end: float) -> float:
        """Return accepted answers per second for arrivals in [start, end)."""
        n = sum(1 for t, s in self.log if start <= t < end and s == 200)
        return n / (end - start)

    def share(self, status: int, start: float, end: float = math.inf) -> float:
        """Return the share of arrivals in [start, end) answered ``status``."""
        window = [s for t, s in self.log if start <= t < end]
        return window.count(status) / max(1, len(window))

    def count(self, status: int, start: float = 0.0, end: float = math.inf) -> int:
        """Return how many arrivals in [start, end) were answered ``status``."""
        return sum(1 for t, s in self.log if start <= t < end and s == status)

    def rate_from(self, t: float) -> float:
        """Return the lowest sampled limiter rate from ``t`` on."""
        return min(r for when, r in self.rates if when >= t)


def _step(before: float, after: float, at: float) -> Callable[[float], float | None]:
    def limit(t: float) -> float | None:
        return before if t < at else after

    return limit


def _fixed(limit: float) -> Callable[[float], float | None]:
    return lambda t: limit


#: The issue's scenarios (#13), shared by the tests and the fidelity benchmark.
SCENARIOS: dict[str, Scenario] = {
    "1 early throttle": Scenario("1 early throttle", 50, 15, throttle=(0.1, 0.4)),
    "2 stray 503s": Scenario("2 stray 503s", 100, 12, unavailable=0.05),
    "3 hidden limit 30 at 200": Scenario("3 hidden limit 30 at 200", 200, 40, limit=_fixed(30)),
    "3 hidden limit 50 at 100": Scenario("3 hidden limit 50 at 100", 100, 40, limit=_fixed(50)),
    "4 rising limit": Scenario("4 rising limit", 100, 55, limit=_step(30, 60, 20)),
    "5 falling limit": Scenario("5 falling limit", 100, 50, limit=_step(60, 30, 20)),
    "6 throttle for someone else": Scenario(
        "6 throttle for someone else", 50, 15, workers=1, think=1.0, throttle=(2.0, 3.0)
    ),
    "7 after a storm": Scenario("7 after a storm", 50, 55, throttle=(0.0, 30.0)),
}


async def simulate_async(scenario: Scenario, seed: int) -> SimResult:
    """Run ``scenario`` on the running loop (virtual or real time)."""
    rng = random.Random(seed)
    server = SimServer(
        scenario.limit,
        random.Random(f"{seed}:server"),
        period=scenario.time_period,
        throttle=scenario.throttle,
        throttle_retry_after=scenario.throttle_retry_after,
        unavailable=scenario.unavailable,
        unavailable_retry_after=scenario.unavailable_retry_after,
    )
    loop = asyncio.get_running_loop()
    limiter = RateLimit(scenario.max_rate, scenario.time_period).open(key="simulator")
    assert isinstance(limiter, LocalLimiter)
    t0 = loop.time()
    end = t0 + scenario.seconds
    rates: list[tuple[float, float]] = []

    def latency() -> float:
        return 0.020 + rng.uniform(-0.005, 0.005)

    async def worker() -> None:
        while True:
            await limiter.acquire()
            if loop.time() >= end:
                return
            await asyncio.sleep(latency())
            status, retry_after = server.handle(loop.time() - t0)
            await asyncio.sleep(scenario.service_time + latency())
            await limiter.on_response(status, retry_after)
            if scenario.think:
                await asyncio.sleep(scenario.think)

    async def sampler() -> None:
        while loop.time() < end:
            rates.append((loop.time() - t0, limiter.core.rate()))
            await asyncio.sleep(0.25)

    await asyncio.gather(sampler(), *(worker() for _ in range(scenario.workers)))
    await limiter.aclose()
    return SimResult(server.log, rates, limiter)


def simulate(scenario: Scenario, seed: int, *, virtual: bool = True) -> SimResult:
    """Run ``scenario`` with ``seed`` in virtual time (default) or in real time."""
    if virtual:
        return run_virtual(lambda: simulate_async(scenario, seed))
    return asyncio.run(simulate_async(scenario, seed))
