"""The adaptive rate rules: one parameter set (``ADAPTIVE``) and the pure ``AdaptiveRate``.

Both limiters follow them: ``LocalLimiter`` through ``AdaptiveRate``, ``RedisRateLimit``
in its Lua script (every number from ``ADAPTIVE``). The rules in short and their
reasoning: docs/design.md, "Notes by module" and "Rate limiter".
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterator

import attrs

from gtmhub_async._validate import check_positive

__all__ = ["ADAPTIVE", "AdaptiveParams", "AdaptiveRate", "TimeWindow", "is_throttle"]


class TimeWindow:
    """Times in ascending order, oldest first, kept as C doubles in one array.

    Not a deque of floats: at thousands of answers a second, a float object kept alive per
    answer for a whole window cost the limited client about 4% more CPU per request in
    separate processes (docs/performance.md); an array holds no object per time.
    """

    __slots__ = ("_head", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._head = 0  # index of the oldest time still in the window

    def __len__(self) -> int:
        return len(self._times) - self._head

    def __iter__(self) -> Iterator[float]:
        return iter(self._times[self._head :])

    def append(self, when: float) -> None:
        """Add a time no earlier than the last one."""
        self._times.append(when)

    def add(self, when: float, horizon: float) -> None:
        """Add a time no earlier than the last one; forget those through ``horizon`` lazily.

        The hot path of a limiter: the old times go every 256 additions, not on each,
        so the window may hold stale times; a reader calls ``drop_through`` first.
        """
        times = self._times
        times.append(when)
        if not len(times) & 255:
            self.drop_through(horizon)

    def drop_through(self, horizon: float) -> None:
        """Forget every time at or before ``horizon``."""
        times = self._times
        head = self._head
        end = len(times)
        while head < end and times[head] <= horizon:
            head += 1
        if head > 1024 and 2 * head > end:
            # Compact once the dropped part is most of the array: O(1) per time overall.
            del times[:head]
            head = 0
        self._head = head


logger = logging.getLogger("gtmhub_async.limits")


@attrs.frozen
class AdaptiveParams:
    """Hold the numbers of the adaptive rules, shared by the local and the Redis limiter."""

    slack_fraction: float = 0.02  #: Pacing headroom, as a share of time_period ...
    slack_min: float = 0.015  #: ... and never under 15 ms (jitter of +-5 ms needs > 10 ms).
    hold: float = 0.99  #: Share of the accepted count held as the level.
    beta: float = 0.7  #: The deepest cut of one throttle (storm, or a client not saturated).
    confirm_band: float = 0.2  #: A second level within this share of the first confirms it.
    doubling_periods: float = 0.5  #: The climb doubles the rate every this many periods ...
    recovery_periods: float = 3.0  #: ... or faster, to reach its target within this many.
    probe_first: float = 10.0  #: Periods a confirmed ceiling is held before the first probe.
    probe_max: float = 20.0  #: The longest hold between two probes, in periods.
    wave_share: float = 0.25  #: 503s are a rate signal from this share of the window's answers
    wave_min: int = 3  #: ... and from this many.
    floor_fraction: float = 0.01  #: The rate never drops below this share of max_rate (>= 1).
    backoff_first: float = 1.0  #: Gate of a 429 without Retry-After, doubled each time ...
    backoff_max: float = 32.0  #: ... up to this.
    max_gate: float = 60.0  #: The longest one throttle may close the gate.

    def gate_seconds(self, retry_after: float) -> float:
        """Return how long a Retry-After closes the gate: 0 for NaN or negative, <= max_gate."""
        # NaN and negatives count as "now"; a huge value must not stall the client.
        return min(max(retry_after, 0.0), self.max_gate) if retry_after >= 0 else 0.0

    def slack(self, time_period: float) -> float:
        """Return the pacing slack added to every ``time_period``."""
        return max(self.slack_fraction * time_period, self.slack_min)

    def floor(self, max_rate: float) -> float:
        """Return the lowest rate the limiter drops to."""
        return min(max_rate, max(1.0, self.floor_fraction * max_rate))


#: The one parameter set both limiters use.
ADAPTIVE = AdaptiveParams()


def is_throttle(status: int, retry_after: float | None) -> bool:
    """Tell whether an answer closes the gate (429, or 503 with Retry-After)."""
    return status == 429 or (status == 503 and retry_after is not None)


class AdaptiveRate:
    """Decide the rate and the gate from the answers; pure state, time from ``clock``.

    Feed it ``on_accepted()`` for every answer that is not a throttle and
    ``on_throttled(status, retry_after, saturated=...)`` for every throttle; read
    ``gate_until`` and ``interval()`` to schedule starts.
    """

    __slots__ = (
        "_accepted",
        "_backoff",
        "_epoch",
        "_forget_after",
        "_growth",
        "_last_decrease",
        "_probe_after",
        "_probe_every",
        "_start",
        "_streak",
        "_target",
        "_unavailable",
        "catch_up",
        "ceiling",
        "clock",
        "confirmed",
        "decreases",
        "floor",
        "gate_closures",
        "gate_until",
        "max_rate",
        "params",
        "slack",
        "time_period",
    )

    max_rate: float  #: The configured ceiling, in requests per ``time_period``.
    time_period: float  #: The window, in seconds, that ``max_rate`` is counted over.
    slack: float  #: Seconds added to every ``time_period`` when pacing starts.
    catch_up: float  #: Seconds a late start may take back from the next interval.
    floor: float  #: The rate never drops below this, in requests per ``time_period``.
    clock: Callable[[], float]  #: Monotonic seconds; the event loop's ``time`` in a limiter.
    gate_until: float  #: Clock time before which no request may start.
    gate_closures: int  #: How many times an open gate was closed.
    decreases: int  #: How many times the rate was lowered.
    ceiling: float | None  #: The learned server ceiling (requests per period), if any.
    confirmed: bool  #: Whether ``ceiling`` was seen twice.

    def __init__(
        self,
        max_rate: float,
        time_period: float = 1.0,
        *,
        clock: Callable[[], float],
        params: AdaptiveParams = ADAPTIVE,
    ) -> None:
        self.max_rate = check_positive("max_rate", max_rate)
        self.time_period = check_positive("time_period", time_period)
        self.params = params
        self.slack = params.slack(self.time_period)
        self.catch_up = self.slack / 4
        self.floor = params.floor(self.max_rate)
        self.clock = clock
        self.gate_until = -math.inf
        self.gate_closures = 0
        self.decreases = 0
        self.ceiling = None
        self.confirmed = False
        # The curve: from _start at _epoch (the gate's reopening) up to _target at
        # _growth per second; above the target from _probe_after seconds on.
        self._start = self.max_rate
        self._target = self.max_rate
        self._growth = 0.0
        self._epoch = -math.inf
        self._probe_after = math.inf
        self._forget_after = math.inf  # seconds after _epoch when the ceiling is forgotten
        self._probe_every = params.probe_first
        self._last_decrease = -math.inf
        self._streak = 0  # closures without Retry-After in a row: the backoff exponent
        self._backoff = params.backoff_first
        self._accepted = TimeWindow()  # times of accepted answers in the window
        self._unavailable = TimeWindow()  # times of 503s with Retry-After

    def _doubling(self) -> float:
        return math.log(2) / (self.params.doubling_periods * self.time_period)

    def rate(self, now: float | None = None) -> float:
        """Return the allowed rate, in requests per ``time_period``, at ``now``."""
        x = (self.clock() if now is None else now) - self._epoch
        if x <= 0:
            return self._start
        # Compared in logs: exp() of a long idle spell's climb would overflow.
        climb = self._growth * x
        w = self._target
        if climb < math.log(self._target / self._start):
            w = self._start * math.exp(climb)
        if x > self._probe_after:
            probe = self._doubling() * (x - self._probe_after)
            w = self.max_rate
            if probe < math.log(self.max_rate / self._target):
                w = self._target * math.exp(probe)
        return min(self.max_rate, max(self.floor, w))

    def known_ceiling(self, now: float | None = None) -> float | None:
        """Return the learned ceiling at ``now``; None when none is known or it was dropped."""
        x = (self.clock() if now is None else now) - self._epoch
        return self.ceiling if x < self._forget_after else None

    def interval(self, now: float | None = None) -> float:
        """Return the seconds to leave between two starts at the current rate."""
        return (self.time_period + self.slack) / self.rate(now)

    def _prune(self, now: float) -> None:
        # Counted over time_period + slack: answers jitter, and exactly time_period
        # would miss the server window's oldest one about half the time.
        horizon = now - self.time_period - self.slack
        self._accepted.drop_through(horizon)
        self._unavailable.drop_through(horizon)

    def accepted_in_window(self, now: float | None = None) -> int:
        """Return how many answers were accepted in the last window."""
        self._prune(self.clock() if now is None else now)
        return len(self._accepted)

    def on_accepted(self, now: float | None = None) -> None:
        """Record an answer the server accepted (anything but a throttle) at ``now``."""
        if now is None:
            now = self.clock()
        if self.gate_until == -math.inf:
            # Never throttled: no 503 counted and no backoff streak, only the window
            # moves, lazily (every reader prunes first). The limiter's hot path.
            self._accepted.add(now, now - self.time_period - self.slack)
            return
        self._accepted.append(now)
        self._prune(now)
        if now >= self.gate_until:
            self._streak = 0

    def _gate_delay(self, retry_after: float | None) -> float:
        if retry_after is None:
            return self._backoff
        return self.params.gate_seconds(retry_after)

    def on_throttled(
        self, retry_after: float | None, *, status: int = 429, saturated: bool = False
    ) -> bool:
        """Close or extend the gate for a throttle; return True when it was open before.

        ``saturated``: requests were waiting for a start slot, so the accepted
        count measures the server rather than the client.
        """
        now = self.clock()
        self._prune(now)
        was_open = now >= self.gate_until
        if was_open:
            self.gate_closures += 1
            if retry_after is None:
                self._backoff = min(
                    self.params.backoff_first * 2.0**self._streak, self.params.backoff_max
                )
                self._streak += 1
        signal = status == 429
        if status != 429:
            self._unavailable.append(now)
            n = len(self._unavailable)
            answers = n + len(self._accepted)
            signal = n >= self.params.wave_min and n >= self.params.wave_share * answers
        if signal and was_open and now - self._last_decrease >= self.time_period:
            self._decrease(now, saturated=saturated)
        self.gate_until = max(self.gate_until, now + self._gate_delay(retry_after))
        # The curve starts when the gate reopens; nothing is sent before.
        self._epoch = max(self._epoch, self.gate_until)
        return was_open

    def _decrease(self, now: float, *, saturated: bool) -> None:
        p = self.params
        current = self.rate(now)
        # The level counts over exactly time_period: over the window, a fast climb
        # would count answers the server's own window had already let go.
        seen = sum(1 for t in self._accepted if t > now - self.time_period)
        known = self.known_ceiling(now) is not None
        if seen == 0:
            # A storm: nothing tells where the ceiling is; cut, keep what was learned.
            level = max(self.floor, current * p.beta)
        else:
            level = max(self.floor, min(current, seen) * p.hold)
            if not saturated:
                level = max(level, current * p.beta)
            old = self.ceiling
            if known and old is not None and abs(level - old) <= p.confirm_band * old:
                if self.confirmed and current > old:
                    self._probe_every = min(2 * self._probe_every, p.probe_max)
                elif not self.confirmed:
                    self._probe_every = p.probe_first
                # Both counts undercount a climb; under a hold, the new one is the truth.
                self.ceiling = max(old, level) if current > old else min(old, level)
                self.confirmed = True
                level = self.ceiling
            else:
                self.ceiling, self.confirmed = level, False
        if seen == 0 and not known:
            self.ceiling, self.confirmed = None, False
        self._set_curve(level)
        self._last_decrease = now
        self.decreases += 1
        self._log(current, seen)

    def _set_curve(self, start: float) -> None:
        p, period = self.params, self.time_period
        window = period + self.slack
        hold = self.confirmed and self.ceiling is not None
        target = self.ceiling if hold and self.ceiling is not None else self.max_rate
        target = max(target, start)
        climb = math.log(target / start)
        self._start, self._target = start, target
        self._growth = max(self._doubling(), climb / (p.recovery_periods * period))
        reach = climb / self._growth
        if hold:
            self._probe_after = max(reach, self._probe_every * period)
            to_max = math.log(self.max_rate / target) / self._doubling()
            self._forget_after = self._probe_after + to_max + window
        else:
            self._probe_after = math.inf
            self._forget_after = reach + window

    def _log(self, current: float, seen: int) -> None:
        logger.debug(
            "rate lowered from %.4g to %.4g per %g s (server accepted %d in the last window, "
            "ceiling %s)",
            current,
            self._start,
            self.time_period,
            seen,
            "none"
            if self.ceiling is None
            else f"{self.ceiling:.4g} {'confirmed' if self.confirmed else 'tentative'}",
        )
