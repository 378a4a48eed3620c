"""Read snapshot files (CSV with a header, or JSON lines) row by row, in passes.

A file never sits in memory whole: ``SnapshotFile.open`` checks it once in chunks
(UTF-8, not blank, the CSV header) and each ``rows()`` reads it again from the
start, so a command that needs a count first reads it twice. Standard input
(``-``) is spooled to a temporary file so that it too can be read more than once.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from gtmhub_async.cli.app import EXIT_USAGE, fail
from gtmhub_async.cli.rows import REQUIRED, BadRow, SnapshotRow, column, parse_row, show

__all__ = ["CHUNK", "SnapshotFile", "read_snapshot_rows"]

#: Bytes read at a time while checking a file: what reading it costs in memory.
CHUNK: Final = 1 << 16
_BOM: Final = "\ufeff"
_NOT_SPACE: Final = re.compile(r"\S")


def _open_binary(path: str) -> IO[bytes]:
    p = Path(path)
    if p.is_dir():
        fail(f"{path} is a directory, not a snapshot file", EXIT_USAGE)
    try:
        return p.open("rb")
    except FileNotFoundError:
        fail(f"file not found: {path}", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot open {path}: {exc.strerror or exc}", EXIT_USAGE)


def _scan(source: IO[bytes], name: str, spool: IO[bytes] | None) -> str | None:
    """Check in chunks that ``source`` is UTF-8; copy it to ``spool``; return its first glyph.

    The first character that is not whitespace (after a byte-order mark, which
    spreadsheets often write) is None for a blank file.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    first: str | None = None
    while True:
        chunk = source.read(CHUNK)
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            at = offset - pending + exc.start
            fail(f"{name} is not UTF-8 text ({exc.reason} at byte {at})", EXIT_USAGE)
        if spool is not None:
            spool.write(chunk)
        if first is None:
            start = 1 if offset == 0 and text.startswith(_BOM) else 0
            found = _NOT_SPACE.search(text, start)
            first = found.group() if found else None
        offset += len(chunk)
        if not chunk:
            return first


