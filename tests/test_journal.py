"""The write-ahead journal: intent on disk before the POST, damaged lines, counters, sources."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from gtmhub_async import BulkResult, KpiSnapshotRequest, SnapshotUpload
from gtmhub_async.bulk import snapshot_key
from gtmhub_async.journal import read_journal, take
from gtmhub_async.testing import FakeGtmhub
from gtmhub_async.testing.log import RequestRecord

DAY = date(2026, 3, 1)
SNAPSHOTS = "/v1/kpis/{kpiId}/snapshots"


def item(kpi: str, value: float) -> SnapshotUpload:
    return SnapshotUpload(kpi, KpiSnapshotRequest(group=DAY, value=value))


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class Spy(list[RequestRecord]):
    """The fake's request log: calls ``seen`` with each record as it arrives."""

    def __init__(self, seen: Callable[[RequestRecord], None]) -> None:
        super().__init__()
        self.seen = seen

    def append(self, record: RequestRecord) -> None:
        self.seen(record)
        super().append(record)


@pytest.mark.parametrize("mode", ["group", "line", "none"])
async def test_the_intent_is_written_before_its_post_leaves(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j.jsonl"
    synced: list[int] = []  # the journal's size on disk at each fsync
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", fsync)
    checked: list[float] = []

    def seen(record: RequestRecord) -> None:
        if record.route != SNAPSHOTS:
            return
        # A second handle, while the POST is in the server's hands.
        with open(journal, "rb") as f:
            data = f.read()
        value = record.json["value"]
        at = data.index(b'"value":%s}' % orjson.dumps(value))
        end = data.index(b"\n", at) + 1
        if mode != "none":
            assert synced and synced[-1] >= end, "the intent was not fsynced before the POST"
        if value > 0:
            # The outcome of the item before it (concurrency 1) was flushed too.
            assert b'"outcome":"succeeded"' in data
        checked.append(value)

    async with FakeGtmhub(seed=1) as fake:
        fake.requests = Spy(seen)
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = [item(kpi, float(v)) for v in range(5)]
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(
                items,
                concurrency=1,
                journal=journal,
                fsync=mode,  # type: ignore[arg-type]  # str from parametrize
            )
    assert result.ok and checked == [0.0, 1.0, 2.0, 3.0, 4.0]
    if mode == "none":
        assert synced == []
    elif mode == "line":
        assert len(synced) == 5 + 1  # one per intent, one at close for the last outcome
    else:
        assert 5 <= len(synced) <= 6  # concurrency 1: nothing to group
    kinds = [("intent" in e, e.get("outcome")) for e in lines(journal)]
    assert kinds == [(True, None), (False, "succeeded")] * 5


async def test_group_commit_shares_fsyncs_and_still_fsyncs_each_intent_before_its_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: dict[str, list[int]] = {"g.jsonl": [], "l.jsonl": []}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        size = os.fstat(fd).st_size  # what this fsync covers, at least
        real_fsync(fd)
        synced[os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))].append(size)

    monkeypatch.setattr(os, "fsync", fsync)
    late: list[float] = []
    current = ["g.jsonl"]

    def seen(record: RequestRecord) -> None:
        if record.route != SNAPSHOTS:
            return
        data = (tmp_path / current[0]).read_bytes()
        value = record.json["value"]
        end = data.index(b"\n", data.index(b'"value":%s}' % orjson.dumps(value))) + 1
        if not synced[current[0]] or max(synced[current[0]]) < end:
            late.append(value)

    async with FakeGtmhub(seed=2, latency=0.002) as fake:
        fake.requests = Spy(seen)
        kpis = [k["id"] for k in fake.add_kpis(4)]
        items = [item(kpis[v % 4], float(v)) for v in range(200)]
        async with fake.client(rate_limit=None) as client:
            grouped = await client.kpis.upload_snapshots(
                items, concurrency=16, journal=tmp_path / "g.jsonl"
            )
            current[0] = "l.jsonl"
            lined = await client.kpis.upload_snapshots(
                items, concurrency=16, journal=tmp_path / "l.jsonl", fsync="line"
            )
    assert grouped.ok and lined.ok and late == []
    assert len(synced["l.jsonl"]) >= 200
    assert len(synced["g.jsonl"]) <= 100  # 16 workers share each fsync


