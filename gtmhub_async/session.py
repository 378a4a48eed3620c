"""One call, end to end: deadline, rate limiter, retries, transport, parsing."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import attrs
from yarl import URL

from gtmhub_async.deadline import Deadlines
from gtmhub_async.errors import DeadlineExceededError, GtmhubError
from gtmhub_async.limits import Limiter, LocalLimiter
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
        "_connect_timeout",
        "_deadlines",
        "_fast",
        "_headers",
        "_http",
        "_limiter",
        "_quota",
        "_retry",
        "_rng",
        "_root",
        "_root_path",
        "_timeout",
        "stats",
    )

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        headers: Mapping[str, str] | None,
        limiter: Limiter | None,
        retry: RetryPolicy,
        timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url
        # None: the aiohttp session carries them (merged once, not on every request).
        self._headers = None if headers is None else dict(headers)
        root = URL(base_url)
        self._root = root
        self._root_path = root.raw_path.rstrip("/")
        self._connect_timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT)
        self._limiter = limiter
        # A LocalLimiter whose hooks are its own is used through its synchronous fast
        # paths; a subclass that overrides acquire or on_response hears every request.
        self._fast: LocalLimiter | None = (
            limiter
            if isinstance(limiter, LocalLimiter)
            and type(limiter).acquire is LocalLimiter.acquire
            and type(limiter).on_response is LocalLimiter.on_response
            else None
        )
        self._retry = retry
        self._timeout = timeout
        self._quota = RetryQuota()
        self._deadlines = Deadlines()
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
        # One clock read serves the deadline, the limiter and the first attempt's budget.
        now = loop.time()
        deadline = now + budget
        if state is None:
            state = CallState()
        try:
            # asyncio.timeout_at's rules, with one loop timer per client (deadline.py).
            with self._deadlines.at(deadline):
                limiter, fast = self._limiter, self._fast
                while True:
                    if limiter is not None and (fast is None or not fast.try_acquire(now)):
                        await limiter.acquire()
                        now = loop.time()
                    state.attempt += 1
                    self.stats.attempts += 1
                    state.in_flight = True
                    answer = await self._attempt(prepared, deadline - now)
                    delay: float | None
                    if (
                        type(answer) is Answer
                        and 200 <= answer.status < 300
                        and (limiter is None or fast is not None)
                    ):
                        # A 2xx answer: what decide() does for it, without a coroutine.
                        if fast is not None:
                            fast.heard(answer.status, None)
                        self._quota.give_back(state.spent or 1)
                        delay = None
                    else:
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
                            retry_after=state.retry_after,
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
                    now = loop.time()
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

    def close(self) -> None:
        """Release what the session scheduled; called when its client closes."""
        self._deadlines.close()

    def _attempt(
        self, prepared: PreparedRequest, remaining: float
    ) -> Coroutine[Any, Any, Answer | SendFailure]:
        # Not a coroutine itself: it hands back send_once's, one layer fewer per await.
        # No sock_read timer: the call's deadline (deadline.py, in call()) already bounds
        # a stalled answer, and a read timer costs two reschedules per request for nothing.
        timeout = (
            self._connect_timeout
            if remaining >= CONNECT_TIMEOUT
            else aiohttp.ClientTimeout(total=None, connect=remaining)
        )
        return send_once(
            self._http,
            prepared.method,
            # Built from the parsed root: the path is quoted already (build_request).
            self._root.with_path(self._root_path + prepared.path, encoded=True),
            query=prepared.query,
            headers=self._headers,
            body=prepared.body,
            client_timeout=timeout,
        )

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
            if self._fast is not None:
                self._fast.heard(status, retry_after)
            elif self._limiter is not None:
                await self._limiter.on_response(status, retry_after)
            if status == 429:
                self.stats.throttled += 1
            elif status >= 500:
                self.stats.server_errors += 1
        else:
            self.stats.transport_errors += 1
        # Parsed once per answer: the decision and the error that ends the call reuse it.
        state.retry_after = retry_after
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
