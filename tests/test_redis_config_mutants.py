"""Rules of gtmhub_async.redis_limits.config that mutation testing found unchecked (see tests/MUTATION.md)."""  # noqa: E501

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gtmhub_async.redis_limits import RedisRateLimit, RedisUrl, config

# Nothing listens on port 1: a limit built from this URL connects only when used.
URL = "redis://127.0.0.1:1/0"


def exactly(message: str) -> str:
    """Return a pattern that matches ``message`` and nothing longer or shorter."""
    return "^" + re.escape(message) + "$"


class CountingRedis(Redis):
    """A redis.asyncio.Redis that counts its aclose() calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closes = 0

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        self.closes += 1
        await super().aclose(close_connection_pool)


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[CountingRedis]:
    """Record every client that RedisRateLimit.open creates from a URL."""
    made: list[CountingRedis] = []

    class Recorded(CountingRedis):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(config, "Redis", Recorded)
    return made


# --- RedisUrl ---------------------------------------------------------------------------


def test_a_redis_url_must_be_a_str_and_the_error_names_the_type_given() -> None:
    with pytest.raises(TypeError, match=r"^url must be a str, got int$"):
        RedisUrl(6379)  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(TypeError, match=r"^url must be a str, got bytes$"):
        RedisRateLimit.from_url(b"redis://h", 10)  # type: ignore[arg-type]  # as above


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"])
def test_a_redis_url_accepts_the_three_schemes_redis_py_opens(url: str) -> None:
    assert RedisUrl(url).url == url
    assert repr(RedisRateLimit.from_url(url, 10)).startswith(f"RedisRateLimit({url}, ")


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("http://h:6379", "'http'"), ("localhost:6379", "'localhost'"), ("REDIS://h", "'REDIS'")],
)
def test_a_redis_url_of_another_scheme_is_refused_naming_only_its_scheme(
    url: str, scheme: str
) -> None:
    message = f"url must start with redis://, rediss:// or unix://, got {scheme}"
    with pytest.raises(ValueError, match=exactly(message)):
        RedisUrl(url)


# --- RedisRateLimit: the defaults and what from_url forwards ------------------------------

DEFAULTS: dict[str, Any] = {
    "max_rate": 10.0,
    "time_period": 1.0,
    "key": None,
    "prefix": "gtmhub_async:rate",
    "on_redis_error": "raise",
    "expected_workers": 1,
    "redis_timeout": 0.5,
    "idle_ttl": 60.0,
    "probe_interval": 1.0,
    "slack": 0.02,  # max(2% of 1 s, 15 ms)
    "floor": 1.0,  # 1% of 10, at least 1
}


def settings(limit: RedisRateLimit) -> dict[str, Any]:
    return {name: getattr(limit, name) for name in DEFAULTS}


def test_the_constructor_defaults() -> None:
    assert settings(RedisRateLimit(RedisUrl(URL), 10)) == DEFAULTS


def test_the_from_url_defaults_are_the_constructors() -> None:
    assert settings(RedisRateLimit.from_url(URL, 10)) == DEFAULTS


def test_from_url_forwards_every_keyword() -> None:
    given: dict[str, Any] = {
        "key": "shared",
        "prefix": "app:limits",
        "on_redis_error": "local",
        "expected_workers": 3,
        "redis_timeout": 0.25,
        "idle_ttl": 30.0,
        "probe_interval": 4.0,
        "slack": 0.125,
    }
    limit = RedisRateLimit.from_url(URL, 500, 2.0, **given)
    assert settings(limit) == {**given, "max_rate": 500.0, "time_period": 2.0, "floor": 5.0}


# --- RedisRateLimit: refusals -------------------------------------------------------------


def test_a_synchronous_client_is_refused_naming_its_class_and_the_remedy() -> None:
    sync_client = redis.Redis()
    message = (
        "redis must be a redis.asyncio.Redis or RedisCluster client, got "
        f"{type(sync_client).__module__}.Redis (a synchronous redis.Redis cannot be "
        "awaited; use RedisRateLimit.from_url for a URL)"
    )
    try:
        assert type(sync_client).__module__ == "redis.client"
        with pytest.raises(TypeError, match=exactly(message)):
            RedisRateLimit(sync_client, 10)  # type: ignore[arg-type]  # the wrong type is the point
    finally:
        sync_client.close()


def test_a_fixed_key_is_kept_and_names_the_redis_key_whatever_open_is_given() -> None:
    limit = RedisRateLimit.from_url(URL, 10, key="shared")
    assert limit.key == "shared"
    assert limit.redis_key("https://app.example|acc") == "gtmhub_async:rate:{shared}"
    assert limit.redis_key("other") == "gtmhub_async:rate:{shared}"


@pytest.mark.parametrize(("key", "shown"), [(5, "5"), (b"k", "b'k'"), ("", "''")])
def test_a_key_that_is_not_a_non_empty_str_is_refused(key: Any, shown: str) -> None:
    with pytest.raises(
        TypeError, match=exactly(f"key must be a non-empty str or None, got {shown}")
    ):
        RedisRateLimit.from_url(URL, 10, key=key)


@pytest.mark.parametrize(("prefix", "shown"), [("", "''"), (5, "5"), (None, "None")])
def test_a_prefix_that_is_not_a_non_empty_str_is_refused(prefix: Any, shown: str) -> None:
    with pytest.raises(TypeError, match=exactly(f"prefix must be a non-empty str, got {shown}")):
        RedisRateLimit.from_url(URL, 10, prefix=prefix)


@pytest.mark.parametrize("name", ["idle_ttl", "probe_interval", "redis_timeout"])
def test_a_duration_that_is_not_positive_is_refused_by_its_name(name: str) -> None:
    with pytest.raises(ValueError, match=exactly(f"{name} must be positive, got 0")):
        bad: dict[str, Any] = {name: 0}
        RedisRateLimit.from_url(URL, 10, **bad)


def test_idle_ttl_may_equal_time_period_plus_slack_but_not_fall_below() -> None:
    # Binary-exact numbers: 1 + 0.5 == 1.5 with no rounding.
    assert RedisRateLimit.from_url(URL, 10, 1.0, slack=0.5, idle_ttl=1.5).idle_ttl == 1.5
    message = "idle_ttl must be at least time_period + slack (1.5 s), got 1.0"
    with pytest.raises(ValueError, match=exactly(message)):
        RedisRateLimit.from_url(URL, 10, 1.0, slack=0.5, idle_ttl=1.0)


# --- repr and the Redis key ---------------------------------------------------------------


async def test_the_repr_of_a_limit_on_a_client_names_the_client_class() -> None:
    client = Redis(host="127.0.0.1", port=1)
    try:
        limit = RedisRateLimit(client, 10, 2.0, on_redis_error="local")
        expected = "RedisRateLimit(Redis, max_rate=10, time_period=2, on_redis_error='local')"
        assert repr(limit) == expected
    finally:
        await client.aclose()


def test_the_redis_key_hashes_the_open_key_to_32_hex_digits_inside_a_hash_tag() -> None:
    limit = RedisRateLimit.from_url(URL, 10, prefix="p")
    # sha256("https://app.example|acc") = 03926951da1eaf403f748df1761d848a6fc1267b...
    assert limit.redis_key("https://app.example|acc") == "p:{03926951da1eaf403f748df1761d848a}"
    assert limit.redis_key("k") == "p:{8254c329a92850f6d539dd376f4816ee}"


# --- open(): the client a limiter uses, and who closes it --------------------------------


async def test_open_gives_its_own_client_short_timeouts_no_retries_and_closes_it(
    created: list[CountingRedis],
) -> None:
    limit = RedisRateLimit.from_url(URL, 10, redis_timeout=0.25, socket_keepalive=True)
    limiter = limit.open(key="k")
    [client] = created
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == 0.25
    assert options["socket_connect_timeout"] == 0.25
    # No retries: a refused call is tried once (asked of the Retry itself, whose
    # accessors differ between the redis-py versions the project allows).
    attempts = 0

    async def refused() -> None:
        nonlocal attempts
        attempts += 1
        raise RedisConnectionError("refused")

    async def failed(error: Exception) -> None:
        pass

    with pytest.raises(RedisConnectionError):
        await options["retry"].call_with_retry(refused, failed)
    assert attempts == 1
    assert options["socket_keepalive"] is True  # the user's own keyword reaches the client
    assert client.closes == 0
    await limiter.aclose()
    assert client.closes == 1
    await limiter.aclose()  # a second close is a no-op
    assert client.closes == 1


async def test_client_options_given_to_from_url_override_the_limiters(
    created: list[CountingRedis],
) -> None:
    limiter = RedisRateLimit.from_url(URL, 10, socket_timeout=2.0).open(key="k")
    try:
        [client] = created
        options = client.connection_pool.connection_kwargs
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.0, 0.5)
    finally:
        await limiter.aclose()


async def test_each_limiter_opened_from_a_url_has_a_client_of_its_own(
    created: list[CountingRedis],
) -> None:
    limit = RedisRateLimit.from_url(URL, 10)
    first, second = limit.open(key="a"), limit.open(key="b")
    await first.aclose()
    assert [client.closes for client in created] == [1, 0]
    await second.aclose()
    assert [client.closes for client in created] == [1, 1]


async def test_a_client_passed_in_is_never_closed_by_its_limiters() -> None:
    client = CountingRedis(host="127.0.0.1", port=1)
    try:
        limit = RedisRateLimit(client, 10)
        for key in ("a", "b"):
            await limit.open(key=key).aclose()
        assert client.closes == 0
    finally:
        await client.aclose()
    assert client.closes == 1
