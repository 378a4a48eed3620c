"""Proxies and TLS the way ``requests`` and ``httpx`` handle them, for the client's session.

By default (``trust_env=True``) the client reads, once each time it opens:

- ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (the lowercase name wins over the
  uppercase one, as in requests) and ``NO_PROXY``: a comma-separated list of ``*``,
  host names (``example.com`` and ``.example.com`` both match the domain and its
  subdomains), ``host:port``, IP addresses and CIDR blocks (``10.0.0.0/8``);
- ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``: the CA certificates to trust.

One deliberate difference from requests: a proxy from the environment never takes
loopback traffic (``localhost``, ``127.0.0.0/8``, ``::1``), as in Go's net/http, so a local
fake server works behind a corporate proxy. An explicit ``proxy=`` is always used.

Proxy credentials travel as ``proxy_auth`` (a ``Proxy-Authorization`` header), never
inside a URL that could reach a message, a log line or a ``repr``.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import warnings
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import attrs

__all__ = [
    "ProxySettings",
    "bypasses_proxy",
    "choose_proxy",
    "environment_proxy",
    "is_loopback",
    "make_ssl_context",
    "open_http_session",
    "proxy_credentials",
    "redact_url",
    "split_proxy_url",
]

#: Proxy credentials as a (login, password) pair, or aiohttp's BasicAuth.
ProxyAuth = aiohttp.BasicAuth | tuple[str, str]


def proxy_credentials(login: str, password: str) -> aiohttp.BasicAuth:
    """Return aiohttp's credentials object without its 3.14 deprecation warning.

    aiohttp 3.14 deprecates building ``BasicAuth`` in user code, yet its session
    still takes one for ``proxy_auth`` (and has no session-wide ``proxy_headers``).
    """
    if ":" in login:
        raise ValueError('a ":" is not allowed in a proxy login (RFC 7617)')
    return tuple.__new__(aiohttp.BasicAuth, (login, password, "latin1"))


@attrs.frozen(repr=False)
class ProxySettings:
    """The proxy one client uses: a URL without credentials, and its credentials apart."""

    url: str
    auth: aiohttp.BasicAuth | None = None

    def __repr__(self) -> str:
        login = "<hidden>" if self.auth is not None else None
        return f"ProxySettings(url={self.url!r}, auth={login!r})"


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` is ``localhost`` or a loopback IP address."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def split_proxy_url(proxy: str) -> ProxySettings:
    """Check a proxy URL and move its credentials out of it into ``auth``."""
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be a str URL, got {type(proxy).__name__}")
    text = proxy.strip()
    if "://" not in text:
        text = f"http://{text}"  # as requests and curl read "proxy.corp:3128"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("proxy is not a valid URL (check its host and port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"proxy must be an http:// or https:// URL with a host, got {redact_url(text)!r}"
        )
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = proxy_credentials(unquote(parts.username or ""), unquote(parts.password or ""))
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return ProxySettings(urlunsplit((parts.scheme, netloc, "", "", "")), auth)


def _no_proxy_entries(no_proxy: str) -> list[str]:
    return [e.strip().lower() for e in no_proxy.replace(" ", ",").split(",") if e.strip()]


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Tell whether a NO_PROXY value exempts ``host:port`` from the proxy."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in _no_proxy_entries(no_proxy):
        if entry == "*":
            return True
        name, entry_port = entry, None
        if entry.startswith("[") and "]" in entry:  # [::1]:8080 or [::1]
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:  # host:port (more colons: a bare IPv6 address)
            name, entry_port = entry.split(":")
        if entry_port is not None and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.lstrip("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith(f".{name}")):
            return True
    return False


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """Return an environment variable, the lowercase spelling first (requests' rule)."""
    value = environ.get(name.lower())
    if value is None:
        value = environ.get(name.upper())
    return value.strip() if value and value.strip() else None


def environment_proxy(url: str, environ: Mapping[str, str] | None = None) -> ProxySettings | None:
    """Return the proxy the environment gives for ``url``, or None to connect directly."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or is_loopback(host):
        return None  # never through an environment proxy: see the module docstring
    no_proxy = _env(env, "no_proxy")
    port = parts.port or _default_port(parts.scheme)
    if no_proxy is not None and bypasses_proxy(host, port, no_proxy):
        return None
    scheme_proxy = _env(env, f"{parts.scheme}_proxy")
    if parts.scheme == "http" and "REQUEST_METHOD" in env and not env.get("http_proxy"):
        # In a CGI script HTTP_PROXY can come from a request's "Proxy:" header (httpoxy):
        # ignored there, as urllib and requests do.
        scheme_proxy = None
    proxy = scheme_proxy or _env(env, "all_proxy")
    if proxy is None:
        return None
    try:
        return split_proxy_url(proxy)
    except ValueError as exc:
        raise ValueError(f"{parts.scheme.upper()}_PROXY in the environment: {exc}") from None


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def choose_proxy(
    url: str,
    *,
    proxy: str | None,
    proxy_auth: ProxyAuth | None,
    trust_env: bool,
    environ: Mapping[str, str] | None = None,
) -> ProxySettings | None:
    """Return the proxy for ``url``: the explicit one, else the environment's when trusted."""
    if proxy is not None:
        chosen = split_proxy_url(proxy)
        if proxy_auth is not None:
            chosen = ProxySettings(chosen.url, proxy_credentials(*proxy_auth[:2]))
        return chosen
    if proxy_auth is not None:
        raise ValueError("proxy_auth needs proxy= (the environment's proxy has its own)")
    return environment_proxy(url, environ) if trust_env else None


def make_ssl_context(
    *,
    ca_bundle: str | os.PathLike[str] | None,
    ssl_context: ssl.SSLContext | None,
    trust_env: bool,
    environ: Mapping[str, str] | None = None,
) -> ssl.SSLContext | None:
    """Return the TLS context to verify servers with, or None for aiohttp's default."""
    if ssl_context is not None:
        if ca_bundle is not None:
            raise ValueError("give ca_bundle or ssl_context, not both")
        if not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(ssl_context)}")
        return ssl_context
    env = os.environ if environ is None else environ
    cafile: str | None = None
    capath: str | None = None
    if ca_bundle is not None:
        path = os.fspath(ca_bundle)
        if os.path.isdir(path):
            capath = path
        elif os.path.isfile(path):
            cafile = path
        else:
            raise ValueError(f"ca_bundle {path!r} is neither a file nor a directory")
    elif trust_env:
        # aiohttp builds its default context once, at import: read these at each open.
        cafile = env.get("SSL_CERT_FILE") or None
        capath = env.get("SSL_CERT_DIR") or None
        if cafile is None and capath is None:
            return None
    else:
        return None
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        source = "ca_bundle" if ca_bundle is not None else "SSL_CERT_FILE / SSL_CERT_DIR"
        raise ValueError(f"cannot load the CA certificates of {source}: {exc}") from None


def open_http_session(
    *,
    proxy: ProxySettings | None,
    ssl_context: ssl.SSLContext | None,
    trace_configs: list[aiohttp.TraceConfig] | None,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientSession:
    """Build an aiohttp session that uses ``proxy`` and ``ssl_context`` for every request.

    ``headers`` go with every request (the client's credentials: merged once here,
    not once per request).

    Not aiohttp's ``trust_env=True``: in 3.14 it also reads ``~/.netrc`` and adds that
    file's credentials as an Authorization header, which clashes with the API token, and
    it looks the proxy up again for every request. The environment is read by
    ``choose_proxy`` / ``make_ssl_context`` instead, once per open, with requests' rules.
    """
    with warnings.catch_warnings():
        # Session-wide proxy credentials have no other form in aiohttp 3.12-3.14.
        warnings.filterwarnings("ignore", "The 'proxy_auth' parameter", DeprecationWarning)
        return aiohttp.ClientSession(
            connector=None if ssl_context is None else aiohttp.TCPConnector(ssl=ssl_context),
            trace_configs=trace_configs,
            headers=headers,
            proxy=None if proxy is None else proxy.url,
            proxy_auth=None if proxy is None else proxy.auth,
            trust_env=False,
        )
