"""Check a built wheel: every package file (py.typed and data files included), no tests.

Usage: python .ci/check_wheel.py dist/gtmhub_async-*.whl
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gtmhub_async"


def package_files() -> set[str]:
    """Return every file under the package directory, as wheel paths (no bytecode)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def problems(wheel: Path) -> list[str]:
    """Return what is wrong with ``wheel`` (an empty list when nothing is)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            (archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")),
            "",
        )
    found: list[str] = []
    for missing in sorted(package_files() - names):
        found.append(f"missing from the wheel: {missing}")
    if f"{PACKAGE}/py.typed" not in names:
        found.append(f"missing from the wheel: {PACKAGE}/py.typed")
    for name in sorted(names):
        top = name.split("/", 1)[0]
        if not (top == PACKAGE or top.endswith(".dist-info")):
            found.append(f"outside the package: {name}")
        if "/tests/" in f"/{name}" or name.rsplit("/", 1)[-1].startswith("test_"):
            found.append(f"a test in the wheel: {name}")
    if "pytest11" in entry_points:
        found.append("the wheel registers a pytest11 plugin: the fixtures must stay opt-in")
    if "gtmhub-async = gtmhub_async.__main__:main" not in entry_points:
        found.append("the console script does not point to gtmhub_async.__main__:main")
    return found


def main(argv: list[str]) -> int:
    """Check each wheel given; print what is wrong and return 1, or 0 when all are fine."""
    if not argv:
        print("usage: check_wheel.py WHEEL...", file=sys.stderr)
        return 2
    bad = 0
    for arg in argv:
        found = problems(Path(arg))
        for line in found:
            print(f"{arg}: {line}", file=sys.stderr)
        bad += bool(found)
        if not found:
            print(f"{Path(arg).name}: {len(package_files())} package files, py.typed, no tests")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
