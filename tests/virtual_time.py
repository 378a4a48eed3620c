"""A virtual-time event loop for tests: timers fire at once, in order, without sleeping."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
        self._vloop.now += max(timeout, 1e-6)
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose time jumps to the next timer instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh virtual-time loop."""

    async def wrapper() -> T:
        return await main()

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(wrapper())
