"""Throughput of the ledger: deposits, and the money cycle of a paid task.

Each store (MemoryStore, a SQLite file, PostgreSQL) runs two operations for a fixed span of
time, from one coroutine and from 16 at once:

- **deposits**: an admin credits one organisation, a fresh idempotency key each time
  (one posting: external funding → the org);
- **paid cycle**: create a task paying $0.40 (``hold``: the org → the task's escrow),
  claim it and submit the answer (``resolve``: the reward → the worker, the fee → the
  platform), each coroutine with its own reviewer.

The figure is operations per second, the median of three turns (one with ``--quick``),
each counted over a window that opens after a short lead-in; the anchor is MemoryStore
for the same operation and mode, measured in the same run (for MemoryStore itself,
concurrent is compared with sequential). After the runs every store's books must balance.
PostgreSQL rows read "skipped (no PostgreSQL)" without a server.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from _common import (
    AGENT,
    NO_POSTGRES,
    ORG,
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
from handrail import Engine, Money, Principal, Role, Status, Store
from handrail.ledger import Ledger, LedgerEscrow

BENCH = "ledger"
STORES: tuple[StoreKind, ...] = ("memory", "sqlite", "postgres")
MODES = (1, 16)  # coroutines running the operation at once
WARMUP = 20
LEAD_IN = 0.1  # seconds of each turn not counted
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))
DEPOSIT = Money.parse("5.00", "USD")
FUNDS = Money.parse("1000000.00", "USD")  # enough for every paid task of a run
PAID_JUDGMENT = {
    "kind": "judgment",
    "output_schema": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}},
    },
    "payout": {"currency": "USD", "amount": "0.40"},
}
OPERATIONS = {  # name: (figure, unit)
    "deposit": ("deposits", "deposits/s"),
    "cycle": ("paid task hold→resolve (create+claim+submit)", "cycles/s"),
}

Op = Callable[[int], Awaitable[None]]  # one operation, by the coroutine's number
Rates = dict[tuple[str, int], float]  # per second by operation and coroutines


@dataclass
class Books:
    """A ledger and an engine over one store, and the operations to time on it."""

    ledger: Ledger
    engine: Engine

    @classmethod
    async def open(cls, store: Store) -> Books:
        ledger = Ledger(store)
        books = cls(ledger, Engine(store, escrow=LedgerEscrow(ledger)))
        await ledger.deposit(ADMIN, FUNDS, key="funds")
        return books

    def ops(self) -> dict[str, Op]:
        keys = itertools.count()

        async def deposit(n: int) -> None:
            await self.ledger.deposit(ADMIN, DEPOSIT, key=f"deposit-{next(keys)}")

        async def cycle(n: int) -> None:
            worker = reviewer(f"reviewer-{n}")
            task = await self.engine.create(AGENT, PAID_JUDGMENT)
            await self.engine.claim(worker, task.id)
            done = await self.engine.submit(worker, task.id, {"ok": True})
            if done.status is not Status.VERIFIED:
                raise RuntimeError(f"task {task.id} ended {done.status}, expected verified")

        return {"deposit": deposit, "cycle": cycle}

    async def check(self) -> None:
        totals = await self.ledger.totals()
        if any(totals.values()):
            raise RuntimeError(f"the books do not balance: {totals}")


async def throughput(op: Op, workers: int, seconds: float) -> float:
    """Operations per second with ``workers`` coroutines looping: those completed in a
    window of ``seconds`` that opens after a lead-in of ``LEAD_IN`` seconds (in which the
    connection pool grows to the number of coroutines: the store closes connections beyond
    its pool size when they come back, so each turn opens them again)."""
    opens = time.perf_counter() + LEAD_IN
    closes = opens + seconds

    async def loop(n: int) -> int:
        count = 0
        while time.perf_counter() < closes:
            await op(n)
            count += opens <= time.perf_counter() <= closes
        return count

    counts = await asyncio.gather(*(loop(n) for n in range(workers)))
    return sum(counts) / seconds


async def measure(
    kinds: tuple[StoreKind, ...], seconds: float, rounds: int
) -> dict[StoreKind, Rates]:
    """Median operations per second by store, operation and number of coroutines, the
    stores measured in turns (``rounds`` times over) so a change in the machine's load
    touches every store alike."""
    samples: dict[StoreKind, dict[tuple[str, int], list[float]]] = {
        kind: {(name, n): [] for name in OPERATIONS for n in MODES} for kind in kinds
    }
    async with AsyncExitStack() as stack:
        books = {
            kind: await Books.open(await stack.enter_async_context(open_store(kind)))
            for kind in kinds
        }
        ops = {kind: b.ops() for kind, b in books.items()}
        for by_name in ops.values():
            for op in by_name.values():
                await asyncio.gather(*(op(n) for n in range(WARMUP)))
        for _ in range(rounds):
            for name in OPERATIONS:
                for n in MODES:
                    for kind in kinds:
                        rate = await throughput(ops[kind][name], n, seconds / rounds)
                        samples[kind][(name, n)].append(rate)
        for b in books.values():
            await b.check()
    return {
        kind: {key: statistics.median(s) for key, s in by_key.items()}
        for kind, by_key in samples.items()
    }


def _mode(n: int) -> str:
    return "sequential" if n == 1 else f"{n} concurrent"


def _anchor(kind: StoreKind, name: str, n: int, memory: Rates) -> tuple[str, float | None]:
    if kind != "memory":
        return f"MemoryStore {_mode(n)}", memory[(name, n)]
    if n != 1:
        return "MemoryStore sequential", memory[(name, 1)]
    return "", None


async def run(quick: bool) -> list[Row]:
    # seconds counted per store, operation and mode, split over the rounds
    seconds, rounds = (0.8, 1) if quick else (4.5, 3)
    kinds = STORES if await postgres_available() else tuple(k for k in STORES if k != "postgres")
    rates = await measure(kinds, seconds, rounds)
    rows: list[Row] = []
    for name, (what, unit) in OPERATIONS.items():
        for kind in STORES:
            for n in MODES:
                figure = f"{STORE_LABELS[kind]}: ledger {what}, {_mode(n)}"
                if kind not in rates:
                    rows.append(row(BENCH, figure, None, unit, note=NO_POSTGRES))
                    continue
                anchor, base = _anchor(kind, name, n, rates["memory"])
                rate = rates[kind][(name, n)]
                rows.append(
                    row(
                        BENCH,
                        figure,
                        rate,
                        unit,
                        anchor=anchor,
                        ratio=ratio(rate, base),
                        chart="ledger",
                        label=f"{STORE_LABELS[kind]}: {what}",
                        series=_mode(n),
                    )
                )
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
