"""The ``demo`` command: a year of daily values for 30 KPIs against a local fake, checked.

The steps (create, upload, list back, read back) are in ``demo_steps``; the
faults the fake injects on the way are in ``demo_faults``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from gtmhub_async.cli.app import EXIT_FAILED, EXIT_OK, cli, plural, run
from gtmhub_async.cli.demo_faults import DemoFaults
from gtmhub_async.cli.demo_steps import (
    DemoConfig,
    DemoReport,
    count_duplicates,
    create_kpis,
    list_back,
    upload,
    verify,
)
from gtmhub_async.cli.progress import progress_enabled
from gtmhub_async.limits import RateLimit

if TYPE_CHECKING:
    from gtmhub_async.testing.log import RequestRecord

__all__ = ["demo", "run_demo"]


async def run_demo(config: DemoConfig, *, progress: bool) -> int:
    """Run the demo against a fake Gtmhub started here; print a summary; return the status."""
    from gtmhub_async.retry import RetryPolicy
    from gtmhub_async.testing import FakeGtmhub

    started = time.monotonic()
    report = DemoReport()
    async with FakeGtmhub(
        seed=config.seed, rate_limit=(config.rate, 1.0), latency=config.latency
    ) as fake:
        faults = "injected faults" if config.faults else "no faults"
        click.echo(
            f"demo: a fake Gtmhub on {fake.base_url} (limit {config.rate:,} requests/s, "
            f"{config.latency * 1000:g} ms latency, {faults}, seed {config.seed})"
        )
        chaos = DemoFaults(fake, config.kpis * config.days, enabled=config.faults)
        client = fake.client(
            rate_limit=RateLimit(config.rate),
            # More attempts than the default: the demo injects faults on purpose.
            retry=RetryPolicy(max_attempts=6),
            seed=config.seed,
        )
        async with client:
            created = await create_kpis(client, config, report)
            expected = await upload(
                client, fake, chaos, created, config, report, progress=progress
            )
            await list_back(client, created, config, report)
            await verify(client, expected, config, report)
            retries = client.stats.retries
        count_duplicates(fake, created, report)
        _print_requests(fake.requests, chaos, config, retries, time.monotonic() - started)
        click.echo(f"duplicates stored (checked on the fake's store): {report.duplicates:,}")
    total = config.kpis * config.days
    if report.ok:
        click.echo(
            f"result: OK, nothing lost: {total:,} of {total:,} snapshots stored "
            f"exactly once ({time.monotonic() - started:.1f} s)"
        )
        return EXIT_OK
    click.echo(f"result: FAILED ({time.monotonic() - started:.1f} s)")
    return EXIT_FAILED


def _print_requests(
    seen: list[RequestRecord], chaos: DemoFaults, config: DemoConfig, retries: int, elapsed: float
) -> None:
    """Print what the fake saw: requests, the throttles absorbed, the faults settled."""
    throttled = sum(1 for r in seen if r.status == 429)
    injected_429 = sum(1 for r in seen if r.fault == "429")
    with_retry_after = chaos.throttles.get(503, 0)
    all_503 = sum(1 for r in seen if r.fault == "503")
    resets = sum(1 for r in seen if r.fault == "reset")
    click.echo(
        f"requests: {len(seen):,} in {elapsed:.1f} s ({len(seen) / elapsed:,.0f}/s; the "
        f"fake's limit {config.rate:,}/s); {retries:,} retries"
    )
    click.echo(
        f"absorbed: {plural(throttled, '429')} ({injected_429:,} injected, "
        f"{throttled - injected_429:,} from the rate limit) and "
        f"{plural(with_retry_after, '503')} with Retry-After, waited out and retried"
    )
    click.echo(
        f"settled: {plural(all_503 - with_retry_after, '503')} without Retry-After and "
        f"{plural(resets, 'connection')} reset after a write (unknown outcomes for a "
        "POST, retried for a GET)"
    )


@cli.command()
@click.option("--kpis", "n_kpis", type=click.IntRange(1, 500), default=30, show_default=True)
@click.option("--days", type=click.IntRange(1, 3660), default=365, show_default=True)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=800,
    show_default=True,
    help="The fake's rate limit (requests/s); the client uses the same.",
)
@click.option("--concurrency", type=click.IntRange(1, 1000), default=32, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--faults/--no-faults", default=True, show_default=True, help="Inject faults.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
def demo(
    n_kpis: int,
    days: int,
    rate: int,
    concurrency: int,
    latency_ms: float,
    faults: bool,
    seed: int,
    progress: bool | None,
) -> int:
    """Upload a year of daily values for 30 KPIs to a local fake Gtmhub, then check them.

    The fake enforces a rate limit and injects faults (429s and 503s with and
    without Retry-After, connections reset after a write). Uploads whose outcome
    is unknown are settled by reading the day back and sending again only what is
    absent. Exits 0 when every snapshot is on the server exactly once; 1 when any
    failed, is still unknown, or reads back wrong.
    """
    # Flags to keywords one to one, as fake-server does: alike by shape, not by logic.
    config = DemoConfig(
        kpis=n_kpis,
        days=days,
        rate=rate,
        concurrency=concurrency,
        latency=latency_ms / 1000.0,
        faults=faults,
        seed=seed,
    )
    return run(run_demo(config, progress=progress_enabled(progress)))
