"""The durable path against the storage's own speed: an in-process review ``create`` on each
store beside one raw transaction of the same shape on the same database, the statements
each operation sends, and decisions by one reviewer against decisions by many.

Ceilings, measured in the same run:

- **sqlite3**: one transaction of three inserts (a task-sized row, an event, an audit
  entry) through the standard module, in WAL mode with ``synchronous=NORMAL``, as the
  store runs it;
- **asyncpg**: the same three inserts in one transaction on one connection.

The statement counts are exact (``tests/core/test_statement_counts.py`` pins them). The
decision rows run 16 coroutines deciding 16 × ``PER_CLIENT`` reviews, all as one reviewer
or as 16; *retries* counts the write transactions the engine had to run again after a
conflict, per decision.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

import handrail.engine._kernel as kernel
from _common import (
    AGENT,
    NO_POSTGRES,
    POSTGRES_URL,
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
from handrail import Decision, Engine, Principal
from handrail.store.sql import SqlStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.core._statements import counted

BENCH = "storage"
REVIEW: dict[str, Any] = {
    "kind": "review",
    "action": {"name": "send_email", "args": {"to": "a@example.com", "subject": "hello"}},
}
JUDGMENT: dict[str, Any] = {
    "kind": "judgment",
    "output_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
}
BODY = json.dumps({"payload": "x" * 1200})  # about a task row's size
TABLES = ("raw_tasks", "raw_events", "raw_audit")
CLIENTS = 16
PER_CLIENT = 20


async def _median_us(op: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(50, n)):
        await op()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await op()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def _sqlite_ceiling(n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="handrail-bench-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for name in TABLES:
            conn.execute(f"CREATE TABLE {name} (id TEXT PRIMARY KEY, org TEXT, body TEXT)")
        times = []
        for i in range(n + 50):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for name in TABLES:
                conn.execute(f"INSERT INTO {name} VALUES (?, ?, ?)", (str(uuid.uuid4()), "o", BODY))
            conn.execute("COMMIT")
            if i >= 50:
                times.append(time.perf_counter() - started)
        conn.close()
    return statistics.median(times) * 1e6


async def _postgres_ceiling(n: int) -> float:
    conn = await asyncpg.connect(POSTGRES_URL)
    schema = f"raw_{uuid.uuid4().hex[:12]}"
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        for name in TABLES:
            await conn.execute(f"CREATE TABLE {name} (id TEXT PRIMARY KEY, org TEXT, body TEXT)")

        async def once() -> None:
            async with conn.transaction():
                for name in TABLES:
                    await conn.execute(
                        f"INSERT INTO {name} VALUES ($1, $2, $3)", str(uuid.uuid4()), "o", BODY
                    )

        return await _median_us(once, n)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def _creates(kind: StoreKind, n: int) -> float:
    async with open_store(kind) as store:
        engine = Engine(store)
        return await _median_us(lambda: engine.create(AGENT, REVIEW), n)


async def _statements(kind: StoreKind) -> dict[str, int]:
    async with open_store(kind) as store:
        assert isinstance(store, SqlStore)
        engine = Engine(store)
        alice = reviewer("alice")
        warm = await engine.create(AGENT, REVIEW)
        await engine.decide(alice, warm.id, Decision.approve())
        warm = await engine.create(AGENT, JUDGMENT)
        await engine.claim(alice, warm.id)
        await engine.submit(alice, warm.id, {"ok": True})
        found: dict[str, int] = {}

        async def count(op: str, run: Callable[[], Awaitable[Any]]) -> Any:
            with counted(store) as sent:
                done = await run()
            found[op] = len(sent)
            return done

        task = await count("create", lambda: engine.create(AGENT, REVIEW))
        keyed = {**REVIEW, "idempotency_key": "k"}
        await count("keyed create", lambda: engine.create(AGENT, keyed))
        await count("decision", lambda: engine.decide(alice, task.id, Decision.approve()))
        judged = await engine.create(AGENT, JUDGMENT)
        await count("claim", lambda: engine.claim(alice, judged.id))
        await count("submit", lambda: engine.submit(alice, judged.id, {"ok": True}))
        return found


async def _decisions(kind: StoreKind, one_reviewer: bool) -> tuple[float, float]:
    """Decisions per second by 16 coroutines, and retries per decision."""
    async with open_store(kind) as store:
        engine = Engine(store)
        names = ["one"] * CLIENTS if one_reviewer else [f"r{i}" for i in range(CLIENTS)]
        for name in set(names):  # each reviewer's record exists before the race
            warm = await engine.create(AGENT, REVIEW)
            await engine.decide(reviewer(name), warm.id, Decision.approve())
        tasks = [await engine.create(AGENT, REVIEW) for _ in range(CLIENTS * PER_CLIENT)]
        retries = 0
        real = kernel.backoff

        async def counting(attempt: int) -> None:
            nonlocal retries
            retries += 1
            await real(attempt)

        async def decide(who: Principal, mine: list[str]) -> None:
            for task_id in mine:
                await engine.decide(who, task_id, Decision.approve())

        shares = [[t.id for t in tasks[i::CLIENTS]] for i in range(CLIENTS)]
        kernel.backoff = counting
        try:
            started = time.perf_counter()
            await asyncio.gather(
                *(decide(reviewer(n), share) for n, share in zip(names, shares, strict=True))
            )
            rate = len(tasks) / (time.perf_counter() - started)
        finally:
            kernel.backoff = real
        return rate, retries / len(tasks)


async def run(quick: bool) -> list[Row]:
    n = 300 if quick else 2000
    pg = await postgres_available()
    rows: list[Row] = []
    sqlite_raw = _sqlite_ceiling(n)
    pg_raw = await _postgres_ceiling(n) if pg else None
    rows.append(
        row(
            BENCH,
            "sqlite3: one transaction of three inserts",
            sqlite_raw,
            "µs",
            anchor="the ceiling for SQLite rows below",
        )
    )
    rows.append(
        row(
            BENCH,
            "asyncpg: one transaction of three inserts",
            pg_raw,
            "µs",
            anchor="the ceiling for PostgreSQL rows below",
            note="" if pg else NO_POSTGRES,
        )
    )
    ceilings: dict[StoreKind, tuple[str, float | None]] = {
        "memory": ("sqlite3 transaction", sqlite_raw),
        "sqlite": ("sqlite3 transaction", sqlite_raw),
        "postgres": ("asyncpg transaction", pg_raw),
    }
    for kind in ("memory", "sqlite", "postgres"):
        figure = f"{STORE_LABELS[kind]}: in-process review create, median"
        if kind == "postgres" and not pg:
            rows.append(row(BENCH, figure, None, "µs", note=NO_POSTGRES))
            continue
        took = await _creates(kind, n)
        name, base = ceilings[kind]
        rows.append(
            row(
                BENCH,
                figure,
                took,
                "µs",
                anchor=f"{name} ({base:,.0f} µs)" if base else "",
                ratio=ratio(took, base),
                chart="storage-create",
                label=STORE_LABELS[kind],
                series="create",
            )
        )
    for kind in ("sqlite", "postgres"):
        if kind == "postgres" and not pg:
            continue
        for op, count in (await _statements(kind)).items():
            rows.append(
                row(
                    BENCH,
                    f"{STORE_LABELS[kind]}: statements per {op}",
                    count,
                    "statements",
                    note="pinned by tests/core/test_statement_counts.py",
                )
            )
        many, many_retries = await _decisions(kind, one_reviewer=False)
        one, one_retries = await _decisions(kind, one_reviewer=True)
        label = STORE_LABELS[kind]
        rows += [
            row(BENCH, f"{label}: 16 concurrent decisions, 16 reviewers", many, "decisions/s"),
            row(
                BENCH,
                f"{label}: 16 concurrent decisions, one reviewer",
                one,
                "decisions/s",
                anchor=f"16 reviewers ({many:,.0f}/s)",
                ratio=ratio(one, many),
            ),
            row(BENCH, f"{label}: retries per decision, 16 reviewers", many_retries, "retries"),
            row(BENCH, f"{label}: retries per decision, one reviewer", one_retries, "retries"),
        ]
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
