"""The benchmark harness: processes, interleaving, medians, tables, results files.

Every measured client run happens in a fresh child process
(``python -m benchmarks.harness child MODULE FUNCTION JSON``) so that one
variant's heap, caches and connection pool never carry over into the next, and
so that ``time.process_time`` and the peak RSS cover that run alone. Servers
run in their own long-lived processes (``Server``), so they never share the
client's core budget. Variants are run interleaved, A B C A B C ..., so that a
neighbour's load on this shared machine hits every variant alike, and each
reported figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "Column",
    "Options",
    "Row",
    "ScenarioResult",
    "Server",
    "Target",
    "interleave",
    "main",
    "run_child",
]

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
#: The longest one child run may take before it is killed (every loop is bounded anyway).
CHILD_TIMEOUT = 120.0
#: glibc's mmap and trim thresholds, pinned for every benchmark process alike. aiohttp
#: reads each answer into a fresh 256 KiB buffer; under glibc's default dynamic threshold
#: some processes pay an mmap + munmap per response and others (which raised the threshold
#: early by chance) do not: 12-15 us/request apart, run to run, for the same code.
#: A fixed 1 MiB threshold makes every process (baseline and SDK) take those buffers
#: from the heap. Pinning it also stops glibc's dynamic rule from raising the trim
#: threshold (to twice the mmap threshold), which then stays at 128 KiB: a process whose
#: buffer happens to sit at the top of the heap gives it back on every free and faults a
#: page in again on the next answer (1 minor fault/request, about 10 us), another does not.
#: So the trim threshold is pinned too, at the 2 MiB that rule would set. Set either
#: variable yourself to measure another setting.
MALLOC_ENV: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "MALLOC_TRIM_THRESHOLD_": "2097152",
}


def child_env() -> dict[str, str]:
    """Return the environment of every benchmark process: this one's, allocator pinned."""
    return {**MALLOC_ENV, **os.environ}


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    quick: bool = False
    runs: int = 5


@dataclass(frozen=True)
class Column:
    """One column of a scenario's table: a metric key, its header and its format."""

    key: str
    header: str
    fmt: str = "{:,.0f}"


@dataclass
class Row:
    """One variant: the median of each metric over its runs, and the runs themselves."""

    variant: str
    label: str
    median: dict[str, float]
    runs: list[dict[str, float]]
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A goal from the issue and whether this run met it."""

    name: str
    value: float
    threshold: float
    met: bool


@dataclass
class ScenarioResult:
    """Everything one scenario reports."""

    name: str
    title: str
    params: dict[str, Any]
    columns: list[Column]
    rows: list[Row]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    date: str = ""

    def row(self, variant: str) -> Row:
        """Return the row of a variant."""
        return next(r for r in self.rows if r.variant == variant)


# --- Processes -----------------------------------------------------------------------


class Server:
    """A benchmark server (``benchmarks.servers``) in its own process, for a ``with`` block."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers", *self.args],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._stop()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def cpu_seconds(self) -> float:
        """Return the CPU time the server process has used so far (Linux /proc)."""
        assert self._proc is not None
        with open(f"/proc/{self._proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def base_url(self) -> str:
        """Return the API root the SDK takes (``/v1/...`` is added by the routes)."""
        return f"http://127.0.0.1:{self.port}/api"

    def control(self, what: str) -> Any:
        """Call a control route (``__reset``, ``__stats``) and return its decoded JSON."""
        method = "POST" if what == "__reset" else "GET"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{what}",
            method=method,
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())