def write_journal(path: Path, entries: list[bytes]) -> None:
    path.write_bytes(b"".join(e + b"\n" for e in entries))


def done(ident: int, key: str, outcome: str = "succeeded") -> bytes:
    return orjson.dumps({"id": ident, "outcome": outcome, "key": key, "index": ident})


def intent(ident: int, key: str) -> bytes:
    return orjson.dumps({"id": ident, "intent": key})


async def test_a_damaged_middle_line_is_skipped_and_the_rest_still_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeGtmhub(seed=3) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        a, b, c = item(kpi, 1.0), item(kpi, 2.0), item(kpi, 3.0)
        ka, kb = (snapshot_key(u.kpi_id, u.snapshot) for u in (a, b))
        journal = tmp_path / "j.jsonl"
        write_journal(
            journal,
            [
                intent(0, ka),
                done(0, ka),
                b'{"id": 1, "inte\x00garbage',
                intent(2, kb),
                done(2, kb),
            ],
        )
        with caplog.at_level(logging.WARNING, logger="gtmhub_async.journal"):
            async with fake.client(rate_limit=None) as client:
                result = await client.kpis.upload_snapshots([a, b, c], journal=journal)
    assert result.skipped_count == 2 and result.succeeded_count == 3
    assert [r.json["value"] for r in fake.requests if r.route == SNAPSHOTS] == [3.0]
    assert f"journal {journal}: skipped 1 damaged line(s): 3" in caplog.text


def test_read_journal_counts_and_names_damage(tmp_path: Path) -> None:
    k1, k2 = "1" * 32, "2" * 32
    path = tmp_path / "j.jsonl"
    write_journal(
        path,
        [
            intent(0, k1),
            done(0, k1),
            b"not json",
            intent(1, k1),  # an orphan: a crash came before its outcome
            intent(2, k2),
            done(2, k2, "unknown"),
            orjson.dumps({"id": 2, "outcome": "succeeded", "key": k2, "was": "unknown"}),
            orjson.dumps({"outcome": "succeeded", "key": k2}),  # the format before intents
            orjson.dumps({"id": "x", "outcome": "succeeded", "key": k2}),
            orjson.dumps({"id": 9, "outcome": "maybe", "key": k2}),
            b"[1, 2]",
        ],
    )
    with path.open("ab") as f:
        f.write(b'{"id": 10, "inte')
    state = read_journal(str(path))
    assert state.succeeded == {int(k1, 16): 1, int(k2, 16): 2}
    assert state.unknown == {}
    assert state.orphans == {int(k1, 16): [1]}
    assert state.damaged == [3, 9, 10, 11, 12]
    assert (state.lines, state.complete, state.next_id) == (12, False, 10)
    assert read_journal(str(tmp_path / "missing")).lines == 0


def test_take_uses_up_one_occurrence_at_a_time() -> None:
    counts = {7: 2}
    assert take(counts, 7) and counts == {7: 1}
    assert take(counts, 7) and counts == {}
    assert not take(counts, 7) and counts == {}


async def test_each_journal_line_stands_for_one_identical_item(tmp_path: Path) -> None:
    async with FakeGtmhub(seed=4) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        same = item(kpi, 5.0)
        key = snapshot_key(kpi, same.snapshot)
        journal = tmp_path / "j.jsonl"
        write_journal(journal, [intent(0, key), done(0, key), intent(1, key), done(1, key)])
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots([same] * 3, journal=journal)
            assert (result.skipped_count, fake.count("POST")) == (2, 1)
            # Now the journal holds 3 lines for it: a fourth copy is the only one sent.
            again = await client.kpis.upload_snapshots([same] * 4, journal=journal)
    assert (again.skipped_count, fake.count("POST")) == (3, 2)


