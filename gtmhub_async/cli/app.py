"""The program shell: the click group, exit statuses, and one-line error messages.

Exit status: 0 when everything worked, 1 when some rows failed or are unknown or
a check failed, 2 for a usage or configuration error, 130 after Ctrl-C. Every
error is one line on stderr, never with a traceback and never with the token.
The commands live in their own modules and attach themselves to ``cli``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, NoReturn, TypeVar

import click

from gtmhub_async._validate import is_int
from gtmhub_async._version import __version__
from gtmhub_async.errors import (
    ApiError,
    AuthenticationError,
    GtmhubError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimiterUnavailableError,
    TransportError,
    UnknownOutcomeError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CliError",
    "cli",
    "explain",
    "fail",
    "main",
    "one_line",
    "plural",
    "row_reason",
    "run",
    "run_program",
]

T = TypeVar("T")

EXIT_OK: Final = 0
#: Some rows failed or are unknown, or a check failed.
EXIT_FAILED: Final = 1
#: A usage or configuration error: nothing (more) was sent.
EXIT_USAGE: Final = 2
#: Interrupted by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED: Final = 130

PROG: Final = "gtmhub-async"


class CliError(Exception):
    """Stop the program with one line on stderr and an exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(text: str) -> str:
    """Return ``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(str(text).split())


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Raise CliError: stop the command with ``message`` and exit status ``code``."""
    raise CliError(message, code)


def plural(n: int, word: str) -> str:
    """Return ``"1 row"`` / ``"1,234 rows"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class _Program(click.Group):
    """The root group: turns every error into one line on stderr and an exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the program; exit with its status (or return it when not standalone)."""
        code = run_program(
            lambda: super(_Program, self).main(
                args,
                prog_name or PROG,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_program(invoke: Callable[[], Any]) -> int:
    """Call ``invoke`` (click's non-standalone main) and return the exit status."""
    try:
        result = invoke()
    except CliError as exc:
        _error(exc.message)
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        # click turns KeyboardInterrupt (also the one asyncio.run re-raises) into Abort.
        _error("interrupted")
        return EXIT_INTERRUPTED
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(f"{one_line(exc.format_message())}{hint}")
        return EXIT_USAGE
    except click.ClickException as exc:
        _error(one_line(exc.format_message()))
        return EXIT_USAGE
    except GtmhubError as exc:
        error = explain(exc)
        _error(error.message)
        return error.code
    except OSError as exc:
        _error(_os_error(exc))
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, with what is needed to report it
        _error(f"internal error: {type(exc).__name__}: {one_line(str(exc))}")
        return EXIT_FAILED
    if is_int(result):
        return result
    return EXIT_OK


def _error(message: str) -> None:
    click.echo(f"{PROG}: error: {one_line(message)}", err=True)


def _os_error(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}:{where}" if exc.strerror else one_line(str(exc))


def explain(exc: GtmhubError, *, base_url: str | None = None) -> CliError:
    """Return the one-line error and exit status that stand for an SDK error."""
    if isinstance(exc, PaginationError) and isinstance(exc.__cause__, GtmhubError):
        # The page's own error says what to fix; the walk's position is secondary.
        inner = explain(exc.__cause__, base_url=base_url)
        after = f" (after {plural(exc.yielded, 'KPI')})" if exc.yielded else ""
        return CliError(f"{inner.message}{after}", inner.code)
    if isinstance(exc, AuthenticationError):
        return CliError(
            f"the server rejected the token (HTTP 401: {one_line(exc.message)}); "
            "check GTMHUB_TOKEN or --token",
            EXIT_USAGE,
        )
    if isinstance(exc, PermissionDeniedError):
        return CliError(
            f"permission denied (HTTP 403: {one_line(exc.message)}); check GTMHUB_ACCOUNT_ID "
            "or --account-id and the token's permissions",
            EXIT_USAGE,
        )
    if isinstance(exc, NotFoundError):
        return CliError(f"not found (HTTP 404: {one_line(exc.message)})")
    if isinstance(exc, ApiError):
        return CliError(one_line(str(exc)))
    if isinstance(exc, UnknownOutcomeError):
        return CliError(one_line(str(exc)))
    if isinstance(exc, TransportError):
        where = f"cannot reach {base_url}: " if base_url else ""
        return CliError(f"{where}{one_line(str(exc))}")
    if isinstance(exc, RateLimiterUnavailableError):
        return CliError(f"the shared rate limiter is unavailable: {one_line(str(exc))}")
    return CliError(one_line(str(exc)))


def row_reason(error: BaseException | None) -> str:
    """Return why one uploaded item did not succeed, in one line."""
    if error is None:
        return "no reason recorded"
    if isinstance(error, GtmhubError):
        return explain(error).message
    return one_line(f"{type(error).__name__}: {error}")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a fresh event loop."""
    return asyncio.run(coro)


@click.group(cls=_Program, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Work with the Gtmhub (Quantive Results) KPI API, or try it against a local fake."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the gtmhub-async program and exit with its status."""
    cli.main(args=argv, prog_name=PROG)
    raise AssertionError("unreachable: main() exits")  # pragma: no cover
