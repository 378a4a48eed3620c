"""A user's file: every public name, checked by ``mypy --strict`` (tests/test_typing_user.py).

Never run. Each ``reveal_type`` line says, after ``# expect:``, the type mypy must reveal;
``RedisRateLimit`` included, which the package serves lazily (the redis extra).
"""

from __future__ import annotations

from typing import reveal_type

from gtmhub_async import (
    DEFAULT_BASE_URL,
    UNSET,
    Aggregation,
    ApiError,
    AuthenticationError,
    BadRequestError,
    BulkResult,
    ClientStateError,
    ClientStats,
    ConflictError,
    CreateKpiRequest,
    DeadlineExceededError,
    Formatting,
    GtmhubClient,
    GtmhubError,
    ItemResult,
    Kpi,
    KpiFormatting,
    KpiIterator,
    KpiPage,
    KpiPageIterator,
    KpiSnapshot,
    KpiSnapshotRequest,
    Limiter,
    LimiterFactory,
    LimiterStats,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    RateLimiterUnavailableError,
    RedisRateLimit,
    Region,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    SnapshotConflictError,
    SnapshotUpload,
    TargetOperator,
    TransportError,
    UnexpectedRedirectError,
    UnknownOutcomeError,
    Unset,
    UpdateKpiRequest,
    VirtualKpiGroup,
    WriteResult,
    __version__,
)


