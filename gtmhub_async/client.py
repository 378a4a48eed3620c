"""GtmhubClient: the async context manager that owns the session, limiter and resources."""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import os
import random
import ssl
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import aiohttp
import attrs

from gtmhub_async._validate import check_object_id, check_timeout
from gtmhub_async._version import __version__
from gtmhub_async.errors import ClientStateError
from gtmhub_async.limits import DEFAULT_RATE_LIMIT, Limiter, LimiterFactory
from gtmhub_async.network import (
    ProxyAuth,
    ProxySettings,
    choose_proxy,
    make_ssl_context,
    open_http_session,
)
from gtmhub_async.resources import Insights, Kpis, KpiSnapshots, Users
from gtmhub_async.retry import RetryPolicy
from gtmhub_async.routes import RawCall, raw_route
from gtmhub_async.session import ClientStats, Session

__all__ = ["DEFAULT_BASE_URL", "GtmhubClient", "Region"]

#: The legacy EU API root [C]; routes add ``/v1/...`` or ``/v2/...``.
DEFAULT_BASE_URL: Final = "https://app.gtmhub.com/api"
DEFAULT_TIMEOUT: Final = 30.0
USER_AGENT: Final = f"gtmhub-async/{__version__}"


class Region(enum.StrEnum):
    """A data centre of Gtmhub / Quantive Results.

    eu, us, as, sa and au hosts are confirmed [C]; us2 and af follow the same
    pattern from the vendor's list of data centres [I].
    """

    EU = "eu"
    US = "us"
    US2 = "us2"
    AS = "as"
    AF = "af"
    SA = "sa"
    AU = "au"

    def base_url(self, *, legacy: bool = False) -> str:
        """Return the API root: the Quantive host, or the legacy gtmhub.com one."""
        if legacy:
            if self is Region.EU:
                return "https://app.gtmhub.com/api"
            if self is Region.US:
                return "https://app.us.gtmhub.com/api"
            raise ValueError(f"no legacy gtmhub.com host is known for region {self.value!r}")
        if self is Region.EU:
            return "https://app.quantive.com/results/api"
        return f"https://app.{self.value}.quantive.com/results/api"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"base_url must use https (plain http would send the token in clear): {base_url!r}; "
            "http is accepted only for loopback hosts such as a local fake server"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
    root = base_url.rstrip("/")
    if root.endswith(("/v1", "/v2")):
        raise ValueError(
            f"base_url is the API root without the version, e.g. {DEFAULT_BASE_URL!r}; "
            f"got {base_url!r}"
        )
    return root


