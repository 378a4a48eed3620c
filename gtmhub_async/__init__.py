"""Asyncio SDK for the Gtmhub (Quantive Results) KPI API.

The stable public surface is the names in ``__all__`` below (plus ``RedisRateLimit``,
which needs the ``redis`` extra) and these public modules:

- ``gtmhub_async``: the client, models, errors, limiters and results re-exported here;
- ``gtmhub_async.testing``: ``FakeGtmhub`` and its faults, to test code that uses the SDK;
- ``gtmhub_async.testing.plugin``: the pytest fixtures (opt-in, needs the ``testing`` extra);
- ``gtmhub_async.redis_limits``: ``RedisRateLimit`` (needs the ``redis`` extra);
- ``gtmhub_async.network``: ``ProxySettings`` and the proxy/TLS helpers;
- ``gtmhub_async.cli``: the ``gtmhub-async`` program (needs the ``cli`` extra).

Every other module (``routes``, ``wire``, ``session``, ``converter``, ``transport``,
``resources``, ``pagination``, ``bulk``, ``limits``, ``models``, ``errors``, ``retry``, ...)
is internal: import its public names from ``gtmhub_async`` instead; they may move.
"""

from typing import TYPE_CHECKING

from gtmhub_async._version import __version__
from gtmhub_async.bulk import BulkResult, ItemResult, SnapshotUpload
from gtmhub_async.client import DEFAULT_BASE_URL, GtmhubClient, Region
from gtmhub_async.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ClientStateError,
    ConflictError,
    DeadlineExceededError,
    GtmhubError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RateLimiterUnavailableError,
    ResponseDecodeError,
    ServerError,
    SnapshotConflictError,
    TransportError,
    UnexpectedRedirectError,
    UnknownOutcomeError,
)
from gtmhub_async.limits import Limiter, LimiterFactory, LimiterStats, RateLimit
from gtmhub_async.models import (
    UNSET,
    Aggregation,
    CreateKpiRequest,
    Formatting,
    Kpi,
    KpiFormatting,
    KpiPage,
    KpiSnapshot,
    KpiSnapshotRequest,
    TargetOperator,
    Unset,
    UpdateKpiRequest,
    VirtualKpiGroup,
    WriteResult,
)
from gtmhub_async.pagination import KpiIterator, KpiPageIterator, PaginationError
from gtmhub_async.retry import RetryPolicy
from gtmhub_async.session import ClientStats

if TYPE_CHECKING:
    # Seen by type checkers only: at run time it is imported on first use (below), so the
    # package imports without the redis extra.
    from gtmhub_async.redis_limits import RedisRateLimit as RedisRateLimit

__all__ = [
    "DEFAULT_BASE_URL",
    "UNSET",
    "Aggregation",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BulkResult",
    "ClientStateError",
    "ClientStats",
    "ConflictError",
    "CreateKpiRequest",
    "DeadlineExceededError",
    "Formatting",
    "GtmhubClient",
    "GtmhubError",
    "ItemResult",
    "Kpi",
    "KpiFormatting",
    "KpiIterator",
    "KpiPage",
    "KpiPageIterator",
    "KpiSnapshot",
    "KpiSnapshotRequest",
    "Limiter",
    "LimiterFactory",
    "LimiterStats",
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "Region",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "SnapshotConflictError",
    "SnapshotUpload",
    "TargetOperator",
    "TransportError",
    "UnexpectedRedirectError",
    "UnknownOutcomeError",
    "Unset",
    "UpdateKpiRequest",
    "VirtualKpiGroup",
    "WriteResult",
    "__version__",
]
# Not in __all__: RedisRateLimit needs the redis extra, and `from gtmhub_async import *` must
# work without it. `from gtmhub_async import RedisRateLimit` works with the extra installed.

_REDIS_MISSING = "RedisRateLimit needs the redis extra: pip install 'gtmhub-async[redis]'"


def __getattr__(name: str) -> object:
    """Import RedisRateLimit on first use, so the core works without the redis extra."""
    if name == "RedisRateLimit":
        try:
            import redis  # noqa: F401 - only to tell a missing extra from a broken module
        except ImportError:
            raise ImportError(_REDIS_MISSING, name="redis") from None
        from gtmhub_async.redis_limits import RedisRateLimit

        return RedisRateLimit
    raise AttributeError(f"module 'gtmhub_async' has no attribute {name!r}")