def every_public_class(
    p_aggregation: Aggregation,
    p_api_error: ApiError,
    p_authentication_error: AuthenticationError,
    p_bad_request_error: BadRequestError,
    p_bulk_result: BulkResult,
    p_client_state_error: ClientStateError,
    p_client_stats: ClientStats,
    p_conflict_error: ConflictError,
    p_create_kpi_request: CreateKpiRequest,
    p_deadline_exceeded_error: DeadlineExceededError,
    p_formatting: Formatting,
    p_gtmhub_client: GtmhubClient,
    p_gtmhub_error: GtmhubError,
    p_item_result: ItemResult,
    p_kpi: Kpi,
    p_kpi_formatting: KpiFormatting,
    p_kpi_iterator: KpiIterator,
    p_kpi_page: KpiPage,
    p_kpi_page_iterator: KpiPageIterator,
    p_kpi_snapshot: KpiSnapshot,
    p_kpi_snapshot_request: KpiSnapshotRequest,
    p_limiter: Limiter,
    p_limiter_factory: LimiterFactory,
    p_limiter_stats: LimiterStats,
    p_not_found_error: NotFoundError,
    p_pagination_error: PaginationError,
    p_payment_required_error: PaymentRequiredError,
    p_permission_denied_error: PermissionDeniedError,
    p_rate_limit: RateLimit,
    p_rate_limit_error: RateLimitError,
    p_unavailable: RateLimiterUnavailableError,
    p_region: Region,
    p_response_decode_error: ResponseDecodeError,
    p_retry_policy: RetryPolicy,
    p_server_error: ServerError,
    p_snapshot_conflict_error: SnapshotConflictError,
    p_snapshot_upload: SnapshotUpload,
    p_target_operator: TargetOperator,
    p_transport_error: TransportError,
    p_unexpected_redirect_error: UnexpectedRedirectError,
    p_unknown_outcome_error: UnknownOutcomeError,
    p_unset: Unset,
    p_update_kpi_request: UpdateKpiRequest,
    p_virtual_kpi_group: VirtualKpiGroup,
    p_write_result: WriteResult,
    p_redis_rate_limit: RedisRateLimit,
) -> None:
    """Reveal one value of each public class."""
    reveal_type(p_aggregation)  # expect: gtmhub_async.models.Aggregation
    reveal_type(p_api_error)  # expect: gtmhub_async.errors.ApiError
    reveal_type(p_authentication_error)  # expect: gtmhub_async.errors.AuthenticationError
    reveal_type(p_bad_request_error)  # expect: gtmhub_async.errors.BadRequestError
    reveal_type(p_bulk_result)  # expect: gtmhub_async.bulk_result.BulkResult
    reveal_type(p_client_state_error)  # expect: gtmhub_async.errors.ClientStateError
    reveal_type(p_client_stats)  # expect: gtmhub_async.session.ClientStats
    reveal_type(p_conflict_error)  # expect: gtmhub_async.errors.ConflictError
    reveal_type(p_create_kpi_request)  # expect: gtmhub_async.models.CreateKpiRequest
    reveal_type(p_deadline_exceeded_error)  # expect: gtmhub_async.errors.DeadlineExceededError
    reveal_type(p_formatting)  # expect: gtmhub_async.models.Formatting
    reveal_type(p_gtmhub_client)  # expect: gtmhub_async.client.GtmhubClient
    reveal_type(p_gtmhub_error)  # expect: gtmhub_async.errors.GtmhubError
    reveal_type(p_item_result)  # expect: gtmhub_async.bulk_result.ItemResult
    reveal_type(p_kpi)  # expect: gtmhub_async.models.Kpi
    reveal_type(p_kpi_formatting)  # expect: gtmhub_async.models.KpiFormatting
    reveal_type(p_kpi_iterator)  # expect: gtmhub_async.pagination.KpiIterator
    reveal_type(p_kpi_page)  # expect: gtmhub_async.models.KpiPage
    reveal_type(p_kpi_page_iterator)  # expect: gtmhub_async.pagination.KpiPageIterator
    reveal_type(p_kpi_snapshot)  # expect: gtmhub_async.models.KpiSnapshot
    reveal_type(p_kpi_snapshot_request)  # expect: gtmhub_async.models.KpiSnapshotRequest
    reveal_type(p_limiter)  # expect: gtmhub_async.limits.Limiter
    reveal_type(p_limiter_factory)  # expect: gtmhub_async.limits.LimiterFactory
    reveal_type(p_limiter_stats)  # expect: gtmhub_async.limits.LimiterStats
    reveal_type(p_not_found_error)  # expect: gtmhub_async.errors.NotFoundError
    reveal_type(p_pagination_error)  # expect: gtmhub_async.errors.PaginationError
    reveal_type(p_payment_required_error)  # expect: gtmhub_async.errors.PaymentRequiredError
    reveal_type(p_permission_denied_error)  # expect: gtmhub_async.errors.PermissionDeniedError
    reveal_type(p_rate_limit)  # expect: gtmhub_async.limits.RateLimit
    reveal_type(p_rate_limit_error)  # expect: gtmhub_async.errors.RateLimitError
    reveal_type(p_unavailable)  # expect: gtmhub_async.errors.RateLimiterUnavailableError
    reveal_type(p_region)  # expect: gtmhub_async.client.Region
    reveal_type(p_response_decode_error)  # expect: gtmhub_async.errors.ResponseDecodeError
    reveal_type(p_retry_policy)  # expect: gtmhub_async.retry.RetryPolicy
    reveal_type(p_server_error)  # expect: gtmhub_async.errors.ServerError
    reveal_type(p_snapshot_conflict_error)  # expect: gtmhub_async.errors.SnapshotConflictError
    reveal_type(p_snapshot_upload)  # expect: gtmhub_async.bulk_result.SnapshotUpload
    reveal_type(p_target_operator)  # expect: gtmhub_async.models.TargetOperator
    reveal_type(p_transport_error)  # expect: gtmhub_async.errors.TransportError
    reveal_type(p_unexpected_redirect_error)  # expect: gtmhub_async.errors.UnexpectedRedirectError
    reveal_type(p_unknown_outcome_error)  # expect: gtmhub_async.errors.UnknownOutcomeError
    reveal_type(p_unset)  # expect: gtmhub_async.models.Unset
    reveal_type(p_update_kpi_request)  # expect: gtmhub_async.models.UpdateKpiRequest
    reveal_type(p_virtual_kpi_group)  # expect: gtmhub_async.models.VirtualKpiGroup
    reveal_type(p_write_result)  # expect: gtmhub_async.models.WriteResult
    reveal_type(p_redis_rate_limit)  # expect: gtmhub_async.redis_limits.config.RedisRateLimit


def the_other_names(client: GtmhubClient) -> None:
    """Reveal the constants, the redis limiter a user builds, and the client's snapshots."""
    reveal_type(DEFAULT_BASE_URL)  # expect: Literal['https://app.gtmhub.com/api']?
    reveal_type(__version__)  # expect: str
    reveal_type(UNSET)  # expect: Literal[gtmhub_async.models.Unset.UNSET]?
    limit = RedisRateLimit.from_url("redis://localhost:6379/0", 40)
    reveal_type(limit)  # expect: gtmhub_async.redis_limits.config.RedisRateLimit
    reveal_type(client.stats)  # expect: gtmhub_async.session.ClientStats
    reveal_type(client.limiter)  # expect: gtmhub_async.limits.Limiter | None
    reveal_type(RateLimit(10).open(key="k"))  # expect: gtmhub_async.limits.Limiter
