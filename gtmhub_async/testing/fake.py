"""FakeGtmhub: a stateful fake of the Gtmhub KPI API, served by aiohttp (127.0.0.1 by default).

The fake is an independent oracle: its routes are its own table (``endpoints.py``),
never derived from the SDK's ``routes.py``, so a wrong path in the SDK is refused
here rather than "confirmed" by both.

Each request goes through, in order: latency, authentication (401/403), the
rate limit (429), the next fault (scripted or drawn from the seed), then the
endpoint. Every answer carries an ``X-Request-Id`` and every error the body
``{"statusCode", "error", "message"}`` [I: the real error body is not published].
"""

from __future__ import annotations

import asyncio
import hmac
import math
import random
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import orjson
from aiohttp import web

from gtmhub_async.testing.endpoints import WRITE_METHODS, Api, Reply, Request
from gtmhub_async.testing.faults import Fault, FaultPlan, Faults, abort_with_rst
from gtmhub_async.testing.log import SECRET_HEADERS, RequestRecord, count
from gtmhub_async.testing.quirks import Quirks
from gtmhub_async.testing.ratelimit import SlidingWindow
from gtmhub_async.testing.seeding import StoreAccess
from gtmhub_async.testing.store import IdFactory, Store
from gtmhub_async.testing.validate import Reject

if TYPE_CHECKING:
    from gtmhub_async.client import GtmhubClient

__all__ = ["FakeGtmhub", "error_body"]

HOST: Final = "127.0.0.1"
API_PREFIX: Final = "/api"
#: How long closing waits for handlers still running; stalls are woken up before that.
_SHUTDOWN_TIMEOUT: Final = 2.0
_MAX_BODY: Final = 64 * 1024 * 1024


