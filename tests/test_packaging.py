"""Installing the SDK breaks nothing: the public surface, missing extras, the opt-in plugin."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gtmhub_async
from gtmhub_async import GtmhubClient
from gtmhub_async.__main__ import MISSING_CLI
from gtmhub_async.testing import FakeGtmhub

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )


def _blocking(module: str) -> str:
    """Return code that makes ``import module`` fail as if it were not installed."""
    return f"import sys\nsys.modules[{module!r}] = None\n"


def test_a_star_import_works_without_the_extras() -> None:
    run = _python(
        _blocking("redis")
        + _blocking("click")
        + _blocking("pytest_asyncio")
        + "from gtmhub_async import *\n"
        + "import gtmhub_async\n"
        + "missing = [n for n in gtmhub_async.__all__ if n not in globals()]\n"
        + "print(len(gtmhub_async.__all__), missing)\n"
    )
    assert run.stderr == ""
    assert run.stdout == f"{len(gtmhub_async.__all__)} []\n"


def test_all_names_the_public_types_and_nothing_that_needs_an_extra() -> None:
    names = set(gtmhub_async.__all__)
    assert {"Limiter", "LimiterFactory", "LimiterStats", "ClientStats", "GtmhubClient"} <= names
    assert "RedisRateLimit" not in names
    assert len(names) == len(gtmhub_async.__all__)
    for name in names:
        assert getattr(gtmhub_async, name) is not None, name
    assert gtmhub_async.RedisRateLimit.__name__ == "RedisRateLimit"  # with the extra


def test_redis_rate_limit_without_the_extra_is_one_clear_line() -> None:
    run = _python(
        _blocking("redis")
        + "try:\n"
        + "    from gtmhub_async import RedisRateLimit\n"
        + "except ImportError as exc:\n"
        + "    print(type(exc).__name__, exc.name, exc, sep='|')\n"
    )
    assert run.stderr == ""
    assert run.stdout == (
        "ImportError|redis|RedisRateLimit needs the redis extra: "
        "pip install 'gtmhub-async[redis]'\n"
    )


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'gtmhub_async' has no attribute 'Nope'$"):
        gtmhub_async.__getattr__("Nope")


def test_the_cli_without_click_prints_one_line_and_exits_2() -> None:
    for argv in (["--help"], ["demo"], []):
        run = _python(
            _blocking("click") + "from gtmhub_async.__main__ import main\nmain()\n", *argv
        )
        assert run.returncode == 2
        assert run.stdout == ""
        assert run.stderr == (
            "gtmhub-async: the command-line program needs the cli extra: "
            "pip install 'gtmhub-async[cli]'\n"
        )
    assert run.stderr == MISSING_CLI + "\n"


def test_python_dash_m_runs_the_cli() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gtmhub_async", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert (run.returncode, run.stdout) == (0, f"gtmhub-async {gtmhub_async.__version__}\n")


def test_the_plugin_without_pytest_asyncio_fails_with_one_line() -> None:
    run = _python(
        _blocking("pytest_asyncio")
        + "try:\n"
        + "    import gtmhub_async.testing.plugin\n"
        + "except ImportError as exc:\n"
        + "    print(exc.name, exc, sep='|')\n"
    )
    assert run.stderr == ""
    assert run.stdout == (
        "pytest_asyncio|gtmhub_async.testing.plugin needs pytest-asyncio: "
        "pip install 'gtmhub-async[testing]'\n"
    )


def test_pyproject_registers_no_pytest_plugin_and_a_stdlib_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "pytest11" not in project.get("entry-points", {})
    assert project["scripts"] == {"gtmhub-async": "gtmhub_async.__main__:main"}
    runtime = {dep.split(">")[0].split("=")[0] for dep in project["dependencies"]}
    assert runtime == {"aiohttp", "attrs", "cattrs", "orjson"}
    extras = project["optional-dependencies"]
    assert extras["testing"] == ["pytest>=8.4", "pytest-asyncio>=1.4"]
    assert any(dep.startswith("aiolimiter") for dep in extras["test"])


def test_the_main_module_does_not_import_the_cli_when_click_is_missing() -> None:
    run = _python(
        _blocking("click")
        + "from gtmhub_async.__main__ import main\n"
        + "try:\n"
        + "    main(['--help'])\n"
        + "except SystemExit as exc:\n"
        + "    print(exc.code, 'gtmhub_async.cli' in sys.modules)\n"
    )
    assert run.stdout == "2 False\n"
    assert run.stderr == MISSING_CLI + "\n"


async def test_client_stats_is_a_snapshot_not_the_live_counters() -> None:
    async with FakeGtmhub() as fake, fake.client(rate_limit=None) as client:
        fake.add_kpis(1)
        before = client.stats
        await client.kpis.list_page(take=1)
        after = client.stats
        assert (before.calls, after.calls) == (0, 1)
        after.calls = 99
        assert client.stats.calls == 1
        assert client.stats is not client.stats
    assert GtmhubClient("t", "5be26318e5274a0007f17f61").stats.calls == 0


def test_the_public_modules_are_listed_once_in_the_package_docstring() -> None:
    doc = gtmhub_async.__doc__ or ""
    readme = (ROOT / "README.md").read_text()
    for module in (
        "gtmhub_async.testing",
        "gtmhub_async.testing.plugin",
        "gtmhub_async.redis_limits",
        "gtmhub_async.network",
        "gtmhub_async.cli",
    ):
        assert f"``{module}``" in doc, module
        assert f"`{module}`" in readme, module
