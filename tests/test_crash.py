"""SIGKILL a real ``snapshots upload --journal J --reconcile``; the re-run stores each row once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_cli import FakeThread  # tests/ is on sys.path, as for redis_server

from gtmhub_async.testing import Faults

KPIS = 3
DAYS = 40
ROWS = KPIS * DAYS
FAULTS = Faults(reset_after_write_rate=0.05, error_rate=0.03, statuses=(500,), retry_after=None)


def command(csv: Path, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gtmhub_async.cli",
        "snapshots",
        "upload",
        str(csv),
        "--journal",
        str(journal),
        "--reconcile",
        "--rate",
        "1000",
        "--concurrency",
        "8",
        "--no-progress",
    ]


def journal_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sigkill_then_rerun_stores_every_row_exactly_once(seed: int, tmp_path: Path) -> None:
    kill_at = random.Random(seed).randint(10, ROWS)  # journal lines written before the kill
    with FakeThread(seed=seed, latency=0.01) as server:
        fake = server.fake
        kpis = [k["id"] for k in fake.add_kpis(KPIS, aggregation="sum")]
        rows = [
            (kpi, f"2026-01-{1 + d % 28:02d}" if d < 28 else f"2026-02-{d - 27:02d}", d * 3 + k)
            for d in range(DAYS)
            for k, kpi in enumerate(kpis)
        ]
        csv = tmp_path / "rows.csv"
        csv.write_text(
            "kpi_id,date,value\n" + "".join(f"{k},{day},{v}\n" for k, day, v in rows),
            encoding="utf-8",
        )
        journal = tmp_path / "journal.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GTMHUB_")}
        env.update({k: v for k, v in server.env().items() if v is not None})
        fake.set_faults(FAULTS)

        proc = subprocess.Popen(
            command(csv, journal), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 30
            while journal_lines(journal) < kill_at and proc.poll() is None:
                assert time.monotonic() < deadline, "the upload never reached the kill point"
                time.sleep(0.002)
            killed = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert killed, f"the upload ended before {kill_at} journal lines"
        assert proc.returncode == -signal.SIGKILL
        stored_before = sum(len(fake.received_snapshots(k)) for k in kpis)
        assert stored_before < ROWS  # killed partway

        rerun = subprocess.run(
            command(csv, journal), env=env, capture_output=True, text=True, timeout=60
        )
        assert rerun.returncode == 0, (rerun.stdout, rerun.stderr)
        summary = rerun.stdout.splitlines()[-1]
        assert f"{ROWS} of {ROWS} rows uploaded" in summary and "0 unknown" in summary, summary
        assert "reconciled as applied" in summary and "0 conflicting" in summary
        stored = Counter(
            (k, s["group"], s["value"]) for k in kpis for s in fake.received_snapshots(k)
        )
        want = Counter((k, day, float(v)) for k, day, v in rows)
        assert stored - want == Counter()  # 0 duplicates
        assert want - stored == Counter()  # 0 missing
        faults = Counter(r.fault for r in fake.requests if r.fault)
    assert faults["reset"] + faults["500"] > 0  # the faults did happen
