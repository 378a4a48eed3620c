"""Call deadlines with one timer per client: ``asyncio.timeout_at``'s rules, at a lower cost.

``asyncio.timeout_at`` arms and cancels one loop timer per call (a TimerHandle,
a heap push, a cancelled entry the loop sweeps later, two coroutine hooks).
``Deadlines`` keeps every open budget of a client in one heap and one timer set
for the earliest live one; leaving a budget only marks it done. When the timer
fires, every budget whose time has come cancels its task, and the timer moves to
the next live budget. The rules are those of ``asyncio.Timeout`` (3.11+): the
cancellation it caused leaves the ``with`` block as ``TimeoutError``; a
cancellation from elsewhere stays a ``CancelledError``; a task that swallowed
the cancellation finishes normally.
"""

from __future__ import annotations

import asyncio
import heapq
from types import TracebackType
from typing import Final

__all__ = ["Budget", "Deadlines"]

_OPEN: Final = 0
_EXPIRING: Final = 1
_DONE: Final = 2


class Budget:
    """One call's deadline: a ``with`` block that ends in TimeoutError when it runs out."""

    __slots__ = ("_cancelling", "_owner", "_state", "_task", "when")

    def __init__(self, owner: Deadlines, when: float, task: asyncio.Task[object]) -> None:
        self.when = when
        self._owner = owner
        self._task = task
        self._state = _OPEN
        self._cancelling = task.cancelling()

    def __enter__(self) -> Budget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        self._state = _DONE
        self._owner._live -= 1
        # As asyncio.Timeout: take back our cancel; raise only if it was the only one.
        if (
            state == _EXPIRING
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc


class Deadlines:
    """Every open Budget of one client (one event loop), under one loop timer."""

    __slots__ = ("_heap", "_live", "_loop", "_seq", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, Budget]] = []
        self._live = 0
        self._seq = 0
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0

    def at(self, when: float) -> Budget:
        """Return a Budget that cancels the current task at loop time ``when``."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        budget = Budget(self, when, task)
        heap = self._heap
        # Done budgets at the top go now; a straggler holding the top cannot grow the
        # heap past twice the live budgets (compacted below).
        while heap and heap[0][2]._state == _DONE:
            heapq.heappop(heap)
        self._seq += 1
        heapq.heappush(heap, (when, self._seq, budget))
        self._live += 1
        if len(heap) > 2 * self._live + 64:
            self._heap = heap = [e for e in heap if e[2]._state != _DONE]
            heapq.heapify(heap)
        if self._timer is None or when < self._timer_at:
            self._arm(loop, when)
        return budget

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = (
            loop.call_soon(self._fire) if when <= loop.time() else loop.call_at(when, self._fire)
        )

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        heap = self._heap
        # A loop runs call_at handles up to its clock resolution early, as asyncio.Timeout's.
        now = loop.time() + getattr(loop, "_clock_resolution", 0.0)
        while heap:
            when, _, budget = heap[0]
            if budget._state == _DONE:
                heapq.heappop(heap)
                continue
            if when > now:
                self._arm(loop, when)
                return
            heapq.heappop(heap)
            budget._state = _EXPIRING
            budget._task.cancel()

    def close(self) -> None:
        """Drop the timer once no budget is open: nothing of a closed client stays scheduled."""
        if self._live:
            return  # a call still running keeps its deadline
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()

    @property
    def open_budgets(self) -> int:
        """Return how many budgets are open (entered and not left)."""
        return self._live
