"""One call, end to end: deadline, rate limiter, retries, transport, parsing."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Protocol, TypeVar

import aiohttp
import attrs

from gtmhub_async.errors import DeadlineExceededError, GtmhubError
from gtmhub_async.limits import Limiter
from gtmhub_async.retry import RetryPolicy, RetryQuota
from gtmhub_async.retry_decision import Attempt, CallState, Raise, Retry, decide, unknown_outcome
from gtmhub_async.routes import Call, Route
from gtmhub_async.transport import Answer, SendFailure, send_once
from gtmhub_async.wire import PreparedRequest, build_request, parse_response, parse_retry_after

__all__ = ["CallState", "ClientStats", "Session", "SessionSource"]

logger = logging.getLogger("gtmhub_async")

RespT = TypeVar("RespT")

#: Longest wait for a TCP connection (or a free pooled one) in one attempt.
CONNECT_TIMEOUT = 10.0


@attrs.define
class ClientStats:
    """Counters of what a client did, for dashboards and the demo's summary."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    transport_errors: int = 0


class SessionSource(Protocol):
    """Anything that hands out an open Session: the client, as the flows see it."""

    def open_session(self) -> Session:
        """Return the open Session, or raise ClientStateError when there is none."""
        ...


class Session:
    """Send calls for one open client: owns no connection, only the rules around them."""

    __slots__ = (
        "_base_url",
        "_headers",
        "_http",
        "_limiter",
        "_quota",
        "_retry",
        "_rng",
        "_timeout",
        "stats",
    )

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        headers: Mapping[str, str],
        limiter: Limiter | None,
        retry: RetryPolicy,
        timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._headers = dict(headers)
        self._limiter = limiter
        self._retry = retry
        self._timeout = timeout
        self._quota = RetryQuota()
        self._rng = rng or random.Random()
        self.stats = ClientStats()

    async def call(
        self, route: Route[..., RespT], params: Call, *, state: CallState | None = None
    ) -> RespT:
        """Send a call within its time budget, retrying only what may be sent again.

        ``state``, when given, is filled in as the call goes: after the call ended (even
        by cancellation) its ``in_flight`` says whether a request may have reached the server.
        """
        prepared = build_request(route, params)
        self.stats.calls += 1
        loop = asyncio.get_running_loop()
        budget = prepared.timeout if prepared.timeout is not None else self._timeout
        deadline = loop.time() + budget
        if state is None:
            state = CallState()
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    if self._limiter is not None:
                        await self._limiter.acquire()
                    state.attempt += 1
                    self.stats.attempts += 1
                    state.in_flight = True
                    answer = await self._attempt(prepared, deadline - loop.time())
                    # Still in flight while the limiter hears of the answer: a deadline
                    # then must not call an applied write "not sent".
                    delay = await self._next_delay(prepared, answer, state, deadline)
                    state.in_flight = False
                    if delay is None:
                        assert isinstance(answer, Answer)
                        return parse_response(
                            route,
                            answer.status,
                            answer.headers,
                            answer.body,
                            method=prepared.method,
                            url=self._url(prepared),
                        )
                    self.stats.retries += 1
                    logger.info(
                        "retrying %s %s (attempt %d of %d) in %.2f s",
                        prepared.method,
                        prepared.path,
                        state.attempt + 1,
                        self._retry.max_attempts,
                        delay,
                    )
                    if delay > 0:
                        await asyncio.sleep(delay)
        except TimeoutError:
            attempt = state.attempt
            if state.in_flight and not prepared.idempotent:
                raise unknown_outcome(
                    prepared,
                    self._url(prepared),
                    attempt,
                    "the call's time budget ran out "
                    f"after {budget:g} s while the request was in flight",
                ) from None
            error = DeadlineExceededError(
                f"{prepared.method} {prepared.path} did not complete within its time budget "
                f"of {budget:g} s ({attempt} attempt{'s' if attempt != 1 else ''})",
                method=prepared.method,
                url=self._url(prepared),
            )
            error.attempts = attempt
            raise error from None
        except GtmhubError as exc:
            exc.attempts = state.attempt
            raise

    async def _attempt(self, prepared: PreparedRequest, remaining: float) -> Answer | SendFailure:
        # No sock_read timer: the call's deadline (timeout_at in call()) already bounds a
        # stalled answer, and a read timer costs two reschedules per request for nothing.
        timeout = aiohttp.ClientTimeout(total=None, connect=min(remaining, CONNECT_TIMEOUT))
        try:
            return await send_once(
                self._http,
                prepared.method,
                self._url(prepared),
                query=prepared.query,
                headers=self._headers,
                body=prepared.body,
                client_timeout=timeout,
            )
        except SendFailure as failure:
            self.stats.transport_errors += 1
            return failure

    async def _next_delay(
        self,
        prepared: PreparedRequest,
        answer: Answer | SendFailure,
        state: CallState,
        deadline: float,
    ) -> float | None:
        """Return how long to wait before the next attempt, None to stop, or raise."""
        retry_after = None
        if isinstance(answer, Answer):
            status = answer.status
            if status in (429, 503):
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            if self._limiter is not None:
                await self._limiter.on_response(status, retry_after)
            if status == 429:
                self.stats.throttled += 1
            elif status >= 500:
                self.stats.server_errors += 1
        attempt = Attempt(
            request=prepared,
            url=self._url(prepared),
            retry_after=retry_after,
            limiter_waits=self._limiter is not None,
        )
        decision = decide(
            answer,
            attempt,
            state,
            self._retry,
            self._quota,
            time_left=deadline - asyncio.get_running_loop().time(),
            rng=self._rng,
        )
        if isinstance(decision, Raise):
            try:
                raise decision.error from decision.cause
            finally:
                # The error's traceback holds this frame: no reference cycle through it.
                del decision
        return decision.delay if isinstance(decision, Retry) else None

    def _url(self, prepared: PreparedRequest) -> str:
        return self._base_url + prepared.path
