"""Run the ``gtmhub-async`` program: ``python -m gtmhub_async`` or the console script.

This module imports only the standard library before it checks for click, so that
without the ``cli`` extra the program prints one line and exits 2 (as httpx does)
instead of a ``ModuleNotFoundError`` traceback. The CLI stays an extra: the SDK is a
library first, and a service that only imports it should not pull click in.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import NoReturn

#: The one line printed when the cli extra is missing.
MISSING_CLI: str = (
    "gtmhub-async: the command-line program needs the cli extra: pip install 'gtmhub-async[cli]'"
)
#: Exit status for a usage or configuration error, as the CLI uses it.
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI, or print how to install it and exit 2 when click is missing."""
    if importlib.util.find_spec("click") is None:
        print(MISSING_CLI, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    from gtmhub_async.cli import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main()
