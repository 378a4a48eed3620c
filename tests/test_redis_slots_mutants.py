"""Rules of RedisLimiter's slot protocol that mutation testing found unchecked (see tests/MUTATION.md)."""  # noqa: E501 (the issue fixes this wording)

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_server import RedisServer, free_port

from gtmhub_async import RateLimiterUnavailableError
from gtmhub_async.redis_limits import RedisLimiter, RedisRateLimit
from gtmhub_async.redis_limits.script import SCRIPT, US

T = TypeVar("T")

#: The script's ARGV names, in the order script.lua reads them (script_args writes them so).
ARGV_NAMES = tuple(
    name
    for name, _ in sorted(
        re.findall(r"local (\w+) = (?:tonumber\()?ARGV\[(\d+)\]", SCRIPT),
        key=lambda found: int(found[1]),
    )
)
assert len(ARGV_NAMES) == 26 and ARGV_NAMES[0] == "mode"

LOGGER = "gtmhub_async.redis_limits"
UNAVAILABLE = (
    "the shared rate limit in Redis ({key}) is unavailable: {what}. No request was sent; "
    "on_redis_error='local' would fall back to a local limit instead"
)


class Clock:
    """The event loop's clock, virtual: it moves only when a test (or the client) moves it."""

    def __init__(self) -> None:
        # 1024: every time up to 2048 s has the same float spacing, so a step of 1.0 or
        # 1.5 s is exact and the lateness the limiter computes from it is exact too.
        self.now = 1024.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the running loop's clock with a virtual one (as aiolimiter's tests patch it)."""
    clock = Clock()
    monkeypatch.setattr(asyncio.get_running_loop(), "time", clock)
    return clock


@dataclass
class Call:
    """One run of the script: what the limiter told it (by ARGV name), and its answer."""

    argv: dict[str, str]
    reply: list[int] | None = None


Hook = Callable[[Call], Awaitable[None]]


class Recording(aredis.Redis):
    """A real client that records every run of the script, and can slow its answers down.

    With a virtual ``clock``: each answer takes ``rtt`` seconds (one per call, then 0),
    and the limiter's sleep until a slot passes at once, plus ``oversleep`` seconds (one
    per reservation that has to wait, then 0): a worker that woke up late.
    """

    calls: list[Call]
    clock: Clock | None
    rtt: list[float]
    oversleep: list[float]
    before: Hook | None
    after: Hook | None

    def setup(self) -> Recording:
        self.calls = []
        self.clock = None
        self.rtt = []
        self.oversleep = []
        self.before = None
        self.after = None
        return self

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        argv = [a.decode() if isinstance(a, bytes) else str(a) for a in keys_and_args[numkeys:]]
        call = Call(dict(zip(ARGV_NAMES, argv, strict=True)))
        self.calls.append(call)
        if self.before is not None:
            await self.before(call)
        call.reply = [int(x) for x in await super().evalsha(sha, numkeys, *keys_and_args)]
        if self.after is not None:
            await self.after(call)
        if self.clock is not None:
            self.clock.advance(self.rtt.pop(0) if self.rtt else 0.0)
            if call.argv["mode"] == "acquire" and call.reply[0] > 0:
                late = self.oversleep.pop(0) if self.oversleep else 0.0
                # Runs once the limiter sleeps: its sleep ends now, ``late`` seconds late.
                asyncio.get_running_loop().call_soon(self.clock.advance, call.reply[0] / US + late)
        return call.reply

    def answered(self) -> list[Call]:
        """Return the calls the script answered."""
        return [c for c in self.calls if c.reply is not None]

    def modes(self) -> list[str]:
        """Return the mode of each call the script answered."""
        return [c.argv["mode"] for c in self.answered()]


def recording(server: RedisServer) -> Recording:
    return Recording.from_url(server.url).setup()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Recording]:
    """A recording client of the test's redis-server, closed after the test."""
    recorder = recording(redis_server)
    yield recorder
    await recorder.aclose()


def open_limiter(client: aredis.Redis, **options: Any) -> RedisLimiter:
    """Open a limiter of 1 request per 1 s with a 3 s slack: slots 4 s apart, tolerance 1 s."""
    kwargs: dict[str, Any] = {"slack": 3.0, "redis_timeout": 60.0, **options}
    return RedisRateLimit(client, kwargs.pop("max_rate", 1), **kwargs).open(key="slots")


@contextlib.asynccontextmanager
async def opened(client: aredis.Redis, **options: Any) -> AsyncIterator[RedisLimiter]:
    """Open a limiter as ``open_limiter`` does; close it on the way out."""
    limiter = open_limiter(client, **options)
    try:
        yield limiter
    finally:
        await limiter.aclose()


