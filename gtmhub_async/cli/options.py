"""Where and as whom commands call the API: the shared flags, and running a call with them."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs
import click

from gtmhub_async._validate import check_object_id
from gtmhub_async.cli.app import EXIT_USAGE, explain, fail, run
from gtmhub_async.client import DEFAULT_BASE_URL, GtmhubClient, Region
from gtmhub_async.errors import GtmhubError
from gtmhub_async.limits import DEFAULT_RATE_LIMIT, LimiterFactory

__all__ = ["ApiOptions", "api_options", "call", "with_client"]

T = TypeVar("T")


@attrs.frozen
class ApiOptions:
    """Where and as whom to call the API, as given by flags and the environment."""

    token: str | None
    account_id: str | None
    base_url: str | None
    region: str | None
    timeout: float
    #: Whether ``base_url`` came from GTMHUB_BASE_URL rather than --base-url.
    base_url_from_env: bool = False
    #: --proxy / GTMHUB_PROXY (credentials in it go to proxy_auth, never to a message).
    proxy: str | None = None
    #: --ca-bundle / GTMHUB_CA_BUNDLE.
    ca_bundle: str | None = None

    def resolved_base_url(self) -> str:
        """Return the API root: --base-url, else --region, else GTMHUB_BASE_URL, else default."""
        if self.region and self.base_url and not self.base_url_from_env:
            fail("give --base-url or --region, not both", EXIT_USAGE)
        if self.region:
            return Region(self.region).base_url()
        return self.base_url or DEFAULT_BASE_URL

    def client(self, rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT) -> GtmhubClient:
        """Return a client (not yet opened); raise CliError for a missing or bad setting."""
        if not self.token:
            fail("no API token: set GTMHUB_TOKEN or pass --token", EXIT_USAGE)
        if not self.account_id:
            fail("no account id: set GTMHUB_ACCOUNT_ID or pass --account-id", EXIT_USAGE)
        base_url = self.resolved_base_url()
        try:
            check_object_id(self.account_id, "the account id")
        except (TypeError, ValueError) as exc:
            fail(f"{exc} (GTMHUB_ACCOUNT_ID or --account-id)", EXIT_USAGE)
        try:
            return GtmhubClient(
                self.token,
                self.account_id,
                base_url=base_url,
                rate_limit=rate_limit,
                timeout=self.timeout,
                proxy=self.proxy,
                ca_bundle=self.ca_bundle,
            )
        except (TypeError, ValueError) as exc:
            # The client's messages never contain the token's value.
            fail(f"bad configuration: {exc}", EXIT_USAGE)


_API_OPTION_NAMES: Final = (
    "token",
    "account_id",
    "base_url",
    "region",
    "timeout",
    "proxy",
    "ca_bundle",
)


def api_options(f: Callable[..., T]) -> Callable[..., T]:
    """Add --token, --account-id, --base-url, --region, --timeout, --proxy, --ca-bundle."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        values = {name: kwargs.pop(name) for name in _API_OPTION_NAMES}
        ctx = click.get_current_context()
        source = ctx.get_parameter_source("base_url")
        kwargs["api"] = ApiOptions(
            **values, base_url_from_env=source is click.core.ParameterSource.ENVIRONMENT
        )
        return f(*args, **kwargs)

    options = [
        click.option(
            "--token",
            envvar="GTMHUB_TOKEN",
            show_envvar=True,
            metavar="TOKEN",
            help="API token (prefer the environment variable: flags show in process lists).",
        ),
        click.option(
            "--account-id",
            envvar="GTMHUB_ACCOUNT_ID",
            show_envvar=True,
            metavar="ID",
            help="Account id (24 hex digits).",
        ),
        click.option(
            "--base-url",
            envvar="GTMHUB_BASE_URL",
            show_envvar=True,
            metavar="URL",
            help=f"API root without the version [default: {DEFAULT_BASE_URL}].",
        ),
        click.option(
            "--region",
            type=click.Choice([r.value for r in Region]),
            help="Use the Quantive Results host of this data centre.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds one call may take, retries included.",
        ),
        click.option(
            "--proxy",
            envvar="GTMHUB_PROXY",
            show_envvar=True,
            metavar="URL",
            help="HTTP(S) proxy [default: HTTPS_PROXY / NO_PROXY from the environment].",
        ),
        click.option(
            "--ca-bundle",
            envvar="GTMHUB_CA_BUNDLE",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=True),
            help="CA certificates (file or directory) to verify the server with.",
        ),
    ]
    decorated: Callable[..., T] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


async def with_client(
    api: ApiOptions,
    body: Callable[[GtmhubClient], Awaitable[T]],
    *,
    rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT,
) -> T:
    """Open a client from ``api``, await ``body(client)``; an SDK error becomes a CliError."""
    client = api.client(rate_limit)
    try:
        async with client:
            return await body(client)
    except GtmhubError as exc:
        raise explain(exc, base_url=client.base_url) from None


def call(
    api: ApiOptions,
    body: Callable[[GtmhubClient], Awaitable[T]],
    *,
    rate_limit: LimiterFactory | None = DEFAULT_RATE_LIMIT,
) -> T:
    """Run ``with_client(api, body)`` in a fresh event loop and return its result."""
    return run(with_client(api, body, rate_limit=rate_limit))
