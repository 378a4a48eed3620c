"""Rules of gtmhub_async.journal that mutation testing found unchecked (tests/MUTATION.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import orjson
import pytest
from test_journal import done, intent, write_journal

from gtmhub_async import KpiSnapshotRequest
from gtmhub_async.errors import UnknownOutcomeError
from gtmhub_async.journal import Journal, JournalState, read_journal
from gtmhub_async.testing.simulator import run_virtual

K1, K2 = "1" * 32, "2" * 32
N1, N2 = int(K1, 16), int(K2, 16)
SNAP = KpiSnapshotRequest(group=date(2026, 3, 1), value=2.5, time_zone="Europe/Sofia")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gtmhub_async.journal"]


def test_an_empty_file_and_a_file_without_ids_start_ids_at_zero(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    state = read_journal(str(empty))
    assert (state.lines, state.complete, state.next_id, state.damaged) == (0, True, 0, [])
    old = tmp_path / "old.jsonl"
    write_journal(old, [orjson.dumps({"outcome": "succeeded", "key": K1})])
    state = read_journal(str(old))
    assert (state.lines, state.complete, state.next_id) == (1, True, 0)
    assert state.succeeded == {N1: 1}


async def test_a_journal_on_an_empty_file_writes_no_blank_line_first(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"")
    journal = Journal(str(path), read_journal(str(path)), fsync="none")
    journal.outcome(None, "failed", K1, 0)
    await journal.aclose()
    assert path.read_bytes() == b'{"outcome":"failed","key":"' + K1.encode() + b'","index":0}\n'


def test_the_reader_pauses_once_every_1024_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path, [done(i, K1) for i in range(2048)])
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    state = read_journal(str(path))
    assert pauses == [0, 0]
    assert state.succeeded == {N1: 2048} and state.next_id == 2048


def test_an_intent_without_id_or_with_a_bad_key_is_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(
        path,
        [
            orjson.dumps({"intent": K1}),
            orjson.dumps({"id": 1, "intent": "zz"}),
            intent(2, K2),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.journal"):
        state = read_journal(str(path))
    assert state.damaged == [1, 2]
    assert state.orphans == {N2: [2]}
    assert warnings(caplog) == [f"journal {path}: skipped 2 damaged line(s): 1, 2"]


def test_only_an_outcome_that_settles_an_unknown_uses_it_up(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(
        path,
        [
            orjson.dumps({"outcome": "unknown", "key": K1}),
            orjson.dumps({"outcome": "unknown", "key": K1}),
            orjson.dumps({"outcome": "unknown", "key": K2}),
            # a plain success of another item of K1: the unknowns stay
            orjson.dumps({"outcome": "succeeded", "key": K1}),
            # a reconciled unknown, without an intent: it uses one up
            orjson.dumps({"outcome": "succeeded", "key": K2, "was": "unknown"}),
        ],
    )
    state = read_journal(str(path))
    assert state.unknown == {N1: 2}
    assert state.succeeded == {N1: 1, N2: 1}


@pytest.mark.parametrize(
    ("count", "tail"),
    [(10, ""), (11, " and 1 more"), (12, " and 2 more")],
)
def test_the_warning_names_ten_damaged_lines_and_counts_the_rest(
    count: int, tail: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path, [b"garbage"] * count)
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.journal"):
        state = read_journal(str(path))
    assert state.damaged == list(range(1, count + 1))
    assert warnings(caplog) == [
        f"journal {path}: skipped {count} damaged line(s): 1, 2, 3, 4, 5, 6, 7, 8, 9, 10{tail}"
    ]


async def test_lines_and_fsyncs_of_each_mode(tmp_path: Path) -> None:
    counts = {}
    for mode in ("group", "line", "none", None):
        path = tmp_path / f"{mode}.jsonl"
        state = JournalState()
        journal = (
            Journal(str(path), state) if mode is None else Journal(str(path), state, fsync=mode)  # type: ignore[arg-type]  # loop var
        )
        await journal.durable()  # nothing written yet: nothing to sync
        assert journal.fsyncs == (1 if mode == "line" else 0)
        a = journal.intent(K1, "kpi-a", SNAP)
        await journal.durable()
        b = journal.intent(K2, "kpi-b", KpiSnapshotRequest(group=date(2026, 3, 2), value=1))
        await journal.durable()
        journal.outcome(a, "succeeded", K1, 0)
        journal.outcome(b, "failed", K2, 1, ValueError("no  such\nKPI"))
        journal.outcome(None, "unknown", K2, 2, was="unknown", reconciled=True)
        await journal.aclose()
        counts[mode] = journal.fsyncs
        await journal.aclose()  # a second close does nothing
        assert journal.fsyncs == counts[mode]
        assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [
            {
                "id": 0,
                "intent": K1,
                "kpiId": "kpi-a",
                "group": "2026-03-01",
                "value": 2.5,
                "timeZone": "Europe/Sofia",
            },
            {"id": 1, "intent": K2, "kpiId": "kpi-b", "group": "2026-03-02", "value": 1},
            {"id": 0, "outcome": "succeeded", "key": K1, "index": 0},
            {
                "id": 1,
                "outcome": "failed",
                "key": K2,
                "index": 1,
                "error": "ValueError: no such KPI",
            },
            {
                "outcome": "unknown",
                "key": K2,
                "index": 2,
                "was": "unknown",
                "reconciled": True,
            },
        ]
    # line: one per durable (3) and one at close; group: one per durable that had lines
    # and one at close; none: never.
    assert counts == {"group": 3, "line": 4, "none": 0, None: 3}


async def test_a_cut_last_line_is_ended_before_the_first_new_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(intent(0, K1) + b"\n" + b'{"id": 1, "inte')
    state = read_journal(str(path))
    assert (state.complete, state.next_id) == (False, 1)
    journal = Journal(str(path), state, fsync="none")
    assert journal.intent(K2, "kpi", SNAP) == 1
    await journal.aclose()
    assert path.read_bytes().splitlines()[1:] == [
        b'{"id": 1, "inte',
        b'{"id":1,"intent":"' + K2.encode() + b'","kpiId":"kpi","group":"2026-03-01",'
        b'"value":2.5,"timeZone":"Europe/Sofia"}',
    ]


async def test_a_closed_journal_refuses_lines_and_line_fsyncs(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path), JournalState(), fsync="line")
    await journal.aclose()
    with pytest.raises(ValueError, match=f"^journal {path} is closed$"):
        journal.outcome(None, "failed", K1, 0)
    with pytest.raises(ValueError, match=f"^journal {path} is closed$"):
        await journal.durable()
    group = Journal(str(tmp_path / "g.jsonl"), JournalState())
    group.intent(K1, "kpi", SNAP)
    await group.durable()
    group.outcome(0, "succeeded", K1, 0)
    await group.aclose()
    await group.durable()  # everything was synced at the close: nothing to do
    assert group.fsyncs == 2


async def test_a_failed_final_fsync_leaves_later_group_syncs_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path), JournalState())
    journal.intent(K1, "kpi", SNAP)

    def fail(fd: int) -> None:
        raise OSError(5, "disk gone")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk gone"):
        await journal.aclose()
    with pytest.raises(ValueError, match=f"^journal {path} is closed$"):
        await journal.durable()


async def test_a_failed_group_fsync_is_logged_at_close_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path), JournalState())
    journal.intent(K1, "kpi", SNAP)
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "disk hiccup")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    waiter = asyncio.create_task(journal.durable())
    await asyncio.sleep(0)  # the waiter starts the group's fsync
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.journal"):
        await journal.aclose()
    with pytest.raises(OSError, match="disk hiccup"):
        await waiter
    (record,) = [r for r in caplog.records if r.name == "gtmhub_async.journal"]
    assert record.getMessage() == f"fsync of journal {path} failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    assert journal.fsyncs == 1 and len(calls) == 2  # the close made the line durable


async def test_a_failed_group_fsync_is_not_logged_again_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(str(tmp_path / "j.jsonl"), JournalState())
    journal.intent(K1, "kpi", SNAP)

    def fail(fd: int) -> None:
        raise OSError(5, "disk hiccup")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk hiccup"):
        await journal.durable()
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="gtmhub_async.journal"):
        await journal.aclose()
    assert warnings(caplog) == []
    assert journal.fsyncs == 1


def test_the_default_group_gathers_for_no_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def inline(func: Callable[[int], None], fd: int) -> None:
        func(fd)  # the virtual clock has no worker threads

    monkeypatch.setattr(asyncio, "to_thread", inline)

    async def main() -> float:
        journal = Journal(str(tmp_path / "j.jsonl"), JournalState())
        journal.intent(K1, "kpi", SNAP)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await journal.durable()
        took = loop.time() - start
        await journal.aclose()
        return took

    assert run_virtual(main) < 0.5  # virtual seconds: a 1 s default would show


async def test_recall_reports_unknowns_and_orphans_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    state = JournalState(unknown={N1: 1}, orphans={N2: [3, 5]}, succeeded={N1: 1})
    journal = Journal(str(path), state, fsync="none")
    uploaded = journal.recall(K1, retry_unknown=False)
    assert uploaded is not None and uploaded.error is None and uploaded.orphan is None
    assert journal.recall(K1, retry_unknown=True) is None
    recalled = journal.recall(K1, retry_unknown=False)
    assert recalled is not None and recalled.orphan is None
    err = recalled.error
    assert isinstance(err, UnknownOutcomeError) and err.method == "POST"
    assert str(err) == (
        f"journal {path} records an earlier upload of this snapshot whose outcome is "
        "unknown: it may have been applied, so it was not sent again; pass "
        "reconcile=True to read it back, or retry_unknown=True to send it"
    )
    seen = []
    for _ in range(2):
        recalled = journal.recall(K2, retry_unknown=False)
        assert recalled is not None and recalled.error is not None
        assert recalled.error.method == "POST"
        seen.append(recalled.orphan)
        assert str(recalled.error) == (
            f"journal {path} records that an earlier run was about to send this "
            f"snapshot (entry {recalled.orphan}) and no outcome: it stopped (crashed?) "
            "meanwhile, so the snapshot may have been applied and was not sent again; "
            "pass reconcile=True to read it back"
        )
    assert seen == [5, 3]
    assert journal.recall(K2, retry_unknown=False) is None
    assert journal.recall(K1, retry_unknown=False) is None
    assert state.orphans == {} and state.unknown == {} and state.succeeded == {}
    await journal.aclose()
