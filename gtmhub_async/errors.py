"""The exception tree: every error the SDK raises is a GtmhubError."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ClientStateError",
    "ConflictError",
    "DeadlineExceededError",
    "GtmhubError",
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "ResponseDecodeError",
    "ServerError",
    "SnapshotConflictError",
    "TransportError",
    "UnexpectedRedirectError",
    "UnknownOutcomeError",
    "error_for_status",
]

#: Longest excerpt of a response body kept in an error message.
EXCERPT_LIMIT = 300


def excerpt(body: bytes | str | None, limit: int = EXCERPT_LIMIT) -> str:
    """Return a short printable excerpt of a body for an error message."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    if len(text) > limit:
        return text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


class GtmhubError(Exception):
    """Base class of every error raised by gtmhub_async."""

    #: How many HTTP attempts the failed call made (0 when nothing was sent).
    attempts: int = 0


class ClientStateError(GtmhubError, RuntimeError):
    """Raise when the client is used outside ``async with``, after close, or on another loop."""


class ApiError(GtmhubError):
    """Raise for a non-2xx answer from the API."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: Any = None,
        method: str = "",
        url: str = "",
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.url = url
        self.request_id = request_id
        super().__init__(status, message)

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        rid = f" [request id {self.request_id}]" if self.request_id else ""
        return f"HTTP {self.status}{where}: {self.message}{rid}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class BadRequestError(ApiError):
    """Raise for HTTP 400: the API rejected the request as invalid."""


class AuthenticationError(ApiError):
    """Raise for HTTP 401: the token is missing, wrong or revoked."""


class PaymentRequiredError(ApiError):
    """Raise for HTTP 402: the account's plan does not include this feature."""


class PermissionDeniedError(ApiError):
    """Raise for HTTP 403: the token's user may not do this, or the account id is wrong."""


class NotFoundError(ApiError):
    """Raise for HTTP 404: no such resource."""


class ConflictError(ApiError):
    """Raise for HTTP 409: the request conflicts with the resource's state."""


class RateLimitError(ApiError):
    """Raise for HTTP 429 when the call cannot wait out the throttling."""

    def __init__(
        self, status: int, message: str, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(status, message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """Raise for HTTP 5xx: the server failed."""


class UnexpectedRedirectError(ApiError):
    """Raise for a 3xx answer: the SDK never follows redirects with credentials."""


class TransportError(GtmhubError):
    """Raise when the request could not be completed: connection failure or timeout."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class DeadlineExceededError(TransportError):
    """Raise when the call's time budget ran out before an answer arrived."""


class UnknownOutcomeError(TransportError):
    """Raise when a write may have been applied: it was sent, but no answer came back."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        request: Any = None,
        response_error: ApiError | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        #: The prepared request (method, path, query, body) that may have been applied.
        self.request = request
        #: The 5xx answer that left the outcome unknown, if the server answered at all.
        self.response_error = response_error


class SnapshotConflictError(UnknownOutcomeError):
    """Raise when a snapshot read back holds neither the intended value nor nothing.

    The item's outcome stays unknown: the message says what the day holds.
    """

    def __init__(self, message: str, *, kpi_id: str = "", found: Any = None) -> None:
        super().__init__(message, method="POST")
        #: The KPI whose day was read back.
        self.kpi_id = kpi_id
        #: What the read-back found on that day (the snapshots' values).
        self.found = found


class ResponseDecodeError(GtmhubError):
    """Raise when a 2xx body is not what the endpoint's model expects."""

    def __init__(
        self,
        message: str,
        *,
        body: bytes | str | None = None,
        status: int = 200,
        method: str = "",
        url: str = "",
    ) -> None:
        self.body_excerpt = excerpt(body)
        self.status = status
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method else ""
        super().__init__(f"{message}{where}; body: {self.body_excerpt!r}")


class RateLimiterUnavailableError(GtmhubError):
    """Raise when a shared rate limiter's backend (Redis) cannot be reached in time."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_for_status(status: int) -> type[ApiError]:
    """Return the exception class that stands for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 300 <= status < 400:
        return UnexpectedRedirectError
    if status >= 500:
        return ServerError
    return ApiError


class PaginationError(GtmhubError):
    """Raise when a page of a walk failed; ``position`` is where to resume, the cause is chained.

    ``client.kpis.list(start=exc.position, max_items=...)`` continues the walk with
    the first item that was not yielded; ``yielded`` says how many items were.
    """

    def __init__(self, message: str, *, position: int, yielded: int) -> None:
        super().__init__(message)
        #: The skip of the first item not yielded: pass it as ``start`` to resume.
        self.position = position
        #: How many items the walk had yielded before it failed.
        self.yielded = yielded
