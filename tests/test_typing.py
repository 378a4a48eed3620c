"""Static checks: the bound endpoint methods carry their routes' types (run by mypy in CI)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import assert_type

from gtmhub_async import GtmhubClient, Kpi, KpiPage, KpiSnapshot


async def typed_calls(client: GtmhubClient) -> None:
    """Never run: mypy checks that each method returns its route's model."""
    assert_type(await client.kpis.get("5e8c27e3dcdddaa4addbdee8"), Kpi)
    assert_type(await client.kpis.list_page(take=10), KpiPage)
    assert_type(
        await client.kpi_snapshots.list(ids=["5e8c27e3dcdddaa4addbdee8"]), list[KpiSnapshot]
    )
    assert_type(await client.insights.kpi_usages("5e8c27e3dcdddaa4addbdee8"), list[Kpi])
    assert_type(await client.kpis.delete("5e8c27e3dcdddaa4addbdee8"), None)


def test_methods_show_their_signatures_at_run_time() -> None:
    client = GtmhubClient("t", "5be26318e5274a0007f17f61")
    assert str(inspect.signature(client.kpis.get)) == (
        "(kpi_id: 'str', *, timeout: 'float | None' = None, "
        "formatting: 'Formatting | None' = None)"
    )
    assert client.kpis.get is client.kpis.get
    assert client.kpis.get.__doc__ == "Read one KPI by id."


def _new_style(revealed: str) -> str:
    """Write a type as recent mypy does: ``str`` not ``builtins.str``, ``X | None``."""
    revealed = revealed.replace("builtins.", "")
    optional = re.fullmatch(r"Union\[(.*), None\]", revealed)
    return f"{optional[1]} | None" if optional else revealed


def test_a_user_file_importing_every_public_name_passes_mypy_strict() -> None:
    """mypy --strict reveals each public name's own class, RedisRateLimit included."""
    import gtmhub_async

    user_file = Path(__file__).with_name("typing_user.py")
    text = user_file.read_text()
    expected = {
        number: line.split("# expect: ", 1)[1].strip()
        for number, line in enumerate(text.splitlines(), start=1)
        if "reveal_type(" in line and "# expect: " in line
    }
    for name in [*gtmhub_async.__all__, "RedisRateLimit"]:
        assert f"    {name},\n" in text, f"{name} is not imported by typing_user.py"
        obj = getattr(gtmhub_async, name)
        if isinstance(obj, type):
            assert f"# expect: {obj.__module__}.{obj.__qualname__}\n" in text, name
    run = subprocess.run(
        # The package's own modules are checked by CI's `mypy --strict gtmhub_async`; here,
        # as for a user who installed it, only the user's file may report (errors inside an
        # old redis client's stubs at the lowest versions are not the user's concern).
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            str(user_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    revealed = {
        int(m[1]): _new_style(m[2])
        for m in re.finditer(r'typing_user\.py:(\d+): note: Revealed type is "(.*)"', run.stdout)
    }
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert errors == []
    assert run.returncode == 0, run.stdout + run.stderr
    assert revealed == expected