async def within(aw: Awaitable[T], seconds: float = 30.0) -> T:
    """Await ``aw``; fail after ``seconds`` of real time, a guard against a hang only.

    The loop's clock may be virtual, so a mutant that sleeps forever would never time out.
    """
    task = asyncio.ensure_future(aw)
    deadline = time.monotonic() + seconds
    while not task.done():
        if time.monotonic() > deadline:
            task.cancel()
            raise AssertionError(f"still waiting after {seconds} s of real time")
        await asyncio.to_thread(time.sleep, 0.005)
    return task.result()


async def redis_now_us(client: aredis.Redis) -> int:
    seconds, micros = await client.time()
    return seconds * 1_000_000 + micros


# --- what the script is told ------------------------------------------------------------


async def test_each_call_tells_the_script_the_last_slot_and_neutral_values(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:
        await within(limiter.acquire())
        # A free schedule: no wait, so no second trip to check the gate.
        assert client.modes() == ["acquire"]
        (first,) = client.answered()
        assert first.reply is not None and first.reply[0] == 0
        slot0 = first.reply[1]
        assert limiter.last_slot == slot0 / US
        assert {k: first.argv[k] for k in ("rejoin", "delay", "status", "slot")} == {
            "rejoin": "0.0",
            "delay": "-1.0",
            "status": "429",
            "slot": "0",  # no slot granted yet
        }
        assert (first.argv["saturated"], first.argv["forfeit"]) == ("0", "0")

        await within(limiter.acquire())  # waits for the next slot, then checks the gate
        assert client.modes() == ["acquire", "acquire", "check"]
        _, second, check = client.answered()
        for call in (second, check):
            # The slot of the last acquire, in server microseconds; nothing to rejoin,
            # no delay, the default status, nobody waiting, nothing given up.
            assert {k: call.argv[k] for k in ("rejoin", "delay", "status", "slot")} == {
                "rejoin": "0.0",
                "delay": "-1.0",
                "status": "429",
                "slot": str(slot0),
            }
            assert (call.argv["saturated"], call.argv["forfeit"]) == ("0", "0")
        assert second.reply is not None and second.reply[0] > 0
        assert limiter.last_slot == second.reply[1] / US
        assert limiter.stats.forfeited == 0
        assert limiter.stats.script_loads == 1


async def test_a_throttle_while_a_coroutine_waits_is_told_as_saturated(
    client: Recording,
) -> None:
    async with opened(client, max_rate=100, slack=None, redis_timeout=5.0) as limiter:
        waiting = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)  # the coroutine is inside acquire(), waiting for Redis
        await limiter.on_response(429, 0.0)
        await within(waiting)
        throttles = [c for c in client.answered() if c.argv["mode"] == "throttle"]
        assert [c.argv["saturated"] for c in throttles] == ["1"]


# --- lateness -----------------------------------------------------------------------------


