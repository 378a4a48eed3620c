"""The fake-server command serves FakeGtmhub on a host and port through its public API."""

from __future__ import annotations

import asyncio
import socket

import pytest
from click.testing import CliRunner

from gtmhub_async.cli import EXIT_USAGE, CliError, cli
from gtmhub_async.cli.fake_server import serve_fake
from gtmhub_async.testing import FakeGtmhub


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_fake_listens_on_the_port_it_is_given() -> None:
    port = _free_port()
    async with FakeGtmhub(port=port) as fake, fake.client(rate_limit=None) as client:
        assert (fake.host, fake.port) == ("127.0.0.1", port)
        assert fake.base_url == f"http://127.0.0.1:{port}/api"
        fake.add_kpis(2)
        page = await client.kpis.list_page(take=5)
        assert len(page.items) == 2


@pytest.mark.parametrize("port", [-1, 65536, True, "80"])
def test_a_port_out_of_range_is_refused(port: object) -> None:
    with pytest.raises(ValueError) as info:
        FakeGtmhub(port=port)  # type: ignore[arg-type]  # the wrong types are the point
    assert str(info.value) == f"port must be an int from 0 to 65535, got {port!r}"


async def test_serve_fake_serves_on_the_requested_port_until_cancelled() -> None:
    port = _free_port()
    ready: asyncio.Future[tuple[str, FakeGtmhub]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_fake(
            host="127.0.0.1",
            port=port,
            rate_limit=None,
            seed=1,
            latency=0.0,
            kpis=3,
            ready=lambda url, fake: ready.set_result((url, fake)),
        )
    )
    try:
        url, fake = await asyncio.wait_for(ready, 10)
        assert url == f"http://127.0.0.1:{port}"
        async with fake.client(rate_limit=None) as client:
            assert len((await client.kpis.list_page(take=10)).items) == 3
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_serve_fake_on_a_taken_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serving = serve_fake(
            host="127.0.0.1", port=port, rate_limit=None, seed=0, latency=0.0, kpis=0
        )
        with pytest.raises(CliError) as info:
            await asyncio.wait_for(serving, 10)
    assert info.value.code == EXIT_USAGE
    assert info.value.message.startswith(f"cannot listen on 127.0.0.1:{port}: ")


def test_the_command_on_a_taken_port_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["fake-server", "--port", str(port)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith(f"gtmhub-async: error: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.stderr.splitlines()) == 1