async def test_an_orphan_intent_is_never_resent_blindly(tmp_path: Path) -> None:
    async with FakeGtmhub(seed=5) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        applied, lost = (
            item(kpi, 1.0),
            SnapshotUpload(kpi, KpiSnapshotRequest(group=date(2026, 3, 2), value=2.0)),
        )
        fake.add_snapshot(kpi, "2026-03-01", 1.0)  # the crashed run's POST had arrived
        journal = tmp_path / "j.jsonl"
        keys = [snapshot_key(u.kpi_id, u.snapshot) for u in (applied, lost)]
        write_journal(journal, [intent(0, keys[0]), intent(1, keys[1])])
        async with fake.client(rate_limit=None) as client:
            blind = await client.kpis.upload_snapshots([applied, lost], journal=journal)
            assert blind.unknown_count == 2 and fake.count("POST") == 0
            assert all(
                "(entry 1)" in str(r.error) or "(entry 0)" in str(r.error) for r in blind.unknown
            )
            assert "pass reconcile=True to read it back" in str(blind.unknown[0].error)
            settled = await client.kpis.upload_snapshots(
                [applied, lost], journal=journal, reconcile=True
            )
    assert settled.ok and (settled.reconciled_count, settled.resent_count) == (1, 1)
    assert [s["value"] for s in fake.received_snapshots(kpi)] == [1.0, 2.0]
    assert read_journal(str(journal)).orphans == {}


class Source:
    """An async iterator with ``aclose`` that counts how it was used."""

    def __init__(self, items: list[SnapshotUpload], *, fail_close: bool = False) -> None:
        self.items = iter(items)
        self.closed = 0
        self.fail_close = fail_close

    def __aiter__(self) -> AsyncIterator[SnapshotUpload]:
        return self

    async def __anext__(self) -> SnapshotUpload:
        try:
            return next(self.items)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed += 1
        if self.fail_close:
            raise RuntimeError("cannot close")


async def test_close_source_closes_a_part_read_source_once_and_only_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeGtmhub(seed=6) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        good = [item(kpi, float(v)) for v in range(3)]
        async with fake.client(rate_limit=None) as client:
            whole = Source(good)
            assert (await client.kpis.upload_snapshots(whole, concurrency=2)).ok
            assert whole.closed == 0  # read to the end: nothing to close

            part = Source([item(kpi, 1.0), item("0" * 23 + "x", 1.0), *good])  # type: ignore[list-item]  # a bad row on purpose
            result = await client.kpis.upload_snapshots(part, concurrency=1, stop_on_error=True)
            assert result.failed_count == 1 and part.closed == 1
            assert next(part.items, None) is not None  # left part-read

            broken = Source([item(kpi, 1.0), item("0" * 23 + "x", 1.0), *good], fail_close=True)  # type: ignore[list-item]  # a bad row on purpose
            with caplog.at_level(logging.WARNING, logger="gtmhub_async.bulk"):
                again = await client.kpis.upload_snapshots(
                    broken, concurrency=1, stop_on_error=True
                )
    assert again.failed_count == 1 and broken.closed == 1
    assert "closing the items' async iterator failed" in caplog.text
    assert "RuntimeError: cannot close" in caplog.text


class PlainSource:
    """An async iterator without ``aclose``: there is nothing to close."""

    def __init__(self, items: list[SnapshotUpload]) -> None:
        self.items = iter(items)

    def __aiter__(self) -> AsyncIterator[SnapshotUpload]:
        return self

    async def __anext__(self) -> SnapshotUpload:
        try:
            return next(self.items)
        except StopIteration:
            raise StopAsyncIteration from None


async def test_close_source_leaves_an_iterator_without_aclose_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeGtmhub(seed=6) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        source = PlainSource([item("bad id", 1.0), item(kpi, 2.0)])
        with caplog.at_level(logging.WARNING, logger="gtmhub_async.bulk"):
            async with fake.client(rate_limit=None) as client:
                result = await client.kpis.upload_snapshots(
                    source, concurrency=1, stop_on_error=True
                )
    assert result.failed_count == 1 and next(source.items, None) is not None
    assert caplog.text == ""


async def test_close_source_runs_an_async_generators_finally_before_returning() -> None:
    finished: list[str] = []
    async with FakeGtmhub(seed=7) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]

        async def rows() -> AsyncIterator[SnapshotUpload]:
            try:
                yield item("bad id", 1.0)
                yield item(kpi, 2.0)
            finally:
                finished.append("closed")

        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots(rows(), stop_on_error=True)
            assert finished == ["closed"]  # now, not at garbage collection
    assert result.failed_count == 1 and isinstance(result, BulkResult)


