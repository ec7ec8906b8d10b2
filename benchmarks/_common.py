"""Shared pieces of the benchmarks: result rows, stores to run on, percentiles, the table.

Rows are plain dicts (``Row``) so ``run.py`` can gather them from every benchmark and
write them as JSON. ``open_store`` yields a fresh, empty store of one kind and removes it
afterwards: a MemoryStore, a SQLite file in a temporary directory, or a PostgreSQL schema
of its own (``HANDRAIL_BENCH_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import asyncpg

from handrail import MemoryStore, Principal, Role, Store
from handrail.store.sql import SqlStore

StoreKind = Literal["memory", "sqlite", "postgres"]
STORE_LABELS: dict[StoreKind, str] = {
    "memory": "MemoryStore",
    "sqlite": "SQLite file",
    "postgres": "PostgreSQL",
}
POSTGRES_URL = os.environ.get(
    "HANDRAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NO_POSTGRES = "skipped (no PostgreSQL)"
ORG = "bench"

AGENT = Principal(org_id=ORG, id="agent", roles=frozenset({Role.REQUESTER}))


def reviewer(name: str = "reviewer") -> Principal:
    return Principal(org_id=ORG, id=name, roles=frozenset({Role.REVIEWER}))


class Row(TypedDict):
    """One printed figure. ``ratio`` is ``value`` over the anchor's value, same run.

    ``chart``, ``label`` and ``series`` place the figure in a picture (``_report.py``):
    the rows sharing a ``chart`` are drawn together, one bar per ``label`` and ``series``
    (p50 and p99, say, or 1 and 2 workers). Rows without them are drawn by benchmark and
    unit. They are optional, so a benchmark may leave them out altogether."""

    bench: str
    figure: str
    value: float | None
    unit: str
    anchor: str
    ratio: float | None
    note: str
    chart: NotRequired[str]
    label: NotRequired[str]
    series: NotRequired[str]


def row(
    bench: str,
    figure: str,
    value: float | None,
    unit: str,
    *,
    anchor: str = "",
    ratio: float | None = None,
    note: str = "",
    chart: str = "",
    label: str = "",
    series: str = "",
) -> Row:
    made = Row(
        bench=bench, figure=figure, value=value, unit=unit, anchor=anchor, ratio=ratio, note=note
    )
    if chart:
        made.update(chart=chart, label=label or figure, series=series)
    return made


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(value: float | None, anchor: float | None) -> float | None:
    if value is None or not anchor:
        return None
    return value / anchor


# ---------------------------------------------------------------- stores

_postgres_ok: bool | None = None


async def postgres_available() -> bool:
    """Whether PostgreSQL answers at ``POSTGRES_URL`` (asked once per process)."""
    global _postgres_ok
    if _postgres_ok is None:
        try:
            conn = await asyncio.wait_for(asyncpg.connect(POSTGRES_URL), 5)
            await conn.close()
            _postgres_ok = True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            _postgres_ok = False
    return _postgres_ok


@asynccontextmanager
async def open_store(kind: StoreKind) -> AsyncIterator[Store]:
    """A fresh, empty store of ``kind``; closed and removed on exit."""
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="handrail-bench-") as tmp:
            store = await SqlStore.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
            try:
                yield store
            finally:
                await store.close()
    else:
        async with _postgres_schema() as schema:
            store = await SqlStore.open(
                POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}}
            )
            try:
                yield store
            finally:
                await store.close()


@asynccontextmanager
async def _postgres_schema() -> AsyncIterator[str]:
    name = f"b_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


# ---------------------------------------------------------------- output


def format_value(r: Row) -> str:
    if r["value"] is None:
        return r["note"] or "n/a"
    v = r["value"]
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3f}"
    return f"{text} {r['unit']}".rstrip()


def format_ratio(r: Row) -> str:
    value = r["ratio"]
    if value is None:
        return ""
    return f"{value:,.2f}x" if value >= 0.01 else f"{value:.2g}x"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table: figure, value, anchor, ratio."""
    header = ("figure", "value", "anchor", "ratio")
    body = [(r["figure"], format_value(r), r["anchor"], format_ratio(r)) for r in rows]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(4)]
    lines = []
    for i, line in enumerate((header, *body)):
        cells = [line[0].ljust(widths[0]), line[1].rjust(widths[1])]
        cells += [line[2].ljust(widths[2]), line[3].rjust(widths[3])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
