"""The fake's request log: every request it received and how it answered, minus the token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestRecord", "count"]

#: Headers that carry credentials and never reach the log.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(kw_only=True)
class RequestRecord:
    """One request as the fake received it, and what it did with it."""

    method: str
    #: Path below the API root, e.g. ``/v1/kpis/5be2...``.
    path: str
    #: The ``routes.py`` template it matched, e.g. ``/v1/kpis/{kpiId}`` (None: no route).
    route: str | None
    query: dict[str, str]
    #: Request headers without Authorization (nor any other credential header).
    headers: dict[str, str]
    body: bytes
    #: The decoded JSON body, or None when it is absent or not JSON.
    json: Any
    #: Arrival time on the fake's clock.
    time: float
    request_id: str
    #: The status answered; None while in flight or when the connection was dropped.
    status: int | None = None
    #: The fault injected into this request, if any (``"503"``, ``"reset"``...).
    fault: str | None = None
    #: Whether the connection was dropped without a complete answer.
    dropped: bool = False
    #: Whether the request changed the store (a write that was applied).
    applied: bool = False


def _matches(pattern: str, record: RequestRecord) -> bool:
    if "{" not in pattern:
        return record.path == pattern
    if record.route == pattern:
        return True
    regex = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(pattern))
    return re.fullmatch(regex, record.path) is not None


def count(
    records: list[RequestRecord],
    method: str | None = None,
    path: str | None = None,
    status: int | None = None,
) -> int:
    """Return how many records match a method, a path (or template) and a status."""
    return sum(
        1
        for r in records
        if (method is None or r.method == method.upper())
        and (path is None or _matches(path, r))
        and (status is None or r.status == status)
    )
