"""Rules of gtmhub_async.bulk that mutation testing found unchecked (see tests/MUTATION.md)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from test_bulk import GOOD_ID, upload
from test_journal import Source, done, intent, lines, write_journal

from gtmhub_async import BulkResult, KpiSnapshotRequest, SnapshotUpload, UnknownOutcomeError
from gtmhub_async import journal as journal_module
from gtmhub_async.bulk import ItemResult, snapshot_key, upload_snapshots
from gtmhub_async.errors import (
    BadRequestError,
    ClientStateError,
    ResponseDecodeError,
    SnapshotConflictError,
)
from gtmhub_async.journal import Journal
from gtmhub_async.resources import Kpis
from gtmhub_async.routes import CREATE_SNAPSHOT, LIST_SNAPSHOTS
from gtmhub_async.session import CallState
from gtmhub_async.testing import FakeGtmhub


def key(item: SnapshotUpload) -> str:
    return snapshot_key(item.kpi_id, item.snapshot)


def seen(items: list[ItemResult]) -> list[tuple[int, Any, type | None, str | None]]:
    """Return each item result as (index, item, error type, error message)."""
    return [
        (
            r.index,
            r.item,
            None if r.error is None else type(r.error),
            None if r.error is None else str(r.error),
        )
        for r in items
    ]


class _Session:
    def __init__(self, owner: Scripted) -> None:
        self.owner = owner

    async def call(
        self, route: object, params: Any, *, state: CallState | None = None
    ) -> list[object] | None:
        owner = self.owner
        if route is LIST_SNAPSHOTS:  # a read-back: the day holds nothing
            owner.reading += 1
            owner.most_reading = max(owner.most_reading, owner.reading)
            for _ in range(3):
                await asyncio.sleep(0)
            owner.reading -= 1
            return []
        assert route is CREATE_SNAPSHOT
        value = params.snapshot.value
        task = asyncio.current_task()
        assert task is not None
        owner.workers.append(task.get_name())
        what = owner.plan.pop(value, None)  # each entry is used once
        if what in ("wait", "in-flight"):
            if what == "in-flight":
                assert state is not None
                state.in_flight = True
                owner.sent.append(value)
            owner.blocked += 1
            owner.arrived.set()
            await asyncio.Event().wait()  # until cancelled
        owner.sent.append(value)
        await asyncio.sleep(0)
        if isinstance(what, BaseException):
            raise what
        return None


class Scripted:
    """A client whose create_snapshot does what ``plan`` says for a value, else succeeds.

    A plan entry is an exception to raise after sending, ``"wait"`` (wait before sending,
    e.g. in the limiter, until cancelled) or ``"in-flight"`` (sent, no answer until cancelled).
    """

    def __init__(self, plan: dict[float, object] | None = None) -> None:
        self.plan = plan or {}
        self.sent: list[float] = []
        self.workers: list[str] = []
        self.blocked = 0
        self.reading = 0
        self.most_reading = 0
        #: Set each time a call starts to wait.
        self.arrived = asyncio.Event()
        self._session = _Session(self)

    def open_session(self) -> _Session:
        return self._session


async def run_upload(client: Scripted, items: Any, **kwargs: Any) -> BulkResult:
    """Run ``upload_snapshots`` with the scripted stand-in as its client."""
    return await upload_snapshots(client, items, **kwargs)  # type: ignore[arg-type]  # a stand-in


def up(value: float) -> SnapshotUpload:
    return upload(GOOD_ID, value)


async def test_each_outcome_lands_in_its_list_with_its_journal_line_and_progress(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    refused = BadRequestError(400, "value is bad")
    garbled = ResponseDecodeError("cut body", body=b"{")
    broken = RuntimeError("boom")
    client = Scripted({2.0: refused, 3.0: garbled, 4.0: broken})
    items: list[Any] = [up(0.0), "bad", up(2.0), up(3.0), up(4.0)]
    progress: list[tuple[int, int | None]] = []
    result = await run_upload(
        client,
        items,
        concurrency=1,
        journal=journal,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert client.sent == [0.0, 2.0, 3.0, 4.0]
    assert client.workers == ["gtmhub_async upload worker 0"] * 4
    assert result.succeeded == [items[0]]
    assert seen(result.failed) == [
        (1, "bad", TypeError, "each item must be a SnapshotUpload, got str"),
        (2, items[2], BadRequestError, "HTTP 400: value is bad"),
    ]
    assert result.failed[1].error is refused
    assert seen(result.unknown) == [
        (3, items[3], ResponseDecodeError, "cut body; body: '{'"),
        (4, items[4], RuntimeError, "boom"),
    ]
    assert result.unknown[0].error is garbled and result.unknown[1].error is broken
    assert (result.succeeded_count, result.failed_count, result.unknown_count) == (1, 2, 2)
    assert result.not_attempted == [] and result.not_attempted_count == 0
    assert progress == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    k0, k2, k3, k4 = (key(items[i]) for i in (0, 2, 3, 4))
    g = "2026-11-01"
    assert lines(journal) == [
        {"id": 0, "intent": k0, "kpiId": GOOD_ID, "group": g, "value": 0.0},
        {"id": 0, "outcome": "succeeded", "key": k0, "index": 0},
        {"id": 1, "intent": k2, "kpiId": GOOD_ID, "group": g, "value": 2.0},
        {
            "id": 1,
            "outcome": "failed",
            "key": k2,
            "index": 2,
            "error": "BadRequestError: HTTP 400: value is bad",
        },
        {"id": 2, "intent": k3, "kpiId": GOOD_ID, "group": g, "value": 3.0},
        {
            "id": 2,
            "outcome": "unknown",
            "key": k3,
            "index": 3,
            "error": "ResponseDecodeError: cut body; body: '{'",
        },
        {"id": 3, "intent": k4, "kpiId": GOOD_ID, "group": g, "value": 4.0},
        {"id": 3, "outcome": "unknown", "key": k4, "index": 4, "error": "RuntimeError: boom"},
    ]


async def test_a_client_state_error_fails_its_item_journals_it_and_reaches_the_caller(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    closed = ClientStateError("the client was closed")
    client = Scripted({1.0: closed})
    items = [up(0.0), up(1.0), up(2.0)]
    result = BulkResult()
    with pytest.raises(ClientStateError, match=r"^the client was closed$"):
        await run_upload(
            client,
            items,
            concurrency=1,
            journal=journal,
            result=result,
        )
    assert client.sent == [0.0, 1.0]
    assert seen(result.failed) == [(1, items[1], ClientStateError, "the client was closed")]
    assert result.failed[0].error is closed
    assert result.consumed == 2 and result.succeeded == [items[0]]
    k1 = key(items[1])
    assert lines(journal)[2:] == [
        {"id": 1, "intent": k1, "kpiId": GOOD_ID, "group": "2026-11-01", "value": 1.0},
        {
            "id": 1,
            "outcome": "failed",
            "key": k1,
            "index": 1,
            "error": "ClientStateError: the client was closed",
        },
    ]


async def test_an_intent_not_made_durable_is_not_attempted_closed_in_the_journal_and_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j.jsonl"
    real = Journal.durable

    async def durable(self: Journal) -> None:
        if self._written >= 3:  # the second item's intent
            raise OSError(5, "I/O error")
        await real(self)

    monkeypatch.setattr(Journal, "durable", durable)
    client = Scripted()
    items = [up(0.0), up(1.0), up(2.0)]
    result = BulkResult()
    progress: list[int] = []
    with pytest.raises(OSError, match=r"^\[Errno 5\] I/O error$"):
        await run_upload(
            client,
            items,
            concurrency=1,
            journal=journal,
            result=result,
            on_progress=lambda d, t: progress.append(d),
        )
    assert client.sent == [0.0]
    assert seen(result.not_attempted) == [(1, items[1], None, None)]
    assert result.not_attempted_count == 1 and result.consumed == 2 and progress == [1]
    k1 = key(items[1])
    assert lines(journal)[2:] == [
        {"id": 1, "intent": k1, "kpiId": GOOD_ID, "group": "2026-11-01", "value": 1.0},
        {"id": 1, "outcome": "failed", "key": k1, "index": 1},
    ]


async def test_an_intent_that_cannot_be_written_leaves_no_line_and_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j.jsonl"

    def intent(self: Journal, *args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Journal, "intent", intent)
    client = Scripted()
    items = [up(0.0), up(1.0)]
    result = BulkResult()
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device$"):
        await run_upload(
            client,
            items,
            concurrency=1,
            journal=journal,
            result=result,
        )
    assert client.sent == []
    assert seen(result.not_attempted) == [(0, items[0], None, None)]
    assert journal.read_bytes() == b""


async def test_a_cancel_settles_each_worker_by_where_its_item_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In flight: unknown; waiting before sending: not attempted; each entry closed."""
    journal = tmp_path / "j.jsonl"
    real = Journal.durable
    syncing = [0]

    async def durable(self: Journal) -> None:
        if self._written == 3:  # the third item's intent: its fsync never ends
            syncing[0] += 1
            client.arrived.set()
            await asyncio.Event().wait()
        await real(self)

    monkeypatch.setattr(Journal, "durable", durable)
    client = Scripted({0.0: "in-flight", 1.0: "wait"})
    items = [up(0.0), up(1.0), up(2.0)]
    result = BulkResult()
    task = asyncio.create_task(
        run_upload(
            client,
            items,
            concurrency=3,
            journal=journal,
            fsync="none",
            result=result,
        )
    )
    while client.blocked < 2 or not syncing[0]:  # until every worker is in place
        client.arrived.clear()
        await client.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.sent == [0.0]
    message = "the upload was cancelled while this request was in flight: it may have been applied"
    assert seen(result.unknown) == [(0, items[0], UnknownOutcomeError, message)]
    error = result.unknown[0].error
    assert isinstance(error, UnknownOutcomeError) and error.method == "POST"
    assert isinstance(error.__cause__, asyncio.CancelledError)
    assert sorted(seen(result.not_attempted)) == [
        (1, items[1], None, None),
        (2, items[2], None, None),
    ]
    assert (result.unknown_count, result.not_attempted_count, result.consumed) == (1, 2, 3)
    k0, k1, k2 = (key(i) for i in items)
    written = lines(journal)
    assert [e["intent"] for e in written[:3]] == [k0, k1, k2]
    assert sorted(written[3:], key=lambda e: e["id"]) == [
        {
            "id": 0,
            "outcome": "unknown",
            "key": k0,
            "index": 0,
            "error": f"UnknownOutcomeError: {message}",
        },
        {"id": 1, "outcome": "failed", "key": k1, "index": 1},
        {"id": 2, "outcome": "failed", "key": k2, "index": 2},
    ]


