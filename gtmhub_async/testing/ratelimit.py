"""The fake's server-side rate limit: N admitted requests per account per sliding window.

The real API's limits are not published [I]; this one counts only the requests
it admits, so a client that waits the Retry-After it was given gets through.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Admit at most ``limit`` requests per key within any ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the rate limit must be a positive int of requests, got {limit!r}")
        if not window > 0:
            raise ValueError(f"the rate-limit window must be positive seconds, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self._arrivals: dict[str, deque[float]] = {}

    def acquire(self, key: str, now: float) -> float | None:
        """Admit a request arriving at ``now`` (None), or return the seconds until one may."""
        arrivals = self._arrivals.setdefault(key, deque())
        while arrivals and arrivals[0] <= now - self.window:
            arrivals.popleft()
        if len(arrivals) < self.limit:
            arrivals.append(now)
            return None
        return arrivals[0] + self.window - now

    @staticmethod
    def retry_after(seconds: float) -> str:
        """Return a Retry-After header value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(seconds - 1e-9)))
