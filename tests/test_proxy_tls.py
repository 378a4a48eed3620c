"""Calls through a real CONNECT proxy on 127.0.0.1, and TLS against a CA the test makes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp.abc
import aiohttp.connector
import pytest
import trustme
from aiohttp import web

from gtmhub_async import (
    GtmhubClient,
    KpiSnapshotRequest,
    RetryPolicy,
    TransportError,
    UnknownOutcomeError,
)
from gtmhub_async.testing import FakeGtmhub

ACCOUNT = "5be26318e5274a0007f17f61"
HOST = "gtmhub.test"  # not a loopback name: an environment proxy may take it
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR")


class ConnectProxy:
    """An HTTP CONNECT proxy that records each tunnel and sends every one to 127.0.0.1."""

    def __init__(self, *, refuse: bytes | None = None) -> None:
        self.refuse = refuse  # a status line to answer every CONNECT with, instead of a tunnel
        self.tunnels: list[str] = []
        self.proxy_authorization: list[str | None] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (h.partition(":") for h in head[1:] if h)
            }
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(target)
            self.proxy_authorization.append(headers.get("proxy-authorization"))
            if self.refuse is not None:
                writer.write(self.refuse + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            port = int(target.rsplit(":", 1)[1])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass
    finally:
        dst.close()


class LoopbackResolver(aiohttp.abc.AbstractResolver):
    """Resolve every name to 127.0.0.1, so a direct call to gtmhub.test stays on this machine."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Take aiohttp's arguments for a resolver (``loop=``) and ignore them."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Return 127.0.0.1 for any host."""
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        """Hold nothing."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start each test without proxy or CA variables, and resolve names to 127.0.0.1."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in CA_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", LoopbackResolver)
    yield


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """Return a CA made for this test module."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """Write the test CA's certificate to a PEM file and return its path."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[int]:
    """Serve JSON over TLS on 127.0.0.1 with a certificate for gtmhub.test; yield the port."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"path": request.path, "token": request.headers.get("Authorization") is not None}
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    assert runner.addresses
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    """Yield a running CONNECT proxy on 127.0.0.1."""
    async with ConnectProxy() as running:
        yield running


def _client(port: int, **options: Any) -> GtmhubClient:
    return GtmhubClient(
        "tok",
        ACCOUNT,
        base_url=f"https://{HOST}:{port}/api",
        rate_limit=None,
        retry=RetryPolicy(max_attempts=1),
        timeout=10,
        **options,
    )


async def _ping(client: GtmhubClient) -> Any:
    async with client:
        return await client.request("GET", "/v1/ping")


async def test_a_call_goes_through_the_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    client = _client(tls_server, ca_bundle=ca_file)
    assert await _ping(client) == {"path": "/api/v1/ping", "token": True}
    assert proxy.tunnels == [f"{HOST}:{tls_server}"]
    assert proxy.proxy_authorization == [None]


async def test_a_call_goes_through_the_proxy_option_with_its_credentials(
    proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    client = _client(
        tls_server, ca_bundle=ca_file, proxy=f"http://agent:s3cret@127.0.0.1:{proxy.port}"
    )
    assert await _ping(client) == {"path": "/api/v1/ping", "token": True}
    expected = "Basic " + base64.b64encode(b"agent:s3cret").decode()
    assert proxy.tunnels == [f"{HOST}:{tls_server}"]
    assert proxy.proxy_authorization == [expected]
    assert "s3cret" not in repr(client) and "s3cret" not in repr(client.proxy)
    assert repr(client.proxy) == (
        f"ProxySettings(url='http://127.0.0.1:{proxy.port}', auth='<hidden>')"
    )


async def test_the_proxy_option_takes_credentials_as_proxy_auth(
    proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    client = _client(
        tls_server,
        ca_bundle=ca_file,
        proxy=f"http://127.0.0.1:{proxy.port}",
        proxy_auth=("agent", "pw"),
        trust_env=False,
    )
    await _ping(client)
    assert proxy.proxy_authorization == ["Basic " + base64.b64encode(b"agent:pw").decode()]


async def test_no_proxy_bypasses_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "example.org, .test")
    assert await _ping(_client(tls_server, ca_bundle=ca_file)) == {
        "path": "/api/v1/ping",
        "token": True,
    }
    assert proxy.tunnels == []


async def test_trust_env_false_ignores_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    await _ping(_client(tls_server, ca_bundle=ca_file, trust_env=False))
    assert proxy.tunnels == []


async def test_an_environment_proxy_never_takes_loopback_traffic(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    async with FakeGtmhub() as fake, fake.client(rate_limit=None) as client:
        fake.add_kpis(1)
        page = await client.kpis.list_page(take=10)
    assert len(page.items) == 1
    assert proxy.tunnels == []


async def test_tls_verification_fails_without_the_test_ca(tls_server: int) -> None:
    with pytest.raises(TransportError, match=r"certificate verify failed") as info:
        await _ping(_client(tls_server))
    assert "tok" not in str(info.value)


async def test_tls_verification_fails_through_the_proxy_without_the_test_ca(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy, tls_server: int
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(TransportError, match=r"certificate verify failed"):
        await _ping(_client(tls_server))
    assert proxy.tunnels == [f"{HOST}:{tls_server}"]


async def test_ssl_cert_file_and_an_ssl_context_are_honoured(
    monkeypatch: pytest.MonkeyPatch, ca: trustme.CA, tls_server: int, ca_file: str
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    assert (await _ping(_client(tls_server)))["token"] is True
    with pytest.raises(TransportError, match=r"certificate verify failed"):
        await _ping(_client(tls_server, trust_env=False))
    monkeypatch.delenv("SSL_CERT_FILE")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    assert (await _ping(_client(tls_server, ssl_context=context)))["token"] is True


async def test_a_bad_environment_proxy_fails_at_open_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch, tls_server: int
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://agent:s3cret@proxy.corp:1080")
    client = _client(tls_server)
    with pytest.raises(ValueError, match=r"^HTTPS_PROXY in the environment: proxy must") as info:
        async with client:
            pass
    assert "s3cret" not in str(info.value)
    with contextlib.suppress(Exception):
        await client.aclose()


async def test_a_post_whose_tunnel_the_proxy_refuses_was_never_sent(tls_server: int) -> None:
    async with ConnectProxy(refuse=b"HTTP/1.1 407 Proxy Authentication Required") as refusing:
        client = _client(
            tls_server, proxy=f"http://agent:s3cret@127.0.0.1:{refusing.port}", trust_env=False
        )
        with pytest.raises(TransportError, match="407") as info:
            async with client:
                await client.kpis.create_snapshot(
                    ACCOUNT, KpiSnapshotRequest(group=date(2026, 1, 1), value=1.0)
                )
    assert not isinstance(info.value, UnknownOutcomeError)
    assert "s3cret" not in str(info.value) and "agent" not in str(info.value)
    assert refusing.tunnels == [f"{HOST}:{tls_server}"]


async def test_the_cli_takes_proxy_and_ca_bundle_from_flags_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, proxy: ConnectProxy, tls_server: int, ca_file: str
) -> None:
    from click.testing import CliRunner

    from gtmhub_async.cli import cli

    monkeypatch.setenv("GTMHUB_TOKEN", "tok")
    monkeypatch.setenv("GTMHUB_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("GTMHUB_BASE_URL", f"https://{HOST}:{tls_server}/api")
    flags = ["--proxy", f"http://agent:s3cret@127.0.0.1:{proxy.port}", "--ca-bundle", ca_file]
    by_flags = await asyncio.to_thread(CliRunner().invoke, cli, ["kpis", "get", ACCOUNT, *flags])
    assert proxy.tunnels == [f"{HOST}:{tls_server}"]
    assert proxy.proxy_authorization == ["Basic " + base64.b64encode(b"agent:s3cret").decode()]
    # The echo server's answer is not a KPI: the call went through, and failed on its shape.
    assert by_flags.exit_code == 1
    assert "does not have the expected shape" in by_flags.output
    assert "s3cret" not in by_flags.output

    monkeypatch.setenv("GTMHUB_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("GTMHUB_CA_BUNDLE", ca_file)
    by_env = await asyncio.to_thread(CliRunner().invoke, cli, ["kpis", "get", ACCOUNT])
    assert by_env.exit_code == 1
    assert proxy.tunnels == [f"{HOST}:{tls_server}"] * 2
