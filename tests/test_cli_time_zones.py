"""The CLI accepts the time zones the real API accepts: UTC, UTC±H [C], UTC±HH:MM, IANA names.

End to end against FakeGtmhub on a thread, in the style of tests/test_cli.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from test_cli import FakeThread, error_lines, run, write_csv  # tests/ is on sys.path

from gtmhub_async.cli import EXIT_FAILED, EXIT_OK
from gtmhub_async.testing import Quirks

HEADER = "kpi_id,date,value,time_zone"


@pytest.fixture
def server() -> Iterator[FakeThread]:
    # A server that, like the real one [C], takes UTC±H; this one refuses IANA names.
    with FakeThread(seed=15, quirks=Quirks(time_zone_forms=frozenset({"utc"}))) as thread:
        yield thread


def test_dry_run_accepts_utc_offsets_and_iana_names(server: FakeThread, tmp_path: Path) -> None:
    kid = server.fake.add_kpi()["id"]
    rows = [
        f"{kid},2026-11-01,42.5,UTC+2",
        f"{kid},2026-11-02,1,UTC-7",
        f"{kid},2026-11-03,1,UTC+05:30",
        f"{kid},2026-11-04,1,UTC",
        f"{kid},2026-11-05,1,Europe/Sofia",
    ]
    path = write_csv(tmp_path / "s.csv", rows, header=HEADER)
    result = run(["snapshots", "upload", str(path), "--dry-run"], server.env(GTMHUB_TOKEN=None))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines() == ["dry run: 5 rows OK, 0 bad; nothing was sent"]
    assert error_lines(result) == []
    assert server.fake.requests == []


def test_upload_sends_utc_plus_2_and_utc_minus_7_as_written(
    server: FakeThread, tmp_path: Path
) -> None:
    fake = server.fake
    kid = fake.add_kpi()["id"]
    rows = [f"{kid},2026-11-01,42.5,UTC+2", f"{kid},2026-11-02,7,UTC-7"]
    path = write_csv(tmp_path / "s.csv", rows, header=HEADER)
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_OK, result.output
    assert "2 of 2 rows uploaded" in result.stdout
    assert [(s["group"], s["value"], s["timeZone"]) for s in fake.snapshots[kid]] == [
        ("2026-11-01", 42.5, "UTC+2"),
        ("2026-11-02", 7.0, "UTC-7"),
    ]


def test_an_unknown_form_is_sent_with_one_warning_per_value(
    server: FakeThread, tmp_path: Path
) -> None:
    fake = server.fake
    fake.quirks = Quirks()  # this server takes any text
    kid = fake.add_kpi()["id"]
    rows = [f"{kid},2026-11-0{day},{day},GMT+2" for day in (1, 2, 3)] + [
        f"{kid},2026-11-04,4,+02:00"
    ]
    path = write_csv(tmp_path / "s.csv", rows, header=HEADER)
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_OK, result.output
    assert "4 of 4 rows uploaded" in result.stdout
    warnings = [line for line in error_lines(result) if "warning" in line]
    assert warnings == [
        "gtmhub-async: warning: time_zone 'GMT+2' is neither UTC±H nor a known IANA name; "
        "sent as is (the account's report settings decide)",
        "gtmhub-async: warning: time_zone '+02:00' is neither UTC±H nor a known IANA name; "
        "sent as is (the account's report settings decide)",
    ]
    assert [s["timeZone"] for s in fake.snapshots[kid]] == ["GMT+2"] * 3 + ["+02:00"]


def test_a_misspelt_iana_name_is_still_a_bad_row(server: FakeThread, tmp_path: Path) -> None:
    kid = server.fake.add_kpi()["id"]
    path = write_csv(tmp_path / "s.csv", [f"{kid},2026-11-01,1,Europe/Sofai"], header=HEADER)
    result = run(["snapshots", "upload", str(path), "--dry-run"], server.env())
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines()[0] == (
        "row 1 (line 2): bad row: time_zone 'Europe/Sofai' is not a known IANA time zone "
        "(nor UTC, UTC±H, UTC±HH:MM)"
    )


def test_a_server_refusing_a_form_fails_that_row_only(server: FakeThread, tmp_path: Path) -> None:
    fake = server.fake
    kid = fake.add_kpi()["id"]
    rows = [f"{kid},2026-11-01,1,UTC+2", f"{kid},2026-11-02,2,Europe/Sofia"]
    path = write_csv(tmp_path / "s.csv", rows, header=HEADER)
    result = run(["snapshots", "upload", str(path), "--rate", "1000"], server.env())
    assert result.exit_code == EXIT_FAILED
    assert any(
        line.startswith("row 2 (line 3): failed: HTTP 400 (POST ")
        and "timeZone 'Europe/Sofia' does not match" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert [s["timeZone"] for s in fake.snapshots[kid]] == ["UTC+2"]


def test_kpis_create_prints_what_is_known_when_the_body_is_a_bare_id(
    server: FakeThread,
) -> None:
    # Not a time zone, but the same CLI path: a 2xx write whose body is not a KPI [I].
    fake = server.fake
    fake.quirks = Quirks(write_reply="id")
    result = run(["kpis", "create", "--name", "Revenue"], server.env())
    assert result.exit_code == EXIT_OK, result.output
    (kpi_id,) = fake.kpis
    assert orjson.loads(result.stdout) == {"id": kpi_id, "status": 201}