async def test_a_slot_reached_later_than_the_tolerance_is_given_up_and_reported(
    client: Recording, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:  # tolerance: a third of the 3 s slack, exactly 1 s
        await within(limiter.acquire())  # a round trip of 0 s: the fastest seen
        # The schedule is free again (no wait), and Redis answers in exactly the
        # tolerance: not late.
        await client.hset(limiter.redis_key, "tat", "0")
        client.rtt = [1.0]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 0
        assert client.modes() == ["acquire", "acquire"]

        # 1.5 s beyond the fastest round trip: the slot is given up, another reserved.
        await client.hset(limiter.redis_key, "tat", "0")
        client.rtt = [1.5]
        del client.calls[:]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 1
        late, retry, check = client.answered()
        assert client.modes() == ["acquire", "acquire", "check"]
        assert late.reply is not None and retry.reply is not None
        # The slot given up is told once, on the next call, so the script can uncount it.
        assert [c.argv["forfeit"] for c in (late, retry, check)] == ["0", str(late.reply[1]), "0"]
        assert limiter.last_slot == retry.reply[1] / US

        # A worker that wakes up 2 s after its slot gives it up too.
        client.oversleep = [2.0]
        del client.calls[:]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 2
        assert client.modes() == ["acquire", "check", "acquire", "check"]
        late, _, retry, _ = client.answered()
        assert late.reply is not None and retry.reply is not None
        assert retry.argv["forfeit"] == str(late.reply[1])
        assert limiter.last_slot == retry.reply[1] / US
        assert limiter.stats.acquired == 4
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert [m for m in messages if m.startswith("woke")] == [
        "woke up 1500.0 ms late for a slot: reserving another",
        "woke up 2000.0 ms late for a slot: reserving another",
    ]


async def test_lateness_is_counted_beyond_the_fastest_round_trips(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis that always takes 5 s (virtual) to answer makes no slot late; 2 s more does."""
    client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:
        client.rtt = [5.0]
        await within(limiter.acquire())  # one trip of 5 s: on time
        assert limiter.stats.forfeited == 0
        client.rtt = [5.0, 5.0]
        await within(limiter.acquire())  # two trips of 5 s around the wait: on time
        assert limiter.stats.forfeited == 0
        assert client.modes() == ["acquire", "acquire", "check"]

        # One trip (no wait) of 7 s: 2 s late.
        await client.hset(limiter.redis_key, "tat", "0")
        client.rtt = [7.0, 5.0, 5.0]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 1

        # Two trips of 5 s and a wake-up 2 s late.
        client.rtt = [5.0, 5.0, 5.0, 5.0]
        client.oversleep = [2.0]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 2
        assert limiter.stats.acquired == 4


async def test_a_fast_gate_check_shows_a_slow_reservation_was_late(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fastest round trip is learnt from gate checks too."""
    client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:
        client.rtt = [5.0]
        await within(limiter.acquire())
        # Reserving takes 5 s, but the check after the wait takes 0 s: 5 s late.
        client.rtt = [5.0, 0.0]
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 1
        assert client.modes() == ["acquire", "acquire", "check", "acquire", "check"]


# --- the gate closing while a worker sleeps -------------------------------------------


async def test_a_gate_closed_during_the_wait_voids_the_slot_however_short(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.clock = virtual_clock(monkeypatch)
    limiter = open_limiter(client)
    checks = 0

    async def before(call: Call) -> None:
        if call.argv["mode"] == "acquire":
            await client.hset(limiter.redis_key, "gate", "0")  # open again
        elif checks == 0:
            # Another worker's 429 closes the shared gate for 10 s while this one sleeps.
            await client.hset(limiter.redis_key, "gate", repr(await redis_now_us(client) + 10e6))

    async def after(call: Call) -> None:
        nonlocal checks
        if call.argv["mode"] == "check":
            checks += 1
            if checks == 2:
                # A gate that opens 1 us after the script's TIME (Redis's clock cannot
                # be pinned, so the answer is rewritten): still closed, the slot is void.
                assert call.reply is not None
                call.reply[0] = 1

    try:
        await within(limiter.acquire())
        del client.calls[:]
        client.before, client.after = before, after
        await within(limiter.acquire())
        assert limiter.stats.forfeited == 2
        assert client.modes() == ["acquire", "check", "acquire", "check", "acquire", "check"]
        first, check1, second, _, third, _ = client.answered()
        assert check1.reply is not None and check1.reply[0] > 1
        assert first.reply is not None and second.reply is not None and third.reply is not None
        assert [c.argv["forfeit"] for c in client.answered()] == [
            "0",
            "0",
            str(first.reply[1]),
            "0",
            str(second.reply[1]),
            "0",
        ]
        assert limiter.last_slot == third.reply[1] / US
        assert limiter.stats.acquired == 2
    finally:
        await limiter.aclose()


# --- the worker's own view of the gate --------------------------------------------------


async def test_a_gate_that_ends_now_holds_nothing_back(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:
        await limiter.on_response(429, 0.0)  # a gate of 0 s: it ends at this very instant
        start = clock.now
        await within(limiter.acquire())  # the clock does not move: no wait at all
        assert clock.now == start
        assert client.modes() == ["throttle", "acquire"]
        assert limiter.stats.acquired == 1


async def test_acquire_waits_out_the_workers_own_gate_then_reserves(
    client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = client.clock = virtual_clock(monkeypatch)
    async with opened(client) as limiter:
        await limiter.on_response(429, 2.0)  # this worker pauses 2 s
        # Open the shared gate again: this test is about the worker's own view.
        await client.hset(limiter.redis_key, "gate", "0")
        task = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        assert not task.done()
        clock.advance(2.0)
        await within(task)
        assert client.modes() == ["throttle", "acquire"]
        reserve = client.answered()[-1]
        assert reserve.reply is not None
        assert limiter.last_slot == reserve.reply[1] / US
        assert limiter.stats.acquired == 1


# --- rejoining after the local fallback -------------------------------------------------


async def test_the_rejoin_reservation_alone_tells_the_script_to_rejoin(
    redis_server: RedisServer,
    client: Recording,
) -> None:
    limit = RedisRateLimit(
        client,
        20,
        0.05,
        on_redis_error="local",
        probe_interval=0.05,
        redis_timeout=5.0,
        idle_ttl=1.0,
    )
    limiter = limit.open(key="rejoin")
    slow_once = [True]

    async def after(call: Call) -> None:
        if call.argv["mode"] == "acquire" and call.argv["rejoin"] != "0.0" and slow_once:
            slow_once.clear()
            await asyncio.sleep(0.05)  # a slow answer: 50 ms, the tolerance is 5 ms

    try:
        await limiter.acquire()  # learns the round trip
        await asyncio.to_thread(redis_server.stop)
        await limiter.acquire()  # Redis is down: local
        assert limiter.stats.local
        await asyncio.to_thread(redis_server.start)
        await asyncio.sleep(0.06)  # past the next probe
        del client.calls[:]
        client.after = after
        await limiter.acquire()  # the probe: back on Redis
        assert not limiter.stats.local
        assert limiter.stats.forfeited >= 1  # the slow answer's slot was given up
        rejoins = [c.argv["rejoin"] for c in client.answered() if c.argv["mode"] == "acquire"]
        expected = (limit.probe_interval + (limit.time_period + limit.slack)) * US
        # The first reservation holds the schedule back for the others; a retry does not.
        assert rejoins[0] == repr(expected)
        assert rejoins[1:] == ["0.0"] * (len(rejoins) - 1)
        assert len(rejoins) >= 2
    finally:
        await limiter.aclose()


async def test_a_local_start_is_counted_once() -> None:
    limit = RedisRateLimit.from_url(
        f"redis://127.0.0.1:{free_port()}/0", 20, 0.05, on_redis_error="local"
    )
    limiter = limit.open(key="local")
    try:
        await limiter.acquire()  # nothing listens on the port: local at once
        stats = limiter.stats
        assert (stats.acquired, stats.acquired_locally, stats.local) == (1, 1, True)
        assert limiter.last_slot is None
        await limiter.acquire()
        assert (limiter.stats.acquired, limiter.stats.acquired_locally) == (2, 2)
    finally:
        await limiter.aclose()


# --- Redis failures ---------------------------------------------------------------------


async def test_a_redis_error_is_counted_each_time_and_named_in_the_message() -> None:
    limiter = RedisRateLimit.from_url(f"redis://127.0.0.1:{free_port()}/0", 20).open(key="down")
    try:
        for count in (1, 2):
            with pytest.raises(
                RateLimiterUnavailableError,
                match=r"^the shared rate limit in Redis \(gtmhub_async:rate:\{[0-9a-f]{32}\}\) is "
                r"unavailable: error: ConnectionError: .+\. No request was sent; "
                r"on_redis_error='local' would fall back to a local limit instead$",
            ) as info:
                await limiter.acquire()
            cause = info.value.__cause__
            assert isinstance(cause, RedisConnectionError)
            assert str(info.value) == UNAVAILABLE.format(
                key=limiter.redis_key, what=f"error: ConnectionError: {cause}"
            )
            assert limiter.stats.redis_errors == count
    finally:
        await limiter.aclose()


async def test_no_answer_within_the_timeout_is_named_with_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")  # no socket timeout
    limiter = RedisRateLimit(client, 20, redis_timeout=0.05).open(key="silent")
    try:
        with pytest.raises(
            RateLimiterUnavailableError,
            match=r"^the shared rate limit in Redis \(gtmhub_async:rate:\{[0-9a-f]{32}\}\) is "
            r"unavailable: no answer within 0\.05 s: TimeoutError: \. No request was sent; "
            r"on_redis_error='local' would fall back to a local limit instead$",
        ):
            await limiter.acquire()
        assert limiter.stats.redis_errors == 1
    finally:
        await limiter.aclose()
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_a_lost_script_is_loaded_again_and_logged(
    client: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with opened(client, max_rate=100, slack=None, redis_timeout=5.0) as limiter:
        await limiter.acquire()
        await client.script_flush()
        await limiter.acquire()
        assert limiter.stats.script_loads == 2
        assert limiter.stats.redis_errors == 0
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages.count("Redis lost the rate limit script: loading it again") == 1


async def test_a_script_sha_answered_as_bytes_is_decoded(redis_server: RedisServer) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    client.set_response_callback("SCRIPT LOAD", lambda sha: sha)  # the raw answer: bytes
    assert isinstance(await client.script_load("return 1"), bytes)
    limiter = open_limiter(client, max_rate=100, slack=None, redis_timeout=5.0)
    try:
        await limiter.acquire()
        await limiter.acquire()
        assert limiter.stats.script_loads == 1
        assert limiter.stats.redis_errors == 0
    finally:
        await limiter.aclose()
        await client.aclose()
