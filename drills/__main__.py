"""``python -m drills [NAME ...] [--docs | --no-docs]``: run the fault drills.

Each drill runs in a temporary directory of its own and prints what it did and what it
checked; the run ends with a summary and fails (exit status 1) if any check failed or a
drill could not finish. A run of every drill writes ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from . import flood, hostile_input, kill_postgres, kill_sqlite, postgres_restart, webhook_outage
from ._docs import write
from ._drill import Result, mark

DRILLS: dict[str, ModuleType] = {
    "kill-sqlite": kill_sqlite,
    "kill-postgres": kill_postgres,
    "postgres-restart": postgres_restart,
    "webhook-outage": webhook_outage,
    "flood": flood,
    "hostile-input": hostile_input,
}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def drill(name: str) -> Result:
    module = DRILLS[name]
    result = Result(name, module.TITLE)
    print(f"\n== {name}: {module.TITLE}", flush=True)

    def say(line: str) -> None:
        result.did.append(line)
        print(f"   did: {line}", flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"handrail-drill-{name}-") as tmp:
        try:
            outcome = asyncio.run(module.run(Path(tmp), say))
            result.checks = module.checks(outcome)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    result.seconds = time.perf_counter() - started
    for c in result.checks:
        print(f"   {mark(c.ok)} {c.what}" + (f": {c.detail}" if c.detail else ""), flush=True)
    if result.error:
        print(f"   FAIL the drill could not finish: {result.error}", flush=True)
    print(f"   {name}: {'passed' if result.ok else 'FAILED'} in {result.seconds:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m drills", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"drills to run (default all: {', '.join(DRILLS)})"
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        help=f"write {DOCS.name} (default: when every drill runs)",
    )
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in DRILLS]
    if unknown:
        parser.error(f"no drill {', '.join(unknown)}; there are {', '.join(DRILLS)}")
    names = args.names or list(DRILLS)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    results = [drill(name) for name in names]
    total = time.perf_counter() - started

    print("\nsummary")
    for r in results:
        print(f"  {mark(r.ok)} {r.name:<18} {r.title} ({r.seconds:.0f} s)")
    print(f"{sum(r.ok for r in results)} of {len(results)} drills passed in {total:.0f} s")
    if args.docs if args.docs is not None else not args.names:
        about = {name: getattr(DRILLS[name], "ABOUT", DRILLS[name].__doc__) for name in names}
        write(results, about, at, total, DOCS)
        print(f"wrote {DOCS}")
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
