"""Run every benchmark and print one table: figure, value, anchor, ratio.

    uv run --frozen --no-sync python benchmarks/run.py [--quick] [--only NAME] [--no-docs]

``--quick`` uses smaller runs (under two minutes in all, for CI smoke runs). Figures are
printed, never asserted; each ratio compares two figures measured in this same run, so a
busy machine shifts both. The rows are also written to ``benchmarks/results/latest.json``
(git-ignored); a full run of every benchmark also writes ``docs/benchmarks.md`` and its
charts (``docs/img/bench-*.png``), which ``--docs`` or ``--no-docs`` decide otherwise;
``--redraw`` writes them again from the last run's results, measuring nothing.

A benchmark is a module with ``async def run(quick: bool) -> list[Row]`` registered in
``BENCHMARKS``; its docstring describes it on the docs page, and its rows are tabled and
drawn without anything else to add (``_report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import bench_crewai
import bench_delivery
import bench_http
import bench_import
import bench_langchain
import bench_langgraph
import bench_ledger
import bench_lifecycle
import bench_policy
import bench_storage
import bench_ui
import bench_verification
import bench_wakeup
from _common import Row, table
from _report import write as write_docs

Bench = Callable[[bool], Awaitable[list[Row]]]
BENCHMARKS: dict[str, Bench] = {
    "wakeup": bench_wakeup.run,
    "import": bench_import.run,
    "lifecycle": bench_lifecycle.run,
    "storage": bench_storage.run,
    "ledger": bench_ledger.run,
    "verification": bench_verification.run,
    "policy": bench_policy.run,
    "http": bench_http.run,
    "ui": bench_ui.run,
    "langchain": bench_langchain.run,
    "langgraph": bench_langgraph.run,
    "delivery": bench_delivery.run,
    "crewai": bench_crewai.run,
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DOCS = RESULTS.parents[2] / "docs" / "benchmarks.md"
IMAGES = DOCS.parent / "img"


async def run_all(names: list[str], quick: bool) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        started = time.perf_counter()
        rows += await BENCHMARKS[name](quick)
        seconds[name] = time.perf_counter() - started
    return rows, seconds


def about(names: list[str]) -> dict[str, str]:
    """Each benchmark's module docstring, for the docs page."""
    return {name: inspect.getmodule(BENCHMARKS[name]).__doc__ or "" for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under two minutes")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark"
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        help=f"write {DOCS.name} and its charts (default: on a full run of every benchmark)",
    )
    parser.add_argument(
        "--redraw", action="store_true", help=f"only write the docs again from {RESULTS.name}"
    )
    args = parser.parse_args()
    if args.redraw:
        last = json.loads(RESULTS.read_text())
        names = list(dict.fromkeys(r["bench"] for r in last["rows"]))
        about_them = about([n for n in names if n in BENCHMARKS])
        for path in write_docs(last["rows"], last, about_them, DOCS, IMAGES):
            print(f"wrote {path}")
        return
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    docs = args.docs if args.docs is not None else not args.quick and not args.only

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.perf_counter()
    rows, seconds = asyncio.run(run_all(names, args.quick))
    total = time.perf_counter() - started

    print()
    print(table(rows))
    print()
    timings = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    print(f"{'quick' if args.quick else 'full'} run: {total:.1f} s ({timings})")

    RESULTS.parent.mkdir(exist_ok=True)
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "load": load,
        "seconds": {"total": total, **seconds},
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")
    if docs:
        for path in write_docs(rows, report, about(names), DOCS, IMAGES):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
