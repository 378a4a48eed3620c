"""A one-line progress bar on stderr, for uploads and the demo."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress", "progress_enabled"]


class Progress:
    """Draw a one-line progress bar on a stream, at most every ``interval`` seconds."""

    def __init__(
        self,
        total: int,
        *,
        stream: IO[str] | None = None,
        enabled: bool = True,
        label: str = "",
        width: int = 24,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.label = label
        self.width = width
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.unknown = 0
        self._started = clock()
        self._drawn_at = -math.inf
        self._last_width = 0

    def update(self, done: int, *, failed: int = 0, unknown: int = 0) -> None:
        """Record how many items are finished (and of those, failed or unknown); redraw."""
        self.done, self.failed, self.unknown = done, failed, unknown
        now = self.clock()
        if self.enabled and (now - self._drawn_at >= self.interval or done >= self.total):
            self._drawn_at = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """Return the bar's text: ``label [####....] done/total pct rate ETA counts``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        share = self.done / self.total if self.total else 1.0
        filled = min(self.width, int(share * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        rate = self.done / elapsed
        if self.done >= self.total:
            eta = f"{elapsed:.1f}s"
        elif rate > 0:
            eta = f"ETA {(self.total - self.done) / rate:.0f}s"
        else:
            eta = "ETA ?"
        parts = [
            f"{self.label} [{bar}] {self.done:,}/{self.total:,} {share:4.0%}",
            f"{rate:,.0f}/s",
            eta,
        ]
        if self.failed:
            parts.append(f"failed {self.failed:,}")
        if self.unknown:
            parts.append(f"unknown {self.unknown:,}")
        return "  ".join(parts).strip()

    def _draw(self, now: float) -> None:
        assert self.stream is not None
        text = self.line(now)
        # Pad over a longer previous line: "\r" alone would leave its tail visible.
        pad = " " * max(0, self._last_width - len(text))
        self._last_width = len(text)
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(self.clock())
            assert self.stream is not None
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


def progress_enabled(flag: bool | None) -> bool:
    """Return the --progress/--no-progress choice, or by default whether stderr is a terminal."""
    if flag is not None:
        return flag
    return sys.stderr.isatty()
