"""The aiohttp layer: send one HTTP request, read the whole answer, classify failures."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

__all__ = ["Answer", "SendFailure", "send_once"]


@attrs.frozen
class Answer:
    """A complete HTTP answer."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class SendFailure(Exception):
    """Wrap a transport failure and say whether the request can have reached the server."""

    def __init__(self, cause: BaseException, *, never_sent: bool, timed_out: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.never_sent = never_sent
        self.timed_out = timed_out


async def send_once(
    http: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    query: tuple[tuple[str, str], ...],
    headers: Mapping[str, str] | None,
    body: bytes | None,
    client_timeout: aiohttp.ClientTimeout,
) -> Answer | SendFailure:
    """Send one request; return a SendFailure (not raised) when no complete answer came back.

    Returned, not raised: the caller handles both outcomes in one place, and one
    coroutine layer fewer sits between it and aiohttp. ``headers`` None: the
    session carries them (the client's own session does).
    """
    try:
        # Awaited, not entered: the two async context managers cost more than the
        # release they stand for, which the finally clause below does as well.
        resp = await http.request(
            method,
            url,
            params=query or None,
            data=body,
            headers=headers,
            timeout=client_timeout,
            # Redirects are never followed: they would carry the credentials to another host.
            allow_redirects=False,
        )
        try:
            return Answer(resp.status, resp.headers, await resp.read())
        finally:
            resp.release()
    except (
        aiohttp.ClientConnectorError,
        aiohttp.ConnectionTimeoutError,
        aiohttp.ClientHttpProxyError,
    ) as exc:
        # Connecting failed, a proxy refused the CONNECT tunnel, or no connection was free
        # in time: not one byte of the request left.
        return _failure(
            exc, never_sent=True, timed_out=isinstance(exc, aiohttp.ConnectionTimeoutError)
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Reset, disconnect or read timeout after the request may have gone out.
        return _failure(exc, never_sent=False, timed_out=isinstance(exc, TimeoutError))


def _failure(cause: BaseException, *, never_sent: bool, timed_out: bool) -> SendFailure:
    failure = SendFailure(cause, never_sent=never_sent, timed_out=timed_out)
    failure.__cause__ = cause  # as ``raise ... from cause`` would set it
    return failure
