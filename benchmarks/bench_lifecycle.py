"""Throughput of the full judgment lifecycle: create → claim → submit → verified.

Each store (MemoryStore, a SQLite file, PostgreSQL) runs the lifecycle for a fixed span of
time, from one coroutine and from 16 at once (each with its own reviewer). The figure is
completed lifecycles per second, the median of three turns; the anchor is MemoryStore in
the same mode, measured in the same run (for MemoryStore itself, concurrent is compared
with sequential). PostgreSQL rows read "skipped (no PostgreSQL)" without a server.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack

from _common import (
    AGENT,
    NO_POSTGRES,
    STORE_LABELS,
    Row,
    StoreKind,
    open_store,
    postgres_available,
    ratio,
    reviewer,
    row,
    table,
)
from handrail import Engine, Principal, Status

BENCH = "lifecycle"
Rates = dict[int, float]  # tasks per second by number of concurrent coroutines
STORES: tuple[StoreKind, ...] = ("memory", "sqlite", "postgres")
MODES = (1, 16)  # coroutines running lifecycles at once
ROUNDS = 3
WARMUP = 20
JUDGMENT = {
    "kind": "judgment",
    "output_schema": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}},
    },
}


async def lifecycle(engine: Engine, worker: Principal) -> None:
    task = await engine.create(AGENT, JUDGMENT)
    await engine.claim(worker, task.id)
    done = await engine.submit(worker, task.id, {"ok": True})
    if done.status is not Status.VERIFIED:
        raise RuntimeError(f"task {task.id} ended {done.status}, expected verified")


async def _worker(engine: Engine, worker: Principal, until: float) -> int:
    count = 0
    while time.perf_counter() < until:
        await lifecycle(engine, worker)
        count += 1
    return count


async def throughput(engine: Engine, workers: int, seconds: float) -> float:
    """Lifecycles per second with ``workers`` coroutines looping for ``seconds``."""
    started = time.perf_counter()
    until = started + seconds
    counts = await asyncio.gather(
        *(_worker(engine, reviewer(f"reviewer-{i}"), until) for i in range(workers))
    )
    return sum(counts) / (time.perf_counter() - started)


async def measure(kinds: tuple[StoreKind, ...], seconds: float) -> dict[StoreKind, Rates]:
    """Median tasks per second by store and number of coroutines.

    The stores are measured in turns, ``ROUNDS`` times over, so a change in the machine's
    load during the run touches every store alike.
    """
    samples: dict[StoreKind, dict[int, list[float]]] = {
        kind: {n: [] for n in MODES} for kind in kinds
    }
    async with AsyncExitStack() as stack:
        engines = {
            kind: Engine(await stack.enter_async_context(open_store(kind))) for kind in kinds
        }
        for engine in engines.values():
            await asyncio.gather(*(lifecycle(engine, reviewer(f"w{i}")) for i in range(WARMUP)))
        for _ in range(ROUNDS):
            for n in MODES:
                for kind, engine in engines.items():
                    samples[kind][n].append(await throughput(engine, n, seconds / ROUNDS))
    return {
        kind: {n: statistics.median(s) for n, s in by_n.items()} for kind, by_n in samples.items()
    }


def _anchor(kind: StoreKind, n: int, memory: Rates) -> tuple[str, float | None]:
    if kind != "memory":
        return f"MemoryStore {_mode(n)}", memory[n]
    if n != 1:
        return "MemoryStore sequential", memory[1]
    return "", None


def _mode(n: int) -> str:
    return "sequential" if n == 1 else f"{n} concurrent"


async def run(quick: bool) -> list[Row]:
    seconds = 0.9 if quick else 6.0  # per store and mode, split over the rounds
    kinds = STORES if await postgres_available() else tuple(k for k in STORES if k != "postgres")
    rates = await measure(kinds, seconds)
    rows: list[Row] = []
    for kind in STORES:
        for n in MODES:
            figure = f"{STORE_LABELS[kind]}: lifecycle create→verified, {_mode(n)}"
            if kind not in rates:
                rows.append(row(BENCH, figure, None, "tasks/s", note=NO_POSTGRES))
                continue
            anchor, base = _anchor(kind, n, rates["memory"])
            rate = rates[kind][n]
            rows.append(
                row(
                    BENCH,
                    figure,
                    rate,
                    "tasks/s",
                    anchor=anchor,
                    ratio=ratio(rate, base),
                    chart="lifecycle",
                    label=STORE_LABELS[kind],
                    series=_mode(n),
                )
            )
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
