"""The Lua script of the shared schedule (``script.lua``, package data) and its arguments."""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from typing import TYPE_CHECKING, Final

from gtmhub_async.adaptive import ADAPTIVE

if TYPE_CHECKING:
    from gtmhub_async.redis_limits.config import RedisRateLimit

__all__ = ["SCRIPT", "SCRIPT_SHA", "US", "Unavailable", "script_args"]

#: One script, three modes ("acquire", "check", "throttle"); every number it uses
#: comes from ARGV, the adaptive ones from ``adaptive.ADAPTIVE``.
SCRIPT: Final = (resources.files(__package__) / "script.lua").read_text("utf-8")
SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode()).hexdigest()

#: Microseconds per second: the script counts time in integer microseconds.
US: Final = 1_000_000.0


class Unavailable(Exception):
    """Redis did not answer in time, or answered with an error."""


def script_args(
    mode: str,
    config: RedisRateLimit,
    *,
    span: float,
    last_slot: int,
    rejoin: float,
    delay: float,
    status: int,
    slot: int,
    saturated: bool,
    forfeit: int,
) -> tuple[str, ...]:
    """Return the script's ARGV, in the order ``script.lua`` reads them."""
    p = ADAPTIVE
    # The order is the script's ARGV[1..26]; a pair of lists that must match by hand.
    return (
        mode,
        repr(config.max_rate),
        repr(span * US),
        repr(config.time_period * US),
        repr(config.floor),
        str(config.expected_workers),
        str(math.ceil(config.idle_ttl * 1000)),
        str(last_slot),
        repr(rejoin * US),
        repr(delay * US if delay >= 0 else -1.0),
        repr(p.max_gate * US),
        repr(p.beta),
        repr(p.hold),
        repr(p.confirm_band),
        repr(p.doubling_periods),
        repr(p.recovery_periods),
        repr(p.probe_first),
        repr(p.probe_max),
        repr(p.wave_share),
        str(p.wave_min),
        repr(p.backoff_first * US),
        repr(p.backoff_max * US),
        str(status),
        str(slot),
        "1" if saturated else "0",
        str(forfeit),
    )