def _check_secret(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if any(ch.isspace() for ch in value) or any(ord(ch) < 32 for ch in value):
        # Never echo the value: it is a credential.
        raise ValueError(f"{name} must not contain whitespace or control characters")
    return value


class GtmhubClient:
    """An async client of the Gtmhub KPI API; use it as ``async with GtmhubClient(...)``."""

    insights: Insights
    kpi_snapshots: KpiSnapshots
    kpis: Kpis
    users: Users

    def __init__(
        self,
        token: str,
        account_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        seed: int | None = None,
        proxy: str | None = None,
        proxy_auth: ProxyAuth | None = None,
        trust_env: bool = True,
        ca_bundle: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._token = _check_secret(token, "token")
        self.account_id = _check_secret(account_id, "account_id")
        check_object_id(account_id, "account_id")
        self.base_url = _check_base_url(base_url)
        if rate_limit is not None and not isinstance(rate_limit, LimiterFactory):
            raise TypeError(
                f"rate_limit must be a RateLimit, a RedisRateLimit or None, "
                f"got {type(rate_limit).__name__}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        check_timeout(timeout)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError(f"session must be an aiohttp.ClientSession, got {type(session)}")
        if session is not None and (
            proxy is not None or ca_bundle is not None or ssl_context is not None
        ):
            raise ValueError(
                "proxy, ca_bundle and ssl_context configure the client's own session; "
                "set them on the aiohttp session you pass instead"
            )
        if proxy_auth is not None and not (
            isinstance(proxy_auth, tuple)
            and len(proxy_auth) >= 2
            and all(isinstance(part, str) for part in proxy_auth[:2])
        ):
            raise TypeError(
                "proxy_auth must be a (login, password) pair of str or an aiohttp.BasicAuth"
            )
        if not isinstance(trust_env, bool):
            raise TypeError(f"trust_env must be a bool, got {type(trust_env).__name__}")
        # Checked now, so a bad proxy URL fails at construction; read again at each open.
        choose_proxy(self.base_url, proxy=proxy, proxy_auth=proxy_auth, trust_env=False)
        make_ssl_context(ca_bundle=ca_bundle, ssl_context=ssl_context, trust_env=False)
        self._proxy = proxy
        self._proxy_auth = proxy_auth
        self.trust_env = trust_env
        self._ca_bundle = ca_bundle
        self._ssl_context = ssl_context
        self.rate_limit = rate_limit
        self.retry = retry or RetryPolicy()
        self.timeout = float(timeout)
        self._injected = session
        self._trace_configs = list(trace_configs)
        self._seed = seed
        self._state = "new"
        self._http: aiohttp.ClientSession | None = None
        self._proxy_settings: ProxySettings | None = None
        #: Whether the open aiohttp session sends the credentials itself.
        self._session_headers = False
        self._limiter: Limiter | None = None
        self._session_obj: Session | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.insights = Insights(self)
        self.kpi_snapshots = KpiSnapshots(self)
        self.kpis = Kpis(self)
        self.users = Users(self)

    @classmethod
    def for_region(
        cls,
        region: Region | str,
        token: str,
        account_id: str,
        *,
        legacy: bool = False,
        **kwargs: Any,
    ) -> Self:
        """Return a client for a data centre's API root (``legacy`` for gtmhub.com hosts)."""
        try:
            known = Region(region)
        except ValueError:
            names = ", ".join(r.value for r in Region)
            raise ValueError(f"unknown region {region!r}; known regions: {names}") from None
        return cls(token, account_id, base_url=known.base_url(legacy=legacy), **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """Return a client configured by GTMHUB_TOKEN, GTMHUB_ACCOUNT_ID and GTMHUB_BASE_URL.

        GTMHUB_PROXY and GTMHUB_CA_BUNDLE, when set, give ``proxy`` and ``ca_bundle``.
        """
        missing = [n for n in ("GTMHUB_TOKEN", "GTMHUB_ACCOUNT_ID") if not os.environ.get(n)]
        if missing:
            raise ValueError(f"set {' and '.join(missing)} in the environment")
        if os.environ.get("GTMHUB_BASE_URL"):
            kwargs.setdefault("base_url", os.environ["GTMHUB_BASE_URL"])
        if os.environ.get("GTMHUB_PROXY"):
            kwargs.setdefault("proxy", os.environ["GTMHUB_PROXY"])
        if os.environ.get("GTMHUB_CA_BUNDLE") and "ssl_context" not in kwargs:
            kwargs.setdefault("ca_bundle", os.environ["GTMHUB_CA_BUNDLE"])
        return cls(os.environ["GTMHUB_TOKEN"], os.environ["GTMHUB_ACCOUNT_ID"], **kwargs)

    def __repr__(self) -> str:
        return (
            f"GtmhubClient(account_id={self.account_id!r}, base_url={self.base_url!r}, "
            f"state={self._state!r})"
        )

    @property
    def stats(self) -> ClientStats:
        """Return a snapshot of the counters of the open (or last opened) client."""
        if self._session_obj is None:
            return ClientStats()
        return attrs.evolve(self._session_obj.stats)

    @property
    def proxy(self) -> ProxySettings | None:
        """Return the proxy the open client uses (credentials hidden in its repr), or None."""
        return self._proxy_settings

    @property
    def limiter(self) -> Limiter | None:
        """Return the running limiter, while the client is open."""
        return self._limiter

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "gtmhub-accountId": self.account_id,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

    async def __aenter__(self) -> Self:
        if self._state == "open":
            raise ClientStateError("this GtmhubClient is already open: enter it only once")
        if self._state == "closed":
            raise ClientStateError("this GtmhubClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._injected is not None:
            if self._injected.closed:
                raise ClientStateError("the aiohttp session given to GtmhubClient is closed")
            http = self._injected
            self._session_headers = False
        else:
            http = self._new_http_session()
        try:
            # Opened here, in the running loop: a limiter binds to the loop it is opened in.
            self._limiter = (
                None
                if self.rate_limit is None
                else self.rate_limit.open(key=f"{self.base_url}|{self.account_id}")
            )
        except BaseException:
            if self._injected is None:
                await http.close()
            raise
        self._http = http
        self._loop = loop
        self._session_obj = Session(
            http,
            base_url=self.base_url,
            headers=None if self._session_headers else self._headers(),
            limiter=self._limiter,
            retry=self.retry,
            timeout=self.timeout,
            rng=random.Random(self._seed) if self._seed is not None else None,
        )
        self._state = "open"
        return self

    def _new_http_session(self) -> aiohttp.ClientSession:
        """Build the client's own aiohttp session with its proxy and TLS settings."""
        self._proxy_settings = choose_proxy(
            self.base_url,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
            trust_env=self.trust_env,
        )
        self._session_headers = self._proxy_settings is None
        context = make_ssl_context(
            ca_bundle=self._ca_bundle, ssl_context=self._ssl_context, trust_env=self.trust_env
        )
        return open_http_session(
            proxy=self._proxy_settings,
            ssl_context=context,
            trace_configs=self._trace_configs or None,
            # The client's own session carries the headers (merged once, not per request),
            # unless a proxy is used: aiohttp merges session headers into the proxy's
            # CONNECT request too, and the token must never reach a proxy.
            headers=self._headers() if self._session_headers else None,
        )

    # The usual async context manager exit (KpiIterator and FakeGtmhub have the same
    # six lines): too small to share, a known pair for `duplicates`.
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the limiter and, unless it was injected, the aiohttp session."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        if self._session_obj is not None:
            self._session_obj.close()
        try:
            if self._limiter is not None:
                await self._limiter.aclose()
        finally:
            if self._injected is None and self._http is not None:
                await self._http.close()
            self._http = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget across retries, as every call has
    ) -> Any:
        """Call any endpoint with a raw JSON body and get the decoded JSON back.

        For shapes the models do not cover yet: the call still goes through the
        rate limiter, the retry rules (a POST is never resent blindly) and the time
        budget, and errors are the same ``GtmhubError`` tree. ``path`` is relative
        to ``base_url`` and starts with ``/v1/`` or ``/v2/``.
        """
        route = raw_route(method, path)
        call = RawCall(params=params, json=json, timeout=timeout)
        return await self.open_session().call(route, call)

    def open_session(self) -> Session:
        """Return this open client's Session; raise ClientStateError when it is not open.

        For the SDK's own flows (resources, bulk uploads, pagination): it is how they
        send a call with the client's limiter, retry rules and time budget.
        """
        if self._state != "open" or self._session_obj is None:
            if self._state == "closed":
                raise ClientStateError("this GtmhubClient is closed; create a new one")
            raise ClientStateError(
                "use the client inside 'async with GtmhubClient(...) as client:' "
                "(it opens the HTTP session and the rate limiter)"
            )
        if asyncio.get_running_loop() is not self._loop:
            raise ClientStateError(
                "this GtmhubClient was opened in another event loop; open one client per loop"
            )
        return self._session_obj

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_state", None) == "open" and self._injected is None:
            _warn(
                f"unclosed {self!r}: use 'async with' or await client.aclose()",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
