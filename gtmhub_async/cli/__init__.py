"""The ``gtmhub-async`` command-line program (needs the ``cli`` extra).

``app`` holds the click group, exit statuses and error mapping; each command
module (``kpis``, ``snapshots``, ``upload``, ``demo``, ``fake_server``) attaches
its commands to that group when imported. This package imports them all, so
importing ``gtmhub_async.cli`` gives the whole program and no command module
needs to know about the others (imports point one way: commands -> app).
"""

from __future__ import annotations

# Imported for their side effect: each attaches its commands to ``cli``.
from gtmhub_async.cli import demo, fake_server, kpis, snapshots, upload  # noqa: F401
from gtmhub_async.cli.app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    cli,
    explain,
    main,
    run_program,
)
from gtmhub_async.cli.files import SnapshotFile, read_snapshot_rows
from gtmhub_async.cli.output import format_table
from gtmhub_async.cli.progress import Progress
from gtmhub_async.cli.rows import BadRow, SnapshotRow

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BadRow",
    "CliError",
    "Progress",
    "SnapshotFile",
    "SnapshotRow",
    "cli",
    "explain",
    "format_table",
    "main",
    "read_snapshot_rows",
    "run_program",
]