async def test_an_item_read_while_stopping_is_not_attempted_and_not_journaled(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    release = asyncio.Event()
    items = [up(0.0), up(1.0), up(2.0)]

    async def source() -> AsyncIterator[SnapshotUpload]:
        for i, each in enumerate(items):
            if i == 1:
                await release.wait()  # the second item comes only after the first failed
            yield each

    client = Scripted({0.0: BadRequestError(400, "no")})
    result = await run_upload(
        client,
        source(),
        concurrency=2,
        stop_on_error=True,
        journal=journal,
        on_progress=lambda d, t: release.set(),
    )
    assert client.sent == [0.0]
    assert seen(result.failed) == [(0, items[0], BadRequestError, "HTTP 400: no")]
    assert seen(result.not_attempted) == [(1, items[1], None, None)]
    k0 = key(items[0])
    assert lines(journal) == [
        {"id": 0, "intent": k0, "kpiId": GOOD_ID, "group": "2026-11-01", "value": 0.0},
        {
            "id": 0,
            "outcome": "failed",
            "key": k0,
            "index": 0,
            "error": "BadRequestError: HTTP 400: no",
        },
    ]


async def test_stop_on_error_stops_at_a_new_unknown_but_not_at_one_the_journal_recalls(
    tmp_path: Path,
) -> None:
    items = [up(0.0), up(1.0), up(2.0)]
    lost = UnknownOutcomeError("the connection dropped", method="POST")
    client = Scripted({0.0: lost})
    first = await run_upload(
        client,
        items,
        concurrency=1,
        stop_on_error=True,
    )
    assert client.sent == [0.0]
    assert seen(first.unknown) == [(0, items[0], UnknownOutcomeError, "the connection dropped")]
    assert first.consumed == 1

    journal = tmp_path / "j.jsonl"
    k0, k1 = key(items[0]), key(items[1])
    write_journal(journal, [intent(0, k0), done(0, k0, "unknown"), intent(1, k1), done(1, k1)])
    before = journal.read_bytes()
    client = Scripted()
    again = await run_upload(
        client,
        items,
        concurrency=1,
        stop_on_error=True,
        journal=journal,
    )
    assert client.sent == [2.0]
    assert [(r.index, r.item) for r in again.unknown] == [(0, items[0])]
    assert str(again.unknown[0].error) == (
        f"journal {journal} records an earlier upload of this snapshot whose outcome is "
        "unknown: it may have been applied, so it was not sent again; pass reconcile=True "
        "to read it back, or retry_unknown=True to send it"
    )
    # The item skipped as uploaded before is in the list of successes, itself.
    assert again.succeeded == [items[1], items[2]] and again.skipped_count == 1
    # Recalled from the journal: no new line for the unknown nor the skipped item.
    assert journal.read_bytes()[: len(before)] == before
    assert [e.get("intent") or e.get("outcome") for e in lines(journal)[4:]] == [
        key(items[2]),
        "succeeded",
    ]


def on(day: int, kpi: str, value: float) -> SnapshotUpload:
    return SnapshotUpload(kpi, KpiSnapshotRequest(group=date(2026, 11, day), value=value))


@pytest.mark.parametrize("keep", [True, False])
async def test_reconcile_closes_the_orphan_and_the_new_unknown_under_their_entries(
    tmp_path: Path, keep: bool
) -> None:
    journal = tmp_path / "j.jsonl"
    async with FakeGtmhub(seed=31) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        orphan, dropped = on(1, kpi, 1.0), on(2, kpi, 2.0)
        ka, kb = key(orphan), key(dropped)
        fake.add_snapshot(kpi, "2026-11-01", 1.0)  # the crashed run's POST had arrived
        write_journal(journal, [intent(0, ka)])
        fake.script(["reset"])  # the new item is applied, then its connection dropped
        async with fake.client(rate_limit=None) as client:
            result = await upload_snapshots(
                client,
                [orphan, dropped],
                concurrency=1,
                journal=journal,
                reconcile=True,
                keep_succeeded=keep,
            )
        assert [r.json["value"] for r in fake.requests if r.method == "POST"] == [2.0]
    assert result.ok and (result.reconciled_count, result.resent_count) == (2, 0)
    assert result.succeeded_count == 2
    assert result.succeeded == ([orphan, dropped] if keep else [])
    written = lines(journal)
    assert written[3]["error"].startswith("UnknownOutcomeError: ")
    del written[3]["error"]
    assert written == [
        {"id": 0, "intent": ka},
        {
            "id": 0,
            "outcome": "unknown",
            "key": ka,
            "index": 0,
            "error": f"UnknownOutcomeError: journal {journal} records that an earlier run "
            "was about to send this snapshot (entry 0) and no outcome: it stopped (crashed?) "
            "meanwhile, so the snapshot may have been applied and was not sent again; pass "
            "reconcile=True to read it back",
        },
        {"id": 1, "intent": kb, "kpiId": kpi, "group": "2026-11-02", "value": 2.0},
        {"id": 1, "outcome": "unknown", "key": kb, "index": 1},
        {
            "id": 0,
            "outcome": "succeeded",
            "key": ka,
            "index": 0,
            "was": "unknown",
            "reconciled": True,
        },
        {
            "id": 1,
            "outcome": "succeeded",
            "key": kb,
            "index": 1,
            "was": "unknown",
            "reconciled": True,
        },
    ]


async def test_reconcile_counts_the_items_of_the_whole_upload_that_share_a_day() -> None:
    async with FakeGtmhub(seed=32) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        first, second = on(1, kpi, 1.0), on(1, kpi, 2.0)
        fake.script([None, "reset"])
        async with fake.client(rate_limit=None) as client:
            result = await upload_snapshots(client, [first, second], concurrency=1, reconcile=True)
    # The day holds the second value, but the first item wrote that day too: which one
    # the server kept cannot be told, so the item is not counted as applied.
    assert result.succeeded == [first] and result.conflict_count == 1
    assert seen(result.unknown) == [
        (
            1,
            second,
            SnapshotConflictError,
            f"KPI {kpi} on 2026-11-01 holds 2, not only the intended 2; 1 other item(s) "
            "of this upload write that day: cannot tell whether this snapshot was applied, "
            "so it was not sent again",
        )
    ]


async def test_a_worker_yields_once_per_256_items_settled_in_a_row_without_a_request(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    skipped = [up(float(v)) for v in range(520)]
    write_journal(
        journal,
        [line for n, u in enumerate(skipped) for line in (intent(n, key(u)), done(n, key(u)))],
    )
    items: list[Any] = [*skipped, up(1000.0), *["bad"] * 300]
    client = Scripted()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    at: list[int] = []  # the ticker's count at each progress call
    task = asyncio.create_task(ticker())
    result = await run_upload(
        client,
        items,
        concurrency=1,
        journal=journal,
        fsync="none",
        on_progress=lambda d, t: at.append(ticks),
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.sent == [1000.0]
    assert (result.skipped_count, result.succeeded_count, result.failed_count) == (520, 521, 300)
    # done -> how often the loop ran other tasks since the previous progress call: once
    # after the 256th and the 512th skipped item, during the request, after the 256th bad one.
    turns = {d + 1: b - a for d, (a, b) in enumerate(pairwise(at), 1) if b != a}
    assert turns == {257: 1, 513: 1, 521: 1, 778: 1}


class Resuming:
    """A sync iterator that ends, then would go on (as a file that grew since its end)."""

    def __init__(self, before: list[SnapshotUpload], after: list[SnapshotUpload]) -> None:
        self.parts = [iter(before), iter(after)]
        self.ends = 0

    def __iter__(self) -> Iterator[SnapshotUpload]:
        return self

    def __next__(self) -> SnapshotUpload:
        try:
            return next(self.parts[0])
        except StopIteration:
            self.ends += 1
            self.parts.pop(0)
            raise


async def test_no_worker_reads_past_the_end_of_the_items() -> None:
    client = Scripted()
    items = Resuming([up(0.0), up(1.0)], [up(2.0)])
    result = await run_upload(client, items, concurrency=2)
    assert client.sent == [0.0, 1.0] and items.ends == 1
    assert result.succeeded_count == result.consumed == 2


async def test_a_source_that_cannot_be_closed_is_logged_and_the_upload_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Scripted()
    source = Source([up(0.0), "bad", up(2.0)], fail_close=True)  # type: ignore[list-item]  # a bad row on purpose
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.bulk"):
        result = await run_upload(
            client,
            source,
            concurrency=1,
            stop_on_error=True,
        )
    assert client.sent == [0.0] and source.closed == 1
    assert seen(result.failed) == [
        (1, "bad", TypeError, "each item must be a SnapshotUpload, got str")
    ]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("gtmhub_async.bulk", logging.WARNING, "closing the items' async iterator failed")
    ]
    exc_info = caplog.records[0].exc_info
    assert exc_info is not None and str(exc_info[1]) == "cannot close"


def test_a_direct_call_has_the_defaults_of_kpis_upload_snapshots() -> None:
    """``bulk.upload_snapshots`` is what ``client.kpis.upload_snapshots`` runs."""
    direct = inspect.signature(upload_snapshots).parameters
    public = inspect.signature(Kpis.upload_snapshots).parameters
    defaults = {n: p.default for n, p in public.items() if p.default is not p.empty}
    assert {n: p.default for n, p in direct.items() if p.default is not p.empty} == defaults
    assert defaults["concurrency"] == 16 and defaults["stop_on_error"] is False
    assert (defaults["retry_unknown"], defaults["reconcile"]) == (False, False)
    assert defaults["keep_succeeded"] is True


async def test_the_journal_groups_intents_for_fsync_interval_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    class Spy:
        """The journal module's ``asyncio``, with its sleeps recorded."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        async def sleep(delay: float) -> None:
            waits.append(delay)
            await asyncio.sleep(0)

    monkeypatch.setattr(journal_module, "asyncio", Spy())
    client = Scripted()
    result = await run_upload(
        client,
        [up(0.0), up(1.0)],
        concurrency=1,
        journal=tmp_path / "j.jsonl",
        fsync_interval=0.25,
    )
    assert result.ok and client.sent == [0.0, 1.0]
    assert waits == [0.25, 0.25]  # one group per intent, at concurrency 1


async def test_reconcile_reads_back_with_at_most_concurrency_requests_at_once() -> None:
    kpis = ["5e8c27e3dcdddaa4addbdee" + str(n) for n in range(3)]
    items = [upload(k, float(n)) for n, k in enumerate(kpis)]
    lost = {float(n): UnknownOutcomeError("dropped", method="POST") for n in range(3)}
    client = Scripted(dict(lost))
    result = await run_upload(client, items, concurrency=1, reconcile=True)
    assert result.ok and result.resent_count == 3
    assert client.sent == [0.0, 1.0, 2.0] * 2
    assert client.most_reading == 1
