"""Run every benchmark and print one table: figure, value, anchor, ratio.

    uv run --frozen --no-sync python benchmarks/run.py [--quick]

``--quick`` uses smaller runs (well under a minute). Figures are printed, never asserted;
each ratio compares two figures measured in this same run, so a busy machine shifts both.
The rows are also written to ``benchmarks/results/latest.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import bench_http
import bench_ledger
import bench_lifecycle
import bench_policy
import bench_verification
import bench_wakeup
from _common import Row, table

Bench = Callable[[bool], Awaitable[list[Row]]]
BENCHMARKS: dict[str, Bench] = {
    "wakeup": bench_wakeup.run,
    "lifecycle": bench_lifecycle.run,
    "ledger": bench_ledger.run,
    "verification": bench_verification.run,
    "policy": bench_policy.run,
    "http": bench_http.run,
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


async def run_all(quick: bool) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for name, bench in BENCHMARKS.items():
        print(f"running {name} ...", flush=True)
        started = time.perf_counter()
        rows += await bench(quick)
        seconds[name] = time.perf_counter() - started
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, well under a minute")
    args = parser.parse_args()

    started = time.perf_counter()
    rows, seconds = asyncio.run(run_all(args.quick))
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
        "machine": platform.machine(),
        "seconds": {"total": total, **seconds},
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