def error_body(status: int, message: str) -> dict[str, Any]:
    """Return the fake's error body for a status [I: shape of the vendor's other APIs]."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"statusCode": status, "error": phrase, "message": message}


class FakeGtmhub(StoreAccess):
    """Serve a fake Gtmhub KPI API; use it as ``async with FakeGtmhub() as fake``.

    It listens on ``host`` (127.0.0.1 by default) and ``port`` (0: a free one).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        rate_limit: tuple[int, float] | None = None,
        latency: float = 0.0,
        faults: Faults | None = None,
        max_page_size: int = 500,
        clock: Callable[[], float] | None = None,
        quirks: Quirks | None = None,
        host: str = HOST,
        port: int = 0,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must not be negative, got {latency!r}")
        if (
            isinstance(max_page_size, bool)
            or not isinstance(max_page_size, int)
            or (max_page_size < 1)
        ):
            raise ValueError(f"max_page_size must be a positive int, got {max_page_size!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
        rng = random.Random(seed)
        self.seed = seed
        #: The address to listen on.
        self.host = host
        self._wanted_port = port
        #: The one valid API token.
        self.token = f"fake-{rng.getrandbits(128):032x}"
        #: The one account the token may use.
        self.account_id = f"{rng.getrandbits(96):024x}"
        #: The user the token impersonates: ``mykpis`` selects the KPIs it owns.
        self.user_id = f"{rng.getrandbits(96):024x}"
        self.latency = latency
        self.max_page_size = max_page_size
        self._store = Store(
            account_id=self.account_id, user_id=self.user_id, new_id=IdFactory(rng)
        )
        self._api = Api(self._store, max_page_size=max_page_size, quirks=quirks)
        self._plan = FaultPlan(faults, seed)
        self._limit = SlidingWindow(*rate_limit) if rate_limit is not None else None
        self._clock = clock
        self._request_counter = 0
        #: Every request received, in arrival order (no credentials in it).
        self.requests: list[RequestRecord] = []
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._port: int | None = None

    # --- Lifecycle -------------------------------------------------------------------

    async def start(self) -> Self:
        """Bind ``host`` and ``port`` (a free one for 0) and start serving; OSError if taken."""
        if self._runner is not None:
            raise RuntimeError("this FakeGtmhub is already started")
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        self._closing = asyncio.Event()
        # Large bulk bodies must reach the endpoint, not aiohttp's default 1 MiB cap.
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._wanted_port)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop serving: wake stalled handlers, close connections, free the port."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """Return the bound port."""
        if self._port is None:
            raise RuntimeError("the FakeGtmhub is not started: use 'async with FakeGtmhub()'")
        return self._port

    @property
    def url(self) -> str:
        """Return the server's root URL, ``http://HOST:PORT`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Return the API root to give a client: ``http://HOST:PORT/api`` (no version)."""
        return self.url + API_PREFIX

    def client(self, **kwargs: Any) -> GtmhubClient:
        """Return a GtmhubClient for this fake (not yet opened: use ``async with``)."""
        from gtmhub_async.client import GtmhubClient

        return GtmhubClient(self.token, self.account_id, base_url=self.base_url, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        """Return valid ``Authorization`` and ``gtmhub-accountId`` headers for raw requests."""
        return {"Authorization": f"Bearer {self.token}", "gtmhub-accountId": self.account_id}

    # --- Configuration at run time ---------------------------------------------------

    @property
    def faults(self) -> Faults:
        """Return the fault rates in force."""
        return self._plan.faults

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the fault rates (None: no random faults); the script is kept."""
        self._plan.faults = faults or Faults()

    def script(self, faults: Iterable[Fault]) -> None:
        """Queue the faults of the next requests in order: a status, a kind, or None (normal)."""
        self._plan.script(faults)

    @property
    def scripted(self) -> int:
        """Return how many scripted faults have not been used yet."""
        return self._plan.scripted

    def set_rate_limit(self, rate_limit: tuple[int, float] | None) -> None:
        """Replace the server-side rate limit (requests, window seconds); None turns it off."""
        self._limit = SlidingWindow(*rate_limit) if rate_limit is not None else None

    @property
    def quirks(self) -> Quirks:
        """Return the real-API behaviours in force; assign a new ``Quirks`` to change them."""
        return self._api.quirks

    @quirks.setter
    def quirks(self, quirks: Quirks) -> None:
        self._api.quirks = quirks

    # --- Request log -------------------------------------------------------------------

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> int:
        """Return how many requests matched; ``path`` may be a template (``/v1/kpis/{kpiId}``)."""
        return count(self.requests, method, path, status)

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        self.requests.clear()

    # --- Serving -----------------------------------------------------------------------

    def _now(self) -> float:
        assert self._clock is not None
        return self._clock()

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; return True if the fake started closing meanwhile."""
        if seconds <= 0:
            return False
        closing = self._closing
        if closing is None:
            await asyncio.sleep(seconds)
            return False
        try:
            await asyncio.wait_for(closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._request_counter += 1
        request_id = f"fake-{self.seed}-{self._request_counter:06d}"
        raw = await request.read()
        path = request.path
        rel = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else None
        try:
            decoded: Any = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            decoded = None
        record = RequestRecord(
            method=request.method,
            path=rel if rel is not None else path,
            route=self._api.route_template(request.method, rel) if rel is not None else None,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
            body=raw,
            json=decoded,
            time=self._now(),
            request_id=request_id,
        )
        self.requests.append(record)
        fault: Fault = None
        try:
            fault, reply = await self._serve(request, rel, raw, record)
        except Reject as exc:
            reply = Reply(exc.status, error_body(exc.status, exc.message), exc.headers)
        if reply is None:
            return self._drop(request, record, rst=fault == "rst")
        reply.headers["X-Request-Id"] = request_id
        return await self._write(request, reply, fault, record)

    async def _serve(
        self, request: web.Request, rel: str | None, raw: bytes, record: RequestRecord
    ) -> tuple[Fault, Reply | None]:
        if await self._pause(self.latency + self._plan.faults.latency):
            return None, None
        account = self._authenticate(request)
        if rel is None:
            raise Reject(404, f"no route {request.method} {request.path}; the API is under /api")
        if self._limit is not None:
            wait = self._limit.acquire(account, record.time)
            if wait is not None:
                retry_after = SlidingWindow.retry_after(wait)
                raise Reject(
                    429,
                    f"rate limit of {self._limit.limit} requests per "
                    f"{self._limit.window:g} s exceeded; retry after {retry_after} s",
                    {"Retry-After": retry_after},
                )
        write = request.method in WRITE_METHODS
        fault = self._plan.next(write=write)
        record.fault = None if fault is None else str(fault)
        if isinstance(fault, int):
            headers = {}
            seconds = self._plan.faults.retry_after
            if fault in (429, 503) and seconds is not None:
                headers["Retry-After"] = str(math.ceil(seconds))
            message = f"{HTTPStatus(fault).phrase} (injected by FakeGtmhub)"
            raise Reject(fault, message, headers)
        if fault == "reset-before":
            return fault, None
        if fault == "stall" and await self._pause(self._plan.faults.stall_seconds):
            return fault, None
        call = Request(request.method, rel, dict(request.query), raw)
        try:
            reply = self._api.dispatch(call)
        except Reject as exc:
            reply = Reply(exc.status, error_body(exc.status, exc.message), exc.headers)
        record.applied = write and 200 <= reply.status < 300
        if fault in ("reset", "rst"):
            return fault, None
        if fault == "500-after-write" and record.applied:
            message = "Internal Server Error after the change was saved (injected by FakeGtmhub)"
            return fault, Reply(500, error_body(500, message))
        return fault, reply

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            raise Reject(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
        scheme, _, credentials = header.partition(" ")
        valid = hmac.compare_digest(
            credentials.strip().encode("utf-8", "replace"), self.token.encode()
        )
        if scheme.lower() != "bearer" or not valid:
            raise Reject(401, "invalid or revoked API token")
        account = request.headers.get("gtmhub-accountId", "").strip()
        if not account:
            raise Reject(401, "missing gtmhub-accountId header")
        if account.lower() != self.account_id:
            raise Reject(403, f"the API token has no access to account {account[:40]!r}")
        return self.account_id

    def _drop(
        self, request: web.Request, record: RequestRecord, *, rst: bool = False
    ) -> web.StreamResponse:
        record.dropped = True
        if request.transport is not None:
            if rst:
                abort_with_rst(request.transport)
            else:
                request.transport.close()
        # aiohttp finds the transport closed and sends nothing: the client sees a disconnect.
        return web.Response(status=500)

    async def _write(
        self, request: web.Request, reply: Reply, fault: Fault, record: RequestRecord
    ) -> web.StreamResponse:
        record.status = reply.status
        if reply.payload is None:
            return web.Response(status=reply.status, headers=reply.headers)
        ok = 200 <= reply.status < 300
        quirk = self._api.quirks.write_body(reply.payload) if ok and record.applied else None
        data = orjson.dumps(reply.payload) if quirk is None else quirk
        if fault == "malformed" and ok:
            data = data[: len(data) // 2]
        if fault != "slow" or not ok:
            return web.Response(
                status=reply.status,
                body=data,
                content_type="application/json",
                headers=reply.headers,
            )
        return await self._write_slowly(request, reply, data, record)

    async def _write_slowly(
        self, request: web.Request, reply: Reply, data: bytes, record: RequestRecord
    ) -> web.StreamResponse:
        faults = self._plan.faults
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = "application/json"
        response.content_length = len(data)
        size = max(1, math.ceil(len(data) / faults.slow_body_chunks))
        try:
            await response.prepare(request)
            for start in range(0, len(data), size):
                if start:
                    await self._pause(faults.slow_body_delay)
                await response.write(data[start : start + size])
            await response.write_eof()
        except ConnectionError:
            record.dropped = True
        return response
