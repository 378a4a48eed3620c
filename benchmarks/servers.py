"""Local HTTP servers for the benchmarks, each run in its own process on 127.0.0.1.

One raw ``asyncio.Protocol`` server (no framework: the server must never be the
bottleneck) answers the few routes the scenarios use:

- ``GET  /api/v1/kpis/{id}``: a fixed KPI body of about 1 KB (``KPI_BODY``);
- ``POST /api/v1/kpis/{id}/snapshots``: a small snapshot body;
- ``GET  /api/v2/kpis?skip=&take=``: a page of generated KPIs, built on the fly;
- ``GET  /__stats`` and ``POST /__reset``: the arrival log (monotonic seconds and
  status of every API request since the last reset), for the harness.

Options: ``--latency S`` delays every API answer by S seconds (a timer, no CPU);
``--rate N`` admits at most N API requests per sliding second and answers the
others 429 with a whole-second ``Retry-After`` (the same rule as FakeGtmhub's).

Run as ``python -m benchmarks.servers [options]``: it prints ``PORT <n>`` once it
listens, and stops when its stdin closes (the harness exiting) or after
``--max-seconds``, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import threading
import time
from collections import deque
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

__all__ = ["ACCOUNT_ID", "KPI_BODY", "KPI_IDS", "SNAPSHOT_BODY", "TOKEN", "kpi_dict", "main"]

HOST: Final = "127.0.0.1"
TOKEN: Final = "bench-token-0123456789abcdef"
ACCOUNT_ID: Final = "5be26318e5274a0007f17f60"
#: Ids the clients cycle through, so that every request has its own URL.
KPI_IDS: Final = tuple(f"5be26318e5274a{i:010x}" for i in range(1024))


def kpi_dict(index: int = 0) -> dict[str, Any]:
    """Return a realistic KPI as the API sends it: 22 fields, datetimes, nested formatting."""
    return {
        "id": KPI_IDS[index % len(KPI_IDS)] if index < len(KPI_IDS) else f"{index:024x}",
        "accountId": ACCOUNT_ID,
        "name": f"Monthly recurring revenue, EMEA enterprise segment #{index}",
        "description": (
            "Sum of the monthly recurring revenue of every active enterprise subscription "
            "in the EMEA region, in euros, as reported by the billing system at midnight UTC."
        ),
        "ownerIds": ["5be26318e5274a0007f17f61", "5be26318e5274a0007f17f62"],
        "aggregation": "last",
        "targetOperator": "should_increase",
        "formatting": {"prefix": "EUR ", "suffix": "", "fractionSize": 2},
        "groupIds": ["5c0e4b1fe5274a0007a1b2c3", "5c0e4b1fe5274a0007a1b2c4"],
        "insightId": "5d1f2a3be5274a0007c4d5e6",
        "dateCreated": "2024-03-11T08:15:42.123Z",
        "dateUpdated": "2026-11-02T23:59:01.456Z",
        "createdById": "5be26318e5274a0007f17f61",
        "modifiedById": "5be26318e5274a0007f17f62",
        # Fields the SDK's model does not name: they land in Kpi.extra.
        "lastSnapshotValue": 1284503.75,
        "lastSnapshotDate": "2026-11-02T00:00:00Z",
        "snapshotsCount": 731,
        "manualType": "manual",
        "isDeleted": False,
        "tags": [{"id": "5e2f3a4be5274a0007d5e6f7", "title": "finance"}],
        "color": "#2E7D32",
        "links": {"expanded": {"goals": {"count": 3}, "metrics": {"count": 5}}},
    }


KPI_BODY: Final = orjson.dumps(kpi_dict(0))
SNAPSHOT_BODY: Final = orjson.dumps(
    {
        "id": "5f3a4b5ce5274a0007e6f7a8",
        "kpiId": KPI_IDS[0],
        "group": "2026-11-01",
        "value": 42.5,
        "timeZone": "UTC",
        "dateCreated": "2026-11-02T08:00:00Z",
    }
)
_PAGE_ITEM: Final = kpi_dict(0)


def page_body(skip: int, take: int, total: int) -> bytes:
    """Return one page of ``GET /v2/kpis``: ids in order, so that skip/take pages tile."""
    end = min(total, skip + max(0, take))
    items = [{**_PAGE_ITEM, "id": f"{i:024x}", "name": f"KPI {i}"} for i in range(skip, end)]
    return orjson.dumps({"items": items, "totalCount": total})


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 429: b"Too Many Requests"}.get(status, b"Other")
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"Content-Type: application/json\r\n",
            b"Content-Length: %d\r\n" % len(body),
            extra,
            b"\r\n",
            body,
        )
    )


class App:
    """The routes, the optional latency and rate limit, and the arrival log."""

    def __init__(self, *, latency: float, rate: int | None, total: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.latency = latency
        self.rate = rate
        self.total = total
        self.admitted: deque[float] = deque()
        self.log_t: list[float] = []
        self.log_s: list[int] = []
        self.kpi_response = _response(200, KPI_BODY)
        self.snapshot_response = _response(200, SNAPSHOT_BODY)

    def handle(self, method: bytes, target: bytes, body: bytes) -> bytes:
        if target.startswith(b"/__"):
            return self._control(method, target)
        now = time.monotonic()
        if self.rate is not None:
            admitted = self.admitted
            while admitted and admitted[0] <= now - 1.0:
                admitted.popleft()
            if len(admitted) >= self.rate:
                wait = admitted[0] + 1.0 - now
                self.log_t.append(now)
                self.log_s.append(429)
                retry_after = b"Retry-After: %d\r\n" % max(1, math.ceil(wait - 1e-9))
                return _response(429, b'{"message":"rate limit exceeded"}', retry_after)
            admitted.append(now)
        self.log_t.append(now)
        self.log_s.append(200)
        path, _, query = target.partition(b"?")
        if method == b"GET" and path.startswith(b"/api/v1/kpis/"):
            return self.kpi_response
        if method == b"POST" and path.endswith(b"/snapshots"):
            return self.snapshot_response
        if method == b"GET" and path == b"/api/v2/kpis":
            params = dict(parse_qsl(query.decode("latin-1")))
            skip = int(params.get("skip", "0"))
            take = int(params.get("take", "100"))
            return _response(200, page_body(skip, take, self.total))
        return _response(404, b'{"message":"no such route"}')

    def _control(self, method: bytes, target: bytes) -> bytes:
        if target.startswith(b"/__reset"):
            self.admitted.clear()
            self.log_t = []
            self.log_s = []
            return _response(200, b"{}")
        if target.startswith(b"/__stats"):
            return _response(200, orjson.dumps({"t": self.log_t, "status": self.log_s}))
        return _response(404, b"{}")


class HttpProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: Content-Length bodies, answers in order."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            line_end = head.find(b"\r\n")
            method, target, _ = head[: line_end if line_end >= 0 else len(head)].split(b" ", 2)
            reply = self.app.handle(method, target, body)
            if self.app.latency > 0 and not target.startswith(b"/__"):
                self.app.loop.call_later(self.app.latency, self._write, reply)
            else:
                self._write(reply)

    def _write(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def serve(latency: float, rate: int | None, total: int, max_seconds: float) -> None:
    """Listen on 127.0.0.1, print the port, serve until stdin closes or time runs out."""
    loop = asyncio.get_running_loop()
    app = App(latency=latency, rate=rate, total=total)
    server = await loop.create_server(lambda: HttpProtocol(app), HOST, 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    done = asyncio.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the harness closed the pipe or exited
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        async with asyncio.timeout(max_seconds):
            await done.wait()
    except TimeoutError:
        pass
    server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=int, default=None)
    parser.add_argument("--total", type=int, default=100_000, help="KPIs behind /v2/kpis")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.latency, args.rate, args.total, args.max_seconds))


if __name__ == "__main__":
    main()
