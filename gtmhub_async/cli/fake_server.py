"""The ``fake-server`` command: serve a FakeGtmhub on a host and port until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from gtmhub_async.cli.app import EXIT_OK, EXIT_USAGE, CliError, cli, run

if TYPE_CHECKING:
    from gtmhub_async.testing import FakeGtmhub

__all__ = ["fake_server", "serve_fake"]


async def serve_fake(
    *,
    host: str,
    port: int,
    rate_limit: int | None,
    seed: int,
    latency: float,
    kpis: int,
    ready: Callable[[str, FakeGtmhub], None] | None = None,
) -> None:
    """Serve a FakeGtmhub until SIGINT or SIGTERM (or cancellation)."""
    from gtmhub_async.testing import FakeGtmhub

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    fake = FakeGtmhub(
        seed=seed,
        rate_limit=(rate_limit, 1.0) if rate_limit else None,
        latency=latency,
        host=host,
        port=port,
    )
    try:
        try:
            await fake.start()
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE
            ) from None
        try:
            if kpis:
                fake.add_kpis(kpis)
            if ready is not None:
                ready(fake.url, fake)
            await stop.wait()
        finally:
            await fake.close()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port [default: a free one]."
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Answer 429 beyond N requests per second [default: no limit].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of ids and token.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Delay per request.")
@click.option("--kpis", type=click.IntRange(min=0), default=0, help="Start with N sample KPIs.")
def fake_server(
    host: str, port: int, rate_limit: int | None, seed: int, latency_ms: float, kpis: int
) -> int:
    """Run a fake Gtmhub KPI API until Ctrl-C; print how to point the CLI or SDK at it."""

    def ready(url: str, fake: FakeGtmhub) -> None:
        limit = f"{rate_limit:,} requests/s" if rate_limit else "none"
        click.echo(f"FakeGtmhub serving on {url} (rate limit: {limit}, seed {seed})")
        click.echo(f"export GTMHUB_BASE_URL={url}/api")
        # The fake's token, printed on purpose: it opens nothing but this fake.
        click.echo(f"export GTMHUB_TOKEN={fake.token}")
        click.echo(f"export GTMHUB_ACCOUNT_ID={fake.account_id}")
        click.echo("Press Ctrl-C to stop.", err=True)

    # Flags to keywords one to one, as demo does: alike by shape, not by logic.
    run(
        serve_fake(
            host=host,
            port=port,
            rate_limit=rate_limit,
            seed=seed,
            latency=latency_ms / 1000.0,
            kpis=kpis,
            ready=ready,
        )
    )
    click.echo("stopped", err=True)
    return EXIT_OK