def run_child(module: str, function: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``benchmarks.MODULE.FUNCTION(**kwargs)`` in a fresh process; return its dict."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness",
        "child",
        module,
        function,
        json.dumps(kwargs),
    ]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark child {module}.{function} failed ({proc.returncode}):\n{proc.stderr}"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _child_main(module: str, function: str, raw: str) -> None:
    func = getattr(importlib.import_module(f"benchmarks.{module}"), function)
    result = func(**json.loads(raw))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def peak_rss_kib() -> int:
    """Return this process's peak resident set size in KiB (Linux ru_maxrss)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- Interleaving and medians --------------------------------------------------------


def interleave(
    variants: Sequence[str],
    runs: int,
    run_one: Callable[[str, int], dict[str, float]],
    *,
    progress: str = "",
) -> dict[str, list[dict[str, float]]]:
    """Run every variant ``runs`` times, interleaved; return the runs.

    Each round runs every variant once, and the order rotates from round to round
    (A B C, B C A, C A B ...), so that no variant always runs in the same slot:
    always following the same neighbour, or the same phase of another process's load.
    """
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    tty = sys.stderr.isatty()
    order = list(variants)
    for i in range(runs):
        shift = i % len(order)
        for variant in order[shift:] + order[:shift]:
            if tty:
                print(f"\r  {progress} run {i + 1}/{runs} {variant:<24}", end="", file=sys.stderr)
            results[variant].append(run_one(variant, i))
    if tty:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)
    return results


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Return the median of every metric over the runs."""
    keys = runs[0].keys()
    return {k: float(statistics.median(r[k] for r in runs)) for k in keys}


def paired_ratio(
    runs: dict[str, list[dict[str, float]]], variant: str, baseline: str, key: str
) -> float:
    """Return the median of per-round ratios: rounds ran back to back, so drift cancels."""
    pairs = zip(runs[variant], runs[baseline], strict=True)
    return float(statistics.median(a[key] / b[key] for a, b in pairs if b[key]))


# --- Output --------------------------------------------------------------------------


def _cell(column: Column, row: Row) -> str:
    value = row.median.get(column.key)
    if value is None:
        return "-"
    return column.fmt.format(value)


