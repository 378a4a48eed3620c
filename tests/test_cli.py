"""The gtmhub-async command-line program, end to end against FakeGtmhub.

The commands call asyncio.run, so the tests are plain functions and the fake runs
in its own event loop on a thread (``FakeThread``).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from gtmhub_async.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    cli,
    format_table,
    read_snapshot_rows,
)
from gtmhub_async.testing import FakeGtmhub

SNAPSHOT_ROUTE = "/v1/kpis/{kpiId}/snapshots"
MAIN = "from gtmhub_async.cli import main; main()"


class FakeThread:
    """Run a FakeGtmhub in its own event loop on a thread, for commands that call asyncio.run."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.loop: asyncio.AbstractEventLoop | None = None
        self._fake: FakeGtmhub | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="FakeThread", daemon=True)

    @property
    def fake(self) -> FakeGtmhub:
        assert self._fake is not None
        return self._fake

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            self._fake = FakeGtmhub(**self.options)
            loop.run_until_complete(self._fake.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._fake.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def __enter__(self) -> FakeThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        """Return the environment that points the CLI at this fake."""
        env: dict[str, str | None] = {
            "GTMHUB_TOKEN": self.fake.token,
            "GTMHUB_ACCOUNT_ID": self.fake.account_id,
            "GTMHUB_BASE_URL": self.fake.base_url,
            "GTMHUB_REDIS_URL": None,
        }
        env.update(overrides)
        return env


@pytest.fixture
def server() -> Iterator[FakeThread]:
    with FakeThread(seed=3) as thread:
        yield thread


def run(args: list[str], env: Mapping[str, str | None], input: str | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, input=input, catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def write_csv(path: Path, rows: list[str], header: str = "kpi_id,date,value") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def applied_per_snapshot(fake: FakeGtmhub) -> Counter[tuple[str, str, float]]:
    """Count how often the fake applied each (KPI, day, value)."""
    return Counter(
        (r.path.split("/")[3], r.json["group"], r.json["value"])
        for r in fake.requests
        if r.applied and r.route == SNAPSHOT_ROUTE
    )


# --- kpis ------------------------------------------------------------------------------


def test_kpis_create_get_list_delete(server: FakeThread) -> None:
    fake = server.fake
    env = server.env()
    created = run(
        [
            "kpis",
            "create",
            "--name",
            "Revenue",
            "--aggregation",
            "sum",
            "--target-operator",
            "should_decrease",
            "--description",
            "Monthly revenue",
            "--prefix",
            "$",
            "--fraction-size",
            "2",
            "--owner",
            fake.user_id,
        ],
        env,
    )
    assert created.exit_code == EXIT_OK, created.output
    kpi = orjson.loads(created.stdout)
    assert kpi["name"] == "Revenue"
    assert kpi["aggregation"] == "sum"
    assert kpi["targetOperator"] == "should_decrease"
    assert kpi["formatting"] == {"prefix": "$", "suffix": "", "fractionSize": 2}
    assert fake.kpis[kpi["id"]]["ownerIds"] == [fake.user_id]
    assert fake.count("POST", "/v1/kpis") == 1

    got = run(["kpis", "get", kpi["id"]], env)
    assert got.exit_code == EXIT_OK, got.output
    assert orjson.loads(got.stdout)["description"] == "Monthly revenue"

    fake.add_kpis(3)
    table = run(["kpis", "list"], env)
    assert table.exit_code == EXIT_OK, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "AGGREGATION"]
    assert len(lines) == 1 + 4
    assert any("Revenue" in line for line in lines)
    assert "4 KPIs" in table.stderr

    deleted = run(["kpis", "delete", kpi["id"]], env)
    assert deleted.exit_code == EXIT_OK, deleted.output
    assert deleted.stdout.strip() == f"deleted KPI {kpi['id']}"
    assert kpi["id"] not in fake.kpis

    gone = run(["kpis", "get", kpi["id"]], env)
    assert gone.exit_code == EXIT_FAILED
    assert len(error_lines(gone)) == 1
    assert "not found" in gone.stderr


def test_kpis_list_filter_sort_fields_max_jsonl(server: FakeThread) -> None:
    fake = server.fake
    fake.add_kpis(25, name=lambda i: f"kpi {i:02d}", aggregation="avg")
    fake.add_kpi(name="other")
    result = run(
        [
            "kpis",
            "list",
            "--filter",
            '{"name": {"$regex": "^kpi "}}',
            "--sort",
            "-name",
            "--fields",
            "name,aggregation",
            "--max",
            "12",
            "--page-size",
            "5",
            "--format",
            "jsonl",
        ],
        server.env(),
    )
    assert result.exit_code == EXIT_OK, result.output
    items = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [i["name"] for i in items] == [f"kpi {i:02d}" for i in range(24, 12, -1)]
    assert all(set(i) == {"id", "name", "aggregation"} for i in items)
    assert fake.count("GET", "/v2/kpis") == 3  # 12 items in pages of 5


def test_kpis_usage_errors_are_one_line(server: FakeThread) -> None:
    env = server.env()
    for args, needle in [
        (["kpis", "get", "nope"], "24 hex digits"),
        (["kpis", "list", "--filter", "{bad"], "--filter is not valid JSON"),
        (["kpis", "list", "--format", "xml"], "'xml' is not one of"),
        (["kpis", "lst"], "No such command"),
        (["kpis", "create"], "Missing option '--name'"),
    ]:
        result = run(args, env)
        assert result.exit_code == EXIT_USAGE, (args, result.output)
        lines = error_lines(result)
        assert len(lines) == 1, (args, lines)
        assert needle in lines[0]
        assert lines[0].startswith("gtmhub-async: error: ")
    assert server.fake.requests == []


# --- configuration errors ------------------------------------------------------------------


def test_missing_token_is_one_line_and_exit_2(server: FakeThread) -> None:
    result = run(["kpis", "list"], server.env(GTMHUB_TOKEN=None))
    assert result.exit_code == EXIT_USAGE
    assert error_lines(result) == [
        "gtmhub-async: error: no API token: set GTMHUB_TOKEN or pass --token"
    ]
    assert result.stdout == ""
    missing_account = run(["kpis", "list"], server.env(GTMHUB_ACCOUNT_ID=None))
    assert missing_account.exit_code == EXIT_USAGE
    assert "set GTMHUB_ACCOUNT_ID or pass --account-id" in missing_account.stderr
    assert server.fake.requests == []


def test_flags_override_the_environment(server: FakeThread) -> None:
    fake = server.fake
    fake.add_kpis(2)
    env = {"GTMHUB_TOKEN": None, "GTMHUB_ACCOUNT_ID": None, "GTMHUB_BASE_URL": None}
    result = run(
        [
            "kpis",
            "list",
            "--token",
            fake.token,
            "--account-id",
            fake.account_id,
            "--base-url",
            fake.base_url,
        ],
        env,
    )
    assert result.exit_code == EXIT_OK, result.output
    both = run(["kpis", "list", "--base-url", fake.base_url, "--region", "us"], server.env())
    assert both.exit_code == EXIT_USAGE
    assert "not both" in both.stderr


def test_401_is_one_line_without_the_token(server: FakeThread) -> None:
    secret = "wrong-token-0123456789"
    result = run(["kpis", "list"], server.env(GTMHUB_TOKEN=secret))
    assert result.exit_code == EXIT_USAGE
    lines = error_lines(result)
    assert len(lines) == 1
    assert "HTTP 401" in lines[0] and "check GTMHUB_TOKEN or --token" in lines[0]
    assert secret not in result.output
    assert "Traceback" not in result.output


def test_401_stops_an_upload_at_once(server: FakeThread, tmp_path: Path) -> None:
    kpi = server.fake.add_kpi()
    rows = [f"{kpi['id']},2025-01-{d:02d},{d}" for d in range(1, 29)]
    path = write_csv(tmp_path / "s.csv", rows)
    secret = "wrong-token-0123456789"
    result = run(
        ["snapshots", "upload", str(path), "--concurrency", "1", "--rate", "1000"],
        server.env(GTMHUB_TOKEN=secret),
    )
    assert result.exit_code == EXIT_USAGE
    assert len(error_lines(result)) == 1
    assert "HTTP 401" in result.stderr
    assert secret not in result.output
    assert server.fake.count("POST") == 1  # stopped after the first 401, not 28 of them


# --- snapshots list ----------------------------------------------------------------------


def test_snapshots_list_formats_and_dates(server: FakeThread) -> None:
    fake = server.fake
    a, b = fake.add_kpis(2, aggregation="sum")
    fake.add_snapshot(a["id"], "2025-03-01", 1.5)
    fake.add_snapshot(a["id"], "2025-03-01", 2.0)
    fake.add_snapshot(a["id"], "2025-03-05", 7)
    fake.add_snapshot(b["id"], "2025-03-02", 4)
    env = server.env()

    table = run(["snapshots", "list", "--ids", a["id"]], env)
    assert table.exit_code == EXIT_OK, table.output
    assert table.stdout.splitlines()[1:] == [
        f"{a['id']}  2025-03-01  3.5",
        f"{a['id']}  2025-03-05  7",
    ]

    jsonl = run(
        [
            *("snapshots", "list", "--ids", f"{a['id']},{b['id']}", "--from", "2025-03-02"),
            *("--to", "2025-03-05", "--format", "jsonl", "--time-zone", "Europe/Sofia"),
        ],
        env,
    )
    assert jsonl.exit_code == EXIT_OK, jsonl.output
    assert [orjson.loads(line) for line in jsonl.stdout.splitlines()] == [
        {"kpi_id": a["id"], "date": "2025-03-05", "value": 7.0},
        {"kpi_id": b["id"], "date": "2025-03-02", "value": 4.0},
    ]
    assert fake.requests[-1].query["timeZone"] == "Europe/Sofia"

    as_csv = run(["snapshots", "list", "--ids", b["id"], "--format", "csv"], env)
    assert as_csv.stdout == f"kpi_id,date,value\n{b['id']},2025-03-02,4\n"

    backwards = run(["snapshots", "list", "--from", "2025-03-05", "--to", "2025-03-01"], env)
    assert backwards.exit_code == EXIT_USAGE
    assert "is after" in backwards.stderr


# --- snapshots upload ------------------------------------------------------------------------


def test_upload_csv_with_a_bad_row(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kpi = fake.add_kpi(aggregation="sum")
    kid = kpi["id"]
    path = write_csv(
        tmp_path / "snapshots.csv",
        [
            f"{kid},2025-01-01,10",
            f"{kid},2025-01-02,not-a-number",
            f"{kid},2025-01-03,30.5",
            "",
            f"{kid},2025-02-30,1",
            f"{kid},2025-01-04,40,too many",
            f"{kid},2025-01-05,50",
        ],
    )
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_FAILED, result.output
    lines = result.stdout.splitlines()
    assert "row 2 (line 3): bad row: value must be a number, got 'not-a-number'" in lines
    assert "row 4 (line 6): bad row: date '2025-02-30' is not a real day" in lines
    assert "row 5 (line 7): bad row: has 4 fields, the header has 3" in lines
    assert "3 of 6 rows uploaded" in lines[-1] and "3 bad" in lines[-1]
    # The good rows were sent exactly once, and nothing else was.
    assert fake.count("POST", SNAPSHOT_ROUTE) == 3
    assert applied_per_snapshot(fake) == Counter(
        {(kid, "2025-01-01", 10.0): 1, (kid, "2025-01-03", 30.5): 1, (kid, "2025-01-05", 50.0): 1}
    )


def test_upload_jsonl_with_time_zone_and_description(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi()["id"]
    path = tmp_path / "s.jsonl"
    path.write_text(
        "\n".join(
            [
                orjson.dumps(
                    {
                        "kpi_id": kid,
                        "date": "2025-05-01",
                        "value": 3,
                        "time_zone": "Europe/Sofia",
                        "description": "first",
                    }
                ).decode(),
                orjson.dumps({"kpiId": kid, "date": "2025-05-02", "value": 4.25}).decode(),
            ]
        )
        + "\n"
    )
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_OK, result.output
    assert "2 of 2 rows uploaded" in result.stdout
    stored = fake.snapshots[kid]
    assert [(s["group"], s["value"], s["timeZone"], s["description"]) for s in stored] == [
        ("2025-05-01", 3.0, "Europe/Sofia", "first"),
        ("2025-05-02", 4.25, None, None),
    ]


def test_upload_reports_failed_rows_by_number(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi()["id"]
    missing = "0123456789abcdef01234567"
    path = write_csv(
        tmp_path / "s.csv",
        [f"{kid},2025-01-01,1", f"{missing},2025-01-02,2", f"{kid},2025-01-03,3"],
    )
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_FAILED
    assert any(
        line.startswith("row 2 (line 3): failed: not found (HTTP 404") and missing in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert len(fake.snapshots[kid]) == 2


def test_upload_reports_unknown_rows(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi()["id"]
    path = write_csv(tmp_path / "s.csv", [f"{kid},2025-01-01,1", f"{kid},2025-01-02,2"])
    fake.script(["reset", None])
    result = run(
        ["snapshots", "upload", str(path), "--concurrency", "1", "--rate", "1000"], server.env()
    )
    assert result.exit_code == EXIT_FAILED
    line = next(x for x in result.stdout.splitlines() if x.startswith("row 1 (line 2)"))
    assert "unknown:" in line and "may have been applied" in line
    assert "1 unknown" in result.stdout.splitlines()[-1]
    assert fake.count("POST", SNAPSHOT_ROUTE) == 2  # the unknown one was not resent


def test_upload_reconcile_reads_unknown_rows_back(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi(aggregation="sum")["id"]
    rows = [f"{kid},2025-01-0{d},{d}" for d in range(1, 4)]
    path = write_csv(tmp_path / "s.csv", rows)
    journal = tmp_path / "j.jsonl"
    fake.script(["reset", 500, None])  # applied then dropped; refused before applying
    args = ["snapshots", "upload", str(path), "--concurrency", "1", "--rate", "1000"]
    more = ["--reconcile", "--journal", str(journal), "--fsync", "line"]
    result = run([*args, *more], server.env())
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines()[-1].endswith(
        "3 of 3 rows uploaded, 0 failed, 0 unknown, 0 bad, 0 not sent; read back: "
        "1 reconciled as applied, 1 resent, 0 conflicting"
    )
    assert sorted(s["value"] for s in fake.received_snapshots(kid)) == [1.0, 2.0, 3.0]
    bad = run([*args, "--fsync", "disk"], server.env())
    assert bad.exit_code == EXIT_USAGE
    assert "Invalid value for '--fsync': 'disk' is not one of 'group', 'line', 'none'" in (
        bad.output
    )


def test_upload_reconcile_reports_a_conflicting_row(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi(aggregation="sum")["id"]
    fake.add_snapshot(kid, "2025-01-01", 9.0)  # someone else wrote the day
    path = write_csv(tmp_path / "s.csv", [f"{kid},2025-01-01,1"])
    fake.script(["reset"])
    args = ["snapshots", "upload", str(path), "--rate", "1000", "--reconcile"]
    result = run(args, server.env())
    assert result.exit_code == EXIT_FAILED
    out = result.stdout.splitlines()
    assert out[0] == (
        f"row 1 (line 2): unknown: KPI {kid} on 2025-01-01 holds 10, not only the intended 1: "
        "cannot tell whether this snapshot was applied, so it was not sent again"
    )
    assert out[-1].endswith("0 reconciled as applied, 0 resent, 1 conflicting")
    assert len(fake.received_snapshots(kid)) == 2  # not resent


def test_dry_run_sends_nothing(server: FakeThread, tmp_path: Path) -> None:
    kid = server.fake.add_kpi()["id"]
    path = write_csv(
        tmp_path / "s.csv", [f"{kid},2025-01-01,1", f"{kid},01/02/2025,2", f"{kid},2025-01-03,nan"]
    )
    # No token is needed to check a file.
    result = run(["snapshots", "upload", str(path), "--dry-run"], server.env(GTMHUB_TOKEN=None))
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines() == [
        "row 2 (line 3): bad row: date must be YYYY-MM-DD, got '01/02/2025'",
        "row 3 (line 4): bad row: value must be a number, got 'nan'",
        "dry run: 1 row OK, 2 bad; nothing was sent",
    ]
    good = write_csv(tmp_path / "good.csv", [f"{kid},2025-01-01,1"])
    clean = run(["snapshots", "upload", str(good), "--dry-run"], server.env())
    assert clean.exit_code == EXIT_OK
    assert server.fake.requests == []


def test_upload_file_errors_are_one_line(server: FakeThread, tmp_path: Path) -> None:
    env = server.env()
    cases = [
        (tmp_path / "missing.csv", None, "file not found"),
        (tmp_path / "empty.csv", "", "is empty"),
        (tmp_path / "h.csv", "kpi,date,value\n", "unknown column 'kpi'"),
        (tmp_path / "h2.csv", "kpi_id,date\n", "lacks the column value"),
        (tmp_path / "bin.csv", b"\xff\xfe\x00bad", "is not UTF-8"),
    ]
    for path, content, needle in cases:
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        result = run(["snapshots", "upload", str(path)], env)
        assert result.exit_code == EXIT_USAGE, (path, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and needle in lines[0], (needle, lines)
    assert server.fake.requests == []


def test_journal_restart_sends_nothing_twice(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi(aggregation="sum")["id"]
    rows = [f"{kid},2025-01-{d:02d},{d}" for d in range(1, 21)]
    path = write_csv(tmp_path / "s.csv", rows)
    journal = tmp_path / "journal.jsonl"
    args = ["snapshots", "upload", str(path), "--journal", str(journal), "--rate", "1000"]
    # The 6th request is refused (400, nothing applied): --stop-on-error ends the run there.
    fake.script([None] * 5 + [400])
    first = run([*args, "--concurrency", "1", "--stop-on-error"], server.env())
    assert first.exit_code == EXIT_FAILED
    assert "row 6 (line 7): failed:" in first.stdout
    assert "5 of 20 rows uploaded" in first.stdout
    assert "14 not sent" in first.stdout
    assert "re-run the same command" in first.stderr

    second = run(args, server.env())
    assert second.exit_code == EXIT_OK, second.output
    assert "20 of 20 rows uploaded (5 already in the journal)" in second.stdout
    applied = applied_per_snapshot(fake)
    assert applied == Counter({(kid, f"2025-01-{d:02d}", float(d)): 1 for d in range(1, 21)})
    # 20 rows, plus the one refused request sent again.
    assert fake.count("POST", SNAPSHOT_ROUTE) == 21

    third = run(args, server.env())
    assert third.exit_code == EXIT_OK
    assert fake.count("POST", SNAPSHOT_ROUTE) == 21


def test_ctrl_c_keeps_the_partial_result_and_a_rerun_continues(
    tmp_path: Path,
) -> None:
    with FakeThread(seed=5, latency=0.02) as server:
        fake = server.fake
        kid = fake.add_kpi(aggregation="sum")["id"]
        rows = [f"{kid},2025-01-01,{n}" for n in range(1, 101)]
        path = write_csv(tmp_path / "s.csv", rows)
        journal = tmp_path / "journal.jsonl"
        args = ["snapshots", "upload", str(path), "--journal", str(journal)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GTMHUB_")}
        env.update({k: v for k, v in server.env().items() if v is not None})
        proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, *args, "--rate", "20", "--concurrency", "4"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while fake.count("POST", SNAPSHOT_ROUTE) < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == EXIT_INTERRUPTED, (out, err)
        assert "Traceback" not in err
        assert "interrupted: finishing the requests in flight" in err
        summary = out.splitlines()[-1]
        assert summary.startswith("interrupted in"), out
        sent_before = fake.count("POST", SNAPSHOT_ROUTE)
        assert 10 <= sent_before < 100

        rerun = run([*args, "--rate", "1000"], server.env())
        assert rerun.exit_code == EXIT_OK, rerun.output
        assert f"({sent_before} already in the journal)" in rerun.stdout
        values = Counter(
            v for (_, _, v), n in applied_per_snapshot(fake).items() for _ in range(n)
        )
        assert values == Counter(float(n) for n in range(1, 101))
        assert fake.count("POST", SNAPSHOT_ROUTE) == 100


def test_upload_through_a_redis_shared_limit(
    server: FakeThread, tmp_path: Path, redis_server: Any
) -> None:
    kid = server.fake.add_kpi()["id"]
    path = write_csv(tmp_path / "s.csv", [f"{kid},2025-01-{d:02d},{d}" for d in range(1, 11)])
    result = run(
        ["snapshots", "upload", str(path), "--rate", "200", "--redis-url", redis_server.url],
        server.env(),
    )
    assert result.exit_code == EXIT_OK, result.output
    assert len(server.fake.snapshots[kid]) == 10
    bad = run(["snapshots", "upload", str(path), "--redis-url", "http://x"], server.env())
    assert bad.exit_code == EXIT_USAGE
    assert "bad --redis-url" in bad.stderr


# --- fake-server and demo --------------------------------------------------------------------


def test_fake_server_runs_until_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTMHUB_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "fake-server", "--kpis", "3", "--rate-limit", "50"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("FakeGtmhub serving on http://127.0.0.1:")
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in lines[1:])
        assert set(exports) == {"GTMHUB_BASE_URL", "GTMHUB_TOKEN", "GTMHUB_ACCOUNT_ID"}
        result = run(["kpis", "list", "--format", "jsonl"], {**exports, "GTMHUB_REDIS_URL": None})
        assert result.exit_code == EXIT_OK, result.output
        assert len(result.stdout.splitlines()) == 3
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_OK
    assert "Traceback" not in err


def test_demo_end_to_end() -> None:
    result = run(["demo", "--no-progress"], {"GTMHUB_TOKEN": None})
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert "uploading 10,950 snapshots (30 KPIs x 365 days)" in out
    assert "listed 30 KPIs back" in out and "all there, no duplicates" in out
    assert "read back 10,950 daily values of 30 KPIs: all match" in out
    assert "duplicates stored (checked on the fake's store): 0" in out
    assert out.splitlines()[-1].startswith("result: OK, nothing lost")


# --- units: file reading, tables, progress -------------------------------------------------------


def test_read_csv_variants(tmp_path: Path) -> None:
    kid = "5be26318e5274a0007f17f61"
    path = tmp_path / "s.csv"
    path.write_text(
        "\ufeffKPI_ID , Date,Value,Time Zone,description\r\n"
        f'{kid},2025-01-01, 1.5 ,,"a, quoted\r\ndescription"\r\n'
        "\r\n"
        f"{kid},2025-01-02,-2e3,Europe/Sofia,\r\n"
        f"{kid},2025-01-03,1_000,,\r\n"
        f"{kid},2025-01-04,3,Mars/Olympus,\r\n"
        f",2025-01-05,3,,\r\n",
        encoding="utf-8",
        newline="",
    )
    good, bad = read_snapshot_rows(str(path))
    assert [(r.number, r.line, r.snapshot.value) for r in good] == [(1, 2, 1.5), (2, 5, -2000.0)]
    assert good[0].snapshot.description == "a, quoted\r\ndescription"
    assert good[1].snapshot.time_zone == "Europe/Sofia"
    assert [(b.number, b.line) for b in bad] == [(3, 6), (4, 7), (5, 8)]
    assert bad[0].reason == "value must be a number, got '1_000'"
    assert "not a known IANA time zone" in bad[1].reason
    assert bad[2].reason == "kpi_id is missing"


def test_read_jsonl_variants(tmp_path: Path) -> None:
    kid = "5be26318e5274a0007f17f61"
    path = tmp_path / "s.data"  # no telling suffix: sniffed from the first character
    path.write_text(
        f'{{"kpi_id": "{kid}", "date": "2025-01-01", "value": 2}}\n'
        "\n"
        "[1, 2]\n"
        "{not json\n"
        f'{{"kpi_id": "{kid}", "date": "2025-01-01", "value": "2"}}\n'
        f'{{"kpi_id": "{kid}", "date": "2025-01-01", "value": true}}\n'
        f'{{"kpi_id": "{kid}", "date": "2025-01-01", "value": 1, "extra": 1}}\n'
    )
    good, bad = read_snapshot_rows(str(path))
    assert [(r.number, r.line) for r in good] == [(1, 1)]
    reasons = {b.line: b.reason for b in bad}
    assert reasons[3].startswith("must be a JSON object")
    assert reasons[4].startswith("not valid JSON")
    assert reasons[5] == "value must be a JSON number, got '2'"
    assert reasons[6] == "value must be a JSON number, got true"
    assert reasons[7].startswith("unknown field 'extra'")


def test_format_table_truncates_and_aligns() -> None:
    lines = format_table(["id", "name"], [["a", "x" * 50], ["bb", None]])
    assert lines[0] == "ID  NAME"
    assert lines[1] == "a   " + "x" * 39 + "…"
    assert lines[2] == "bb"


def test_progress_line_and_redraw_interval() -> None:
    now = [0.0]
    drawn: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            drawn.append(text)
            return len(text)

    bar = Progress(
        200,
        stream=Stream(),
        label="up",
        width=10,
        interval=0.5,
        clock=lambda: now[0],
    )
    now[0] = 1.0
    bar.update(50, unknown=1)
    assert bar.line() == "up [##........] 50/200  25%  50/s  ETA 3s  unknown 1"
    bar.update(51)  # within the interval: not redrawn
    assert len(drawn) == 1
    now[0] = 4.0
    bar.update(200, failed=2)
    bar.close()
    assert drawn[-1] == "\n"
    assert "200/200 100%" in drawn[-2] and "failed 2" in drawn[-2]
    hidden = Progress(10, stream=None)
    hidden.update(5)
    hidden.close()