def test_fsync_option_is_checked() -> None:
    from gtmhub_async.bulk_result import check_args

    with pytest.raises(ValueError, match="fsync must be one of group, line, none, got 'disk'"):
        check_args([], 1, None, None, None, "disk", 0.0)
    with pytest.raises(TypeError, match="fsync_interval must be a number, got str"):
        check_args([], 1, None, None, None, "group", "1")
    with pytest.raises(ValueError, match="fsync_interval must be between 0 and 1 second, got 2"):
        check_args([], 1, None, None, None, "group", 2)


async def test_a_cancel_while_the_intent_waits_for_its_fsync_closes_the_entry(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.jsonl"
    async with FakeGtmhub(seed=8) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = [item(kpi, float(v)) for v in range(4)]
        async with fake.client(rate_limit=None) as client:
            result = BulkResult()
            task = asyncio.create_task(
                client.kpis.upload_snapshots(
                    items, concurrency=4, journal=journal, fsync_interval=0.2, result=result
                )
            )
            for _ in range(5000):  # until every worker has written its intent
                if journal.exists() and journal.read_bytes().count(b"\n") >= 4:
                    break
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert result.not_attempted_count == 4 and fake.count("POST") == 0
            entries = lines(journal)
            assert sorted(e["id"] for e in entries if e.get("outcome") == "failed") == [0, 1, 2, 3]
            assert read_journal(str(journal)).orphans == {}
            again = await client.kpis.upload_snapshots(items, journal=journal)
    assert again.ok and again.skipped_count == 0 and fake.count("POST") == 4


async def test_the_journal_is_read_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from gtmhub_async import bulk, journal

    threads: list[str] = []

    def spy(path: str) -> journal.JournalState:
        threads.append(threading.current_thread().name)
        return journal.read_journal(path)

    monkeypatch.setattr(bulk, "read_journal", spy)
    async with FakeGtmhub(seed=9) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        async with fake.client(rate_limit=None) as client:
            result = await client.kpis.upload_snapshots([item(kpi, 1.0)], journal=tmp_path / "j")
    assert result.ok and len(threads) == 1
    assert threads[0] != threading.main_thread().name


async def test_an_intent_that_cannot_be_made_durable_is_not_sent_and_stops_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    async with FakeGtmhub(seed=10) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        items = [item(kpi, float(v)) for v in range(5)]
        result = BulkResult()
        async with fake.client(rate_limit=None) as client:
            with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device"):
                await client.kpis.upload_snapshots(
                    items, concurrency=1, journal=tmp_path / "j.jsonl", result=result
                )
    assert fake.count("POST") == 0
    assert result.not_attempted_count == 1 and result.consumed == 1


def test_a_line_whose_id_is_a_bool_is_damaged(tmp_path: Path) -> None:
    k1 = "1" * 32
    path = tmp_path / "j.jsonl"
    write_journal(
        path,
        [intent(0, k1), orjson.dumps({"id": True, "outcome": "succeeded", "key": k1})],
    )
    state = read_journal(str(path))
    assert state.damaged == [2]
    assert state.orphans == {int(k1, 16): [0]}


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
async def test_an_outcome_that_cannot_be_journaled_keeps_the_item_and_stops_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    from gtmhub_async.journal import Journal

    write = Journal.outcome

    def full_disk(self: Journal, ident: int | None, kind: str, *args: Any, **kw: Any) -> None:
        if kind == outcome:
            raise OSError(28, "No space left on device")
        write(self, ident, kind, *args, **kw)

    monkeypatch.setattr(Journal, "outcome", full_disk)
    async with FakeGtmhub(seed=10) as fake:
        (kpi,) = [k["id"] for k in fake.add_kpis(1)]
        # A KPI the fake does not have: a 404, so the item fails.
        first = item(kpi if outcome == "succeeded" else "5be26318e5274a0007f17f61", 1.0)
        result = BulkResult()
        async with fake.client(rate_limit=None) as client:
            # The disk error itself reaches the caller, not an ExceptionGroup around it.
            with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device"):
                await client.kpis.upload_snapshots(
                    [first, item(kpi, 2.0)], concurrency=1, journal=tmp_path / "j", result=result
                )
    # The item whose line could not be written is still in the result, and nothing after it ran.
    assert (result.succeeded_count, result.failed_count) == (
        (1, 0) if outcome == "succeeded" else (0, 1)
    )
    assert result.consumed == 1