def table_lines(result: ScenarioResult) -> list[str]:
    """Return a scenario's Markdown table."""
    headers = ["variant", *(c.header for c in result.columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in result.rows:
        label = row.label + (f" ({row.note})" if row.note else "")
        cells = [label, *(_cell(c, row) for c in result.columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def target_lines(result: ScenarioResult) -> list[str]:
    """Return one line per target: met or missed, with the measured value."""
    return [
        f"- {'MET' if t.met else 'MISSED'}: {t.name}: {t.value:.2f} (target >= {t.threshold:g})"
        for t in result.targets
    ]


def environment() -> dict[str, Any]:
    """Return the machine, Python and package versions the results belong to."""
    packages: dict[str, str | None] = {}
    for name in ("gtmhub-async", "aiohttp", "cattrs", "attrs", "orjson", "requests", "multidict"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    load = os.getloadavg()
    return {
        "commit": _commit(),
        "cpu": _cpu_model(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or '?'}/{platform.machine()}",
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average_at_start": [round(x, 2) for x in load],
        "packages": packages,
        "malloc_mmap_threshold": child_env()["MALLOC_MMAP_THRESHOLD_"],
        "malloc_trim_threshold": child_env()["MALLOC_TRIM_THRESHOLD_"],
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _commit() -> str:
    """Return the commit measured, with ``+dirty`` when the package has uncommitted edits."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "gtmhub_async"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return head + ("+dirty" if dirty else "") if head else "?"


def _markdown(env: dict[str, Any], results: list[ScenarioResult], command: str) -> str:
    pkgs = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    out = [
        "# Benchmark results",
        "",
        "A snapshot: numbers belong to the machine and date below. Reproduce with",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- date: {env['date']}",
        f"- machine: {env['machine']} ({env['cpu']}), nproc {env['nproc']}, {env['system']}",
        f"- gtmhub_async at commit {env['commit']}",
        f"- Python {env['python']} ({env['implementation']}); {pkgs}",
        f"- load average at start: {', '.join(str(x) for x in env['load_average_at_start'])}",
        f"- every benchmark process runs with MALLOC_MMAP_THRESHOLD_="
        f"{env.get('malloc_mmap_threshold', '?')} and MALLOC_TRIM_THRESHOLD_="
        f"{env.get('malloc_trim_threshold', '?')} (glibc; the same for every variant)",
        "- every figure is the median of the runs (variants interleaved, the order rotating "
        "each round: A B C, B C A ...); ratios are ratios of medians",
        "",
    ]
    for result in results:
        out += [f"## {result.title}", ""]
        params = ", ".join(f"{k}={v}" for k, v in result.params.items())
        when = f" Measured {result.date}." if result.date and result.date != env["date"] else ""
        out += [f"Parameters: {params}.{when}", ""]
        out += table_lines(result)
        out.append("")
        if result.targets:
            out += target_lines(result)
            out.append("")
        for note in result.notes:
            out.append(f"- {note}")
        if result.notes:
            out.append("")
    return "\n".join(out)


def write_results(
    env: dict[str, Any], results: list[ScenarioResult], command: str, *, merge: bool
) -> None:
    """Write results.json and RESULTS.md; with ``merge``, keep scenarios not rerun."""
    path = BENCH_DIR / "results.json"
    scenarios: dict[str, Any] = {}
    if merge and path.exists():
        try:
            scenarios = json.loads(path.read_text())["scenarios"]
        except (ValueError, KeyError):
            scenarios = {}
    for result in results:
        scenarios[result.name] = asdict(result)
    data = {"environment": env, "command": command, "scenarios": scenarios}
    path.write_text(json.dumps(data, indent=2) + "\n")
    # RESULTS.md is rebuilt from everything results.json now holds.
    ordered = [_from_dict(s) for s in scenarios.values()]
    (BENCH_DIR / "RESULTS.md").write_text(_markdown(env, ordered, command))


def _from_dict(data: dict[str, Any]) -> ScenarioResult:
    return ScenarioResult(
        name=data["name"],
        title=data["title"],
        params=data["params"],
        columns=[Column(**c) for c in data["columns"]],
        rows=[Row(**r) for r in data["rows"]],
        targets=[Target(**t) for t in data["targets"]],
        notes=list(data["notes"]),
        seconds=data.get("seconds", 0.0),
        date=data.get("date", ""),
    )


# --- Command line --------------------------------------------------------------------

#: Scenario name -> module exposing ``run(options) -> ScenarioResult``.
SCENARIOS: dict[str, str] = {
    "overhead": "overhead",
    "bulk": "bulk",
    "fidelity": "fidelity",
    "pagination": "pagination",
    "converter": "converter",
}


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print their tables, write results.json and RESULTS.md."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmarks of gtmhub_async, side by side."
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs and items: a smoke check")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="repeatable")
    parser.add_argument("--runs", type=int, default=None, help="runs per variant (default 5)")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave results.json and RESULTS.md"
    )
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    options = Options(quick=args.quick, runs=max(1, runs))
    names = args.only or list(SCENARIOS)
    env = environment()
    print(
        f"{env['date']}  {env['machine']} ({env['cpu']})  nproc {env['nproc']}  "
        f"Python {env['python']}  commit {env['commit']}"
    )
    started = time.perf_counter()
    results: list[ScenarioResult] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{SCENARIOS[name]}")
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        result: ScenarioResult = module.run(options)
        result.seconds = round(time.perf_counter() - t0, 1)
        result.date = env["date"]
        results.append(result)
        print(f"## {result.title}  ({result.seconds:.0f} s)")
        print("\n".join(table_lines(result)))
        for line in target_lines(result) + [f"- {n}" for n in result.notes]:
            print(line)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.quick or args.no_write:
        print("(--quick and --no-write leave results.json and RESULTS.md as they are)")
    else:
        write_results(env, results, ".venv/bin/python -m benchmarks", merge=bool(args.only))
        print(f"wrote {BENCH_DIR / 'results.json'} and {BENCH_DIR / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "child":
        _child_main(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(main())