def _is_jsonl(path: str, first: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv", ".txt"):
        return False
    return first == "{"


class SnapshotFile:
    """A checked CSV or JSON-lines snapshot file, read row by row as often as needed."""

    def __init__(self, name: str, path: str, *, jsonl: bool) -> None:
        #: The file as the user named it (``-`` for standard input), for messages.
        self.name = name
        #: A file that can be read again (standard input's spooled copy).
        self.path = path
        self.jsonl = jsonl
        #: Time zones already warned about: one warning per value, however many passes.
        self.warned: set[str] = set()

    @classmethod
    @contextlib.contextmanager
    def open(cls, name: str) -> Iterator[SnapshotFile]:
        """Check ``name`` (``-`` for stdin) and yield it; a file-level problem raises CliError.

        Not found, a directory, not UTF-8, blank, or a bad CSV header are file-level.
        """
        if name != "-":
            with _open_binary(name) as source:
                first = _scan(source, name, None)
            yield cls._checked(name, name, first)
            return
        fd, spooled = tempfile.mkstemp(prefix="gtmhub-async-", suffix=".stdin")
        try:
            with os.fdopen(fd, "wb") as spool:
                first = _scan(sys.stdin.buffer, name, spool)
            yield cls._checked(name, spooled, first)
        finally:
            os.unlink(spooled)

    @classmethod
    def _checked(cls, name: str, path: str, first: str | None) -> SnapshotFile:
        if first is None:
            fail(f"{name} is empty: expected a CSV header or JSON lines", EXIT_USAGE)
        source = cls(name, path, jsonl=_is_jsonl(name, first))
        if not source.jsonl:
            with source._text() as stream:
                source._header(csv.reader(stream))
        return source

    def _text(self) -> IO[str]:
        # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
        return open(self.path, encoding="utf-8-sig", newline="")

    def rows(self) -> Iterator[SnapshotRow | BadRow]:
        """Read the file from its start; yield each row that is not blank, good or bad."""
        with self._text() as stream:
            if self.jsonl:
                yield from self._jsonl_rows(stream)
            else:
                yield from self._csv_rows(stream)

    def _header(self, reader: Any) -> list[str]:
        """Read the CSV header (the first row that is not blank); check its columns."""
        path = self.name
        try:
            header: list[str] = next(reader)
            while not any(cell.strip() for cell in header):
                header = next(reader)
        except StopIteration:
            fail(f"{path} has no CSV header", EXIT_USAGE)
        except csv.Error as exc:
            fail(f"{path}: bad CSV header: {exc}", EXIT_USAGE)
        names: list[str] = []
        for cell in header:
            name = column(cell)
            if name is None:
                fail(
                    f"{path}: unknown column {cell.strip()!r} in the CSV header; expected "
                    "kpi_id, date, value and optionally time_zone, description",
                    EXIT_USAGE,
                )
            if name in names:
                fail(f"{path}: column {name!r} appears twice in the CSV header", EXIT_USAGE)
            names.append(name)
        absent = [c for c in REQUIRED if c not in names]
        if absent:
            fail(
                f"{path}: the CSV header lacks the column{'s' if len(absent) > 1 else ''} "
                f"{', '.join(absent)} (it has {', '.join(names)})",
                EXIT_USAGE,
            )
        return names

    def _csv_rows(self, stream: IO[str]) -> Iterator[SnapshotRow | BadRow]:
        reader = csv.reader(stream)
        names = self._header(reader)
        number = 0
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield BadRow(number, line, f"bad CSV: {exc}")
                line = reader.line_num + 1
                continue
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            number += 1
            if len(cells) != len(names):
                yield BadRow(
                    number, start, f"has {len(cells)} fields, the header has {len(names)}"
                )
                continue
            fields = dict(zip(names, cells, strict=True))
            try:
                kpi_id, snapshot = parse_row(fields, warned=self.warned)
            except ValueError as exc:
                yield BadRow(number, start, str(exc))
                continue
            yield SnapshotRow(number, start, kpi_id, snapshot)

    def _jsonl_rows(self, stream: IO[str]) -> Iterator[SnapshotRow | BadRow]:
        import orjson

        number = 0
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            number += 1
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield BadRow(number, line, f"not valid JSON: {exc}")
                continue
            if not isinstance(data, dict):
                yield BadRow(number, line, f"must be a JSON object, got {show(data)}")
                continue
            fields: dict[str, Any] = {}
            unknown = []
            for key, value in data.items():
                name = column(key)
                if name is None:
                    unknown.append(key)
                else:
                    fields[name] = value
            if unknown:
                yield BadRow(
                    number,
                    line,
                    f"unknown field {', '.join(map(repr, unknown))}; expected kpi_id, date, "
                    "value and optionally time_zone, description",
                )
                continue
            try:
                kpi_id, snapshot = parse_row(fields, from_json=True, warned=self.warned)
            except ValueError as exc:
                yield BadRow(number, line, str(exc))
                continue
            yield SnapshotRow(number, line, kpi_id, snapshot)


def read_snapshot_rows(path: str) -> tuple[list[SnapshotRow], list[BadRow]]:
    """Read a whole snapshot file into its good and bad rows (for small files and tests).

    Columns: kpi_id, date (YYYY-MM-DD), value, and optional time_zone, description.
    A file-level problem (not found, not UTF-8, a bad header) raises CliError.
    Commands stream with ``SnapshotFile`` instead.
    """
    good: list[SnapshotRow] = []
    bad: list[BadRow] = []
    with SnapshotFile.open(path) as source:
        for row in source.rows():
            if isinstance(row, SnapshotRow):
                good.append(row)
            else:
                bad.append(row)
    return good, bad
