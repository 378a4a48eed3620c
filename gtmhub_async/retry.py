"""RetryPolicy: how often, and after what, a call may be sent again."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["RetryPolicy"]


def _non_negative(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _attempts(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_attempts must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_attempts must be at least 1, got {value}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Full-jitter exponential backoff with a per-client retry quota."""

    max_attempts: int = attrs.field(default=4, validator=_attempts)
    backoff_base: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=20.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}), converter=frozenset
    )
