"""Cold start: how long ``import handrail`` takes in a fresh interpreter.

- **``import handrail``**: ``python -c "import handrail"`` in a new subprocess, wall time,
  best of N (the least disturbed run on a shared machine), against the ceiling of the
  same interpreter doing nothing (``python -c pass``): the ratio is the cost of the
  import in interpreter starts. Target: at most 0.3 s. ``import handrail`` loads neither
  numpy, httpx (which brings click, rich and pygments), nor jsonschema: they are imported
  when first used (pinned by ``tests/core/test_import_cost.py``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from _common import Row, ratio, row, table

BENCH = "import"


def _best(code: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def measure(runs: int) -> list[Row]:
    bare = _best("pass", runs)
    cold = _best("import handrail", runs)
    return [
        row(BENCH, "bare interpreter start (python -c pass)", bare * 1000, "ms"),
        row(
            BENCH,
            f"import handrail, cold, best of {runs}",
            cold * 1000,
            "ms",
            anchor="bare interpreter start",
            ratio=ratio(cold, bare),
            note="target ≤ 300 ms",
        ),
    ]


async def run(quick: bool) -> list[Row]:
    return await asyncio.to_thread(measure, 5 if quick else 15)


if __name__ == "__main__":
    print(table(asyncio.run(run("--quick" in sys.argv))))
