"""Reading snapshot files: streamed row by row in passes, never whole in memory."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from gtmhub_async.cli import EXIT_OK, EXIT_USAGE, CliError, SnapshotFile, SnapshotRow, cli
from gtmhub_async.cli.files import CHUNK

KID = "5be26318e5274a0007f17f61"
ROWS = 200_000
T = TypeVar("T")


def _large_csv(path: Path) -> int:
    """Write ROWS valid rows (one a day from 1900 on) and return the file's size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        out.write("kpi_id,date,value,description\n")
        for n in range(ROWS):
            out.write(f"{KID},{1900 + n // 365:04d}-01-01,{n}.25,row number {n}\n")
    return path.stat().st_size


def _peak_while(body: Callable[[], T]) -> tuple[T, int]:
    """Return what ``body()`` returns and the peak of memory allocated while it ran."""
    tracemalloc.start()
    try:
        result = body()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_csv_is_read_row_by_row_without_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    size = _large_csv(path)
    assert size > 10_000_000

    def count() -> tuple[int, float]:
        with SnapshotFile.open(str(path)) as source:
            rows = 0
            last = 0.0
            for row in source.rows():
                assert isinstance(row, SnapshotRow), row
                rows += 1
                last = row.snapshot.value
            return rows, last

    (rows, last), peak = _peak_while(count)
    assert (rows, last) == (ROWS, ROWS - 1 + 0.25)
    # The whole file as text would be `size` bytes; its rows as objects far more.
    assert peak < size / 20, (peak, size)


def test_the_dry_run_of_a_large_jsonl_file_streams_it(tmp_path: Path) -> None:
    path = tmp_path / "large.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n in range(ROWS):
            out.write(f'{{"kpi_id": "{KID}", "date": "2025-01-01", "value": {n}}}\n')
        out.write('{"kpi_id": "x", "date": "2025-01-01", "value": 1}\n')
    size = path.stat().st_size

    def dry_run() -> Result:
        return CliRunner().invoke(cli, ["snapshots", "upload", str(path), "--dry-run"])

    result, peak = _peak_while(dry_run)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"row {ROWS + 1} (line {ROWS + 1}): bad row: kpi_id must be 24 hex digits, got 'x'",
        f"dry run: {ROWS:,} rows OK, 1 bad; nothing was sent",
    ]
    assert peak < size / 20, (peak, size)


def test_stdin_is_spooled_to_a_temporary_file_read_in_passes_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    text = f"kpi_id,date,value\n{KID},2025-01-01,1\n{KID},2025-01-02,oops\n"
    result = CliRunner().invoke(cli, ["snapshots", "upload", "-", "--dry-run"], input=text)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "row 2 (line 3): bad row: value must be a number, got 'oops'",
        "dry run: 1 row OK, 1 bad; nothing was sent",
    ]
    assert list(spool_dir.iterdir()) == []


def test_an_empty_stdin_is_a_usage_error_and_leaves_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["snapshots", "upload", "-", "--dry-run"], input=" \n")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "gtmhub-async: error: - is empty: expected a CSV header or JSON lines\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_bad_utf8_is_located_by_its_byte_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    head = "kpi_id,date,value\n" + "é" * (3 * CHUNK)  # the bad byte is in a later chunk
    path.write_bytes(head.encode() + b"\xff\n")
    with pytest.raises(CliError) as info, SnapshotFile.open(str(path)):
        pass
    at = len(head.encode())
    assert info.value.message == f"{path} is not UTF-8 text (invalid start byte at byte {at})"
    assert info.value.code == EXIT_USAGE


def test_a_character_split_by_a_chunk_boundary_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    header = "kpi_id,date,value,description\n"
    # Put a two-byte character across the first chunk's end.
    pad = "x" * (CHUNK - len(header) - len(KID) - len(",2025-01-01,1,") - 1)
    path.write_text(f"{header}{KID},2025-01-01,1,{pad}é\n", encoding="utf-8")
    assert path.read_bytes()[CHUNK - 1 : CHUNK + 1] == "é".encode()
    with SnapshotFile.open(str(path)) as source:
        (row,) = list(source.rows())
    assert isinstance(row, SnapshotRow)
    assert row.snapshot.description == pad + "é"


def test_a_byte_order_mark_before_json_lines_is_skipped_when_sniffing(tmp_path: Path) -> None:
    path = tmp_path / "bom.data"
    path.write_text(f'\ufeff {{"kpi_id": "{KID}", "date": "2025-01-01", "value": 3}}\n')
    with SnapshotFile.open(str(path)) as source:
        assert source.jsonl
        (row,) = list(source.rows())
    assert isinstance(row, SnapshotRow) and row.snapshot.value == 3.0
    result = CliRunner().invoke(cli, ["snapshots", "upload", str(path), "--dry-run"])
    assert result.exit_code == EXIT_OK
    assert result.stdout == "dry run: 1 row OK, 0 bad; nothing was sent\n"


def test_a_json_value_is_checked_by_the_models_validator(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text(
        f'{{"kpi_id": "{KID}", "date": "2025-01-01", "value": 7}}\n'
        f'{{"kpi_id": "{KID}", "date": "2025-01-02", "value": false}}\n'
        f'{{"kpi_id": "{KID}", "date": "2025-01-03", "value": 1e400}}\n'
    )
    with SnapshotFile.open(str(path)) as source:
        rows = list(source.rows())
    first = rows[0]
    assert isinstance(first, SnapshotRow)
    assert type(first.snapshot.value) is float and first.snapshot.value == 7.0
    reasons = [getattr(r, "reason", None) for r in rows[1:]]
    assert reasons[0] == "value must be a JSON number, got false"
    assert reasons[1] is not None and reasons[1].startswith("not valid JSON")


def test_a_directory_or_an_unopenable_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CliError) as info, SnapshotFile.open(str(tmp_path)):
        pass
    assert (info.value.message, info.value.code) == (
        f"{tmp_path} is a directory, not a snapshot file",
        EXIT_USAGE,
    )
    plain = tmp_path / "plain.csv"
    plain.write_text("kpi_id,date,value\n")
    beneath = plain / "x.csv"
    with pytest.raises(CliError) as info, SnapshotFile.open(str(beneath)):
        pass
    assert (info.value.message, info.value.code) == (
        f"cannot open {beneath}: Not a directory",
        EXIT_USAGE,
    )


def test_bad_utf8_on_stdin_leaves_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(
        cli, ["snapshots", "upload", "-", "--dry-run"], input=b"kpi_id,date,value\n\xfe\n"
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "gtmhub-async: error: - is not UTF-8 text (invalid start byte at byte 18)\n"
    )
    assert list(tmp_path.iterdir()) == []
