"""The retry decision: what to do after one attempt, without waiting or sending.

``decide`` reads the outcome of an attempt, the call's state, the policy and the time
left, and returns ``Retry(delay)``, ``Return()`` (hand the answer to the parser) or
``Raise(error)``. The session carries the decision out; this module never touches
the event loop, so every branch is tested with plain function calls.
"""

from __future__ import annotations

import random

import attrs

from gtmhub_async.adaptive import ADAPTIVE, is_throttle
from gtmhub_async.errors import ApiError, GtmhubError, TransportError, UnknownOutcomeError
from gtmhub_async.retry import RetryPolicy, RetryQuota
from gtmhub_async.transport import Answer, SendFailure
from gtmhub_async.wire import PreparedRequest, api_error

__all__ = [
    "Attempt",
    "CallState",
    "Decision",
    "Raise",
    "Retry",
    "Return",
    "decide",
    "unknown_outcome",
]


@attrs.define
class CallState:
    """Where one call stands: attempts made, retry quota spent, whether a request is out.

    Pass one to ``Session.call(..., state=)`` to learn, after the call ended (even by
    cancellation), whether its last request may have reached the server (``in_flight``).
    """

    attempt: int = 0
    spent: int = 0
    in_flight: bool = False
    #: The last answer's Retry-After, parsed once (``Attempt.retry_after``): the session's
    #: final error reuses it.
    retry_after: float | None = None


@attrs.frozen
class Retry:
    """Send the request again after ``delay`` seconds."""

    delay: float


@attrs.frozen
class Return:
    """Stop retrying: hand the answer to the parser (a model, or the answer's ApiError)."""


@attrs.frozen
class Raise:
    """Stop with ``error`` (raised from ``cause``)."""

    error: GtmhubError
    cause: BaseException | None = None


Decision = Retry | Return | Raise


@attrs.frozen(kw_only=True)
class Attempt:
    """What the decision needs to know of the call besides its state and policy."""

    request: PreparedRequest
    url: str
    retry_after: float | None = None  #: The answer's Retry-After, parsed once by the caller.
    limiter_waits: bool = False  #: A limiter's shared gate waits out Retry-After itself.


def decide(
    outcome: Answer | SendFailure,
    attempt: Attempt,
    state: CallState,
    policy: RetryPolicy,
    quota: RetryQuota,
    *,
    time_left: float,
    rng: random.Random,
) -> Decision:
    """Decide what follows one attempt; takes retry quota from ``quota`` when retrying."""
    request = attempt.request
    if isinstance(outcome, SendFailure):
        if not (request.idempotent or outcome.never_sent):
            why = f"the connection failed after the request was sent ({outcome})"
            return Raise(unknown_outcome(request, attempt.url, state.attempt, why), outcome.cause)
        if state.attempt >= policy.max_attempts or not _take_quota(
            quota, state, outcome.timed_out
        ):
            return Raise(_transport_error(request, attempt.url, outcome, state), outcome.cause)
        return Retry(policy.backoff(state.attempt, rng))

    status = outcome.status
    retry_after = attempt.retry_after
    if status < 400:
        # botocore's rule: a success refunds what its retries cost, or one token.
        quota.give_back(state.spent or 1)
        return Return()
    if not policy.retries_status(status, idempotent=request.idempotent, retry_after=retry_after):
        if status >= 500 and not request.idempotent:
            cause = _api_error(attempt, outcome)
            why = f"the server answered {status}"
            return Raise(unknown_outcome(request, attempt.url, state.attempt, why, cause), cause)
        return Return()
    if state.attempt >= policy.max_attempts:
        return Return()
    if retry_after is not None and is_throttle(status, retry_after):
        if retry_after > policy.max_retry_after or retry_after > time_left:
            error = _api_error(attempt, outcome)
            limit = min(policy.max_retry_after, time_left)
            error.message += (
                f" (Retry-After {retry_after:g} s is longer than the {limit:.3g} s "
                "this call may still wait)"
            )
            return Raise(error)
        # With a limiter, its shared gate makes every coroutine wait out the
        # Retry-After once; sleeping here too would wait twice. The gate closes for
        # at most ADAPTIVE.max_gate: a longer Retry-After is waited out here in full.
        gated = attempt.limiter_waits and ADAPTIVE.gate_seconds(retry_after) >= retry_after
        return Retry(0.0 if gated else retry_after)
    if not _take_quota(quota, state, False):
        return Return()
    return Retry(policy.backoff(state.attempt, rng))


def _take_quota(quota: RetryQuota, state: CallState, timed_out: bool) -> bool:
    cost = quota.take(timed_out=timed_out)
    state.spent += cost
    return cost > 0


def _api_error(attempt: Attempt, answer: Answer) -> ApiError:
    return api_error(
        answer.status,
        answer.headers,
        answer.body,
        method=attempt.request.method,
        url=attempt.url,
        retry_after=attempt.retry_after,
    )


def unknown_outcome(
    request: PreparedRequest, url: str, attempts: int, why: str, cause: ApiError | None = None
) -> UnknownOutcomeError:
    """Build the error for a write that may have been applied and is not sent again."""
    error = UnknownOutcomeError(
        f"{request.method} {request.path} may have been applied: {why}. It was not "
        "sent again, because sending it twice could apply it twice; check the server "
        "before retrying it yourself",
        method=request.method,
        url=url,
        request=request,
        response_error=cause,
    )
    error.attempts = attempts
    error.__cause__ = cause
    return error


def _transport_error(
    request: PreparedRequest, url: str, failure: SendFailure, state: CallState
) -> TransportError:
    attempts = state.attempt
    error = TransportError(
        f"{request.method} {request.path} failed after {attempts} attempt"
        f"{'s' if attempts != 1 else ''}: {type(failure.cause).__name__}: {failure}",
        method=request.method,
        url=url,
    )
    error.attempts = attempts
    return error
