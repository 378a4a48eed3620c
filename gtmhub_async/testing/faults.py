"""Fault injection: what goes wrong with the next answer, drawn from a seed or a script.

A fault is one of:

- an ``int`` status (e.g. 503, 429): answered before anything is applied;
- ``"reset"``: the request is applied, then the connection is dropped unanswered
  (for a write, the client cannot know whether it happened);
- ``"rst"``: like ``"reset"``, but the socket is closed with SO_LINGER 0, so the client
  gets a real TCP reset (ECONNRESET) instead of a clean end of stream;
- ``"reset-before"``: the connection is dropped before anything is applied;
- ``"500-after-write"``: a write is applied, then answered 500;
- ``"malformed"``: a 2xx JSON answer is cut in half;
- ``"slow"``: the answer body is streamed in chunks with pauses;
- ``"stall"``: nothing happens for ``stall_seconds`` before the request is handled;
- ``None``: a normal answer.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["Fault", "FaultKind", "FaultPlan", "Faults"]

FaultKind = Literal[
    "reset", "rst", "reset-before", "500-after-write", "malformed", "slow", "stall"
]
Fault = int | FaultKind | None

_KINDS: Final = frozenset(get_args(FaultKind))
#: Faults that only make sense for a request that changes data.
AFTER_WRITE: Final = frozenset({"500-after-write"})


def check_fault(fault: object) -> Fault:
    """Return ``fault`` if it is a valid fault, else raise ValueError or TypeError."""
    if fault is None:
        return None
    if isinstance(fault, bool):
        raise TypeError(f"a fault is a status, a kind or None, not {fault!r}")
    if isinstance(fault, int):
        if not 400 <= fault <= 599:
            raise ValueError(f"an injected status must be 400..599, got {fault}")
        return fault
    if isinstance(fault, str) and fault in _KINDS:
        return fault  # type: ignore[return-value]  # membership in _KINDS narrows it
    raise ValueError(f"unknown fault {fault!r}; use a status, None or one of {sorted(_KINDS)}")


def abort_with_rst(transport: asyncio.Transport) -> None:
    """Close a server connection with a TCP reset: SO_LINGER 0, then close the socket."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Set how often each fault happens; each request draws at most one fault.

    Rates are probabilities per request and must add up to at most 1. A fault that
    does not apply to a request (``500-after-write`` on a GET, ``malformed`` on a
    204) leaves that request's answer normal.
    """

    error_rate: float = 0.0
    statuses: tuple[int, ...] = (500, 502, 503, 429)
    #: Retry-After (seconds, rounded up) on injected 429 and 503; None sends none.
    retry_after: float | None = 1
    #: Seconds to wait before handling every request.
    latency: float = 0.0
    reset_rate: float = 0.0
    reset_after_write_rate: float = 0.0
    error_after_write_rate: float = 0.0
    malformed_json_rate: float = 0.0
    slow_body_rate: float = 0.0
    slow_body_chunks: int = 4
    #: Pause between two chunks of a slow body.
    slow_body_delay: float = 0.05
    stall_rate: float = 0.0
    stall_seconds: float = 30.0

    def __post_init__(self) -> None:
        rates = self._rates()
        for name, value in rates:
            _rate(name, value)
        if sum(value for _, value in rates) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        if self.error_rate and not self.statuses:
            raise ValueError("error_rate needs at least one status in statuses")
        for status in self.statuses:
            check_fault(status)
        for name in ("latency", "slow_body_delay", "stall_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if self.slow_body_chunks < 1:
            raise ValueError("slow_body_chunks must be at least 1")

    def _rates(self) -> list[tuple[str, float]]:
        return [
            ("error_rate", self.error_rate),
            ("reset_rate", self.reset_rate),
            ("reset_after_write_rate", self.reset_after_write_rate),
            ("error_after_write_rate", self.error_after_write_rate),
            ("malformed_json_rate", self.malformed_json_rate),
            ("slow_body_rate", self.slow_body_rate),
            ("stall_rate", self.stall_rate),
        ]


_RATE_KIND: Final[dict[str, FaultKind]] = {
    "reset_rate": "reset-before",
    "reset_after_write_rate": "reset",
    "error_after_write_rate": "500-after-write",
    "malformed_json_rate": "malformed",
    "slow_body_rate": "slow",
    "stall_rate": "stall",
}


class FaultPlan:
    """Decide each request's fault: the script first, then the seeded random draw."""

    def __init__(self, faults: Faults | None, seed: int) -> None:
        self.faults = faults or Faults()
        self._rng = random.Random(f"{seed}:faults")
        self._script: deque[Fault] = deque()

    def script(self, faults: Iterable[object]) -> None:
        """Queue faults for the next requests, in order (appended to any left)."""
        self._script.extend(check_fault(f) for f in faults)

    @property
    def scripted(self) -> int:
        """Return how many scripted faults are still queued."""
        return len(self._script)

    def next(self, *, write: bool) -> Fault:
        """Return the fault of the next request (``write``: it changes data)."""
        if self._script:
            return self._script.popleft()
        # Always two draws, so a given seed yields the same faults whatever they are.
        draw, pick = self._rng.random(), self._rng.random()
        faults = self.faults
        edge = faults.error_rate
        if draw < edge:
            return faults.statuses[int(pick * len(faults.statuses))]
        for name, value in faults._rates()[1:]:
            edge += value
            if draw < edge:
                kind = _RATE_KIND[name]
                if not write and (kind in AFTER_WRITE or name == "reset_after_write_rate"):
                    return None
                return kind
        return None
