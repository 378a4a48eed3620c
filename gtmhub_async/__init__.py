"""Asyncio SDK for the Gtmhub (Quantive Results) KPI API."""

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
from gtmhub_async.limits import RateLimit
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
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RedisRateLimit",
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


def __getattr__(name: str) -> object:
    """Import RedisRateLimit on first use, so the core works without the redis extra."""
    if name == "RedisRateLimit":
        try:
            from gtmhub_async.redis_limits import RedisRateLimit
        except ImportError as exc:
            raise ImportError(
                "RedisRateLimit needs the redis extra: pip install 'gtmhub-async[redis]'"
            ) from exc
        return RedisRateLimit
    raise AttributeError(f"module 'gtmhub_async' has no attribute {name!r}")
