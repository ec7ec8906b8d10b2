"""How fast a blocked ``engine.wait`` learns of a decision, with many waiters at once.

For each store: create N review tasks, park one ``engine.wait`` per task (N at once), then
decide the tasks one by one. For each decision record

- decide → woken: from the start of ``decide()`` to that task's waiter returning;
- returned → woken: from ``decide()`` returning to the waiter returning (the waker's
  hand-off plus the waiter's re-read of the task).

Each of these is anchored to the same figure with a single waiter parked at a time, so
the ratio shows what the crowd of waiters costs. The notified figures are then compared
with polling, measured on the same engine in the same run: a few waiters that read their
task every 0.2 s instead of being notified; and clients reading it every 1 s (as
Humancheck's server polls), 2 s (HumanRail SDK's default) and 3 s (HumanLayer SDK's), 30
per interval, each starting at a random phase, their tasks decided one after another in
random order once they all poll (not run with ``--quick``, whose HTTP benchmark polls the
same way over HTTP).

The engine's ``wait_backstop`` (each waiter re-reads its task every 5 s, as a safety net)
is raised for those figures so that only notifications wake the waiters. A last pair of
rows keeps the default: the same crowd of waiters, decisions paced over more than one
backstop period, so the waiters' periodic re-reads (all parked at once, so all due at
once) land among the decisions; anchored to the same figure with the backstop raised
(not run with ``--quick``: it takes over a backstop period per store).
"""

from __future__ import annotations

import asyncio
import inspect
import random
import statistics
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from _common import (
    AGENT,
    STORE_LABELS,
    Row,
    StoreKind,
    open_store,
    percentile,
    ratio,
    reviewer,
    row,
    table,
)
from handrail import Decision, Engine, LocalWaker, Status
from handrail.wake import Subscription

BENCH = "wakeup"
STORES: tuple[StoreKind, ...] = ("memory", "sqlite")
REVIEW = {"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}}
POLL_INTERVAL = 0.2
SDK_POLLERS = ((1.0, "Humancheck server"), (2.0, "HumanRail SDK"), (3.0, "HumanLayer SDK"))
WARMUP = 20
NO_BACKSTOP = 3600.0
DEFAULT_BACKSTOP: float = inspect.signature(Engine).parameters["wait_backstop"].default
PACE = 0.05  # seconds between decisions while the default backstop is on


class _ParkedSubscription:
    """A subscription that tells its waker while it is blocked in ``wait``."""

    def __init__(self, owner: ParkingWaker, inner: Subscription) -> None:
        self._owner = owner
        self._inner = inner

    async def wait(self, timeout: float | None = None) -> bool:
        self._owner.park(+1)
        try:
            return await self._inner.wait(timeout)
        finally:
            self._owner.park(-1)

    def close(self) -> None:
        self._inner.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ParkingWaker:
    """``LocalWaker`` that can say when a given number of waiters are parked, so the
    benchmark starts deciding only once every waiter is blocked (no guessed sleep)."""

    def __init__(self) -> None:
        self._local = LocalWaker()
        self.parked = 0
        self._target = 0
        self._reached = asyncio.Event()

    def subscribe(self, channels: Collection[str]) -> _ParkedSubscription:
        return _ParkedSubscription(self, self._local.subscribe(channels))

    async def publish(self, channels: Collection[str]) -> None:
        await self._local.publish(channels)

    async def aclose(self) -> None:
        await self._local.aclose()

    def park(self, delta: int) -> None:
        self.parked += delta
        if self._target and self.parked >= self._target:
            self._reached.set()

    async def until_parked(self, count: int, timeout: float = 120.0) -> None:
        self._target = count
        self._reached.clear()
        if self.parked < count:
            await asyncio.wait_for(self._reached.wait(), timeout)
        self._target = 0


async def _notified(engine: Engine, task_id: str) -> float:
    task = await engine.wait(AGENT, task_id)
    woke = time.perf_counter()
    if task.status is not Status.VERIFIED:
        raise RuntimeError(f"task {task_id} ended {task.status}, expected verified")
    return woke


async def _polling(engine: Engine, task_id: str, interval: float, phase: float) -> float:
    await asyncio.sleep(phase)
    while True:
        task = await engine.get(AGENT, task_id)
        if task.terminal:
            return time.perf_counter()
        await asyncio.sleep(interval)


async def _decide_all(
    engine: Engine, ids: list[str], watchers: list[asyncio.Task[float]]
) -> tuple[list[float], list[float]]:
    """Decide the tasks one at a time; for each, the two latencies in seconds."""
    alice = reviewer("alice")
    from_start: list[float] = []
    from_return: list[float] = []
    for task_id, watcher in zip(ids, watchers, strict=True):
        started = time.perf_counter()
        await engine.decide(alice, task_id, Decision.approve())
        returned = time.perf_counter()
        woke = await watcher
        from_start.append(woke - started)
        from_return.append(woke - returned)
    return from_start, from_return


async def _sdk_polling(engine: Engine, per: int) -> dict[float, list[float]]:
    """decide→seen in seconds for ``per`` clients polling at each of ``SDK_POLLERS``: all
    start at a random phase; once all poll, their tasks are decided in random order."""
    rng = random.Random(2)
    plan = [interval for _ in range(per) for interval, _ in SDK_POLLERS]
    ids = await _create(engine, len(plan))
    polls = [
        asyncio.create_task(_polling(engine, i, interval, rng.uniform(0, interval)))
        for i, interval in zip(ids, plan, strict=True)
    ]
    await asyncio.sleep(max(plan))
    order = list(range(len(ids)))
    rng.shuffle(order)
    alice = reviewer("alice")
    sent: dict[int, float] = {}
    for i in order:
        sent[i] = time.perf_counter()
        await engine.decide(alice, ids[i], Decision.approve())
    seen = await asyncio.gather(*polls)
    out: dict[float, list[float]] = {interval: [] for interval, _ in SDK_POLLERS}
    for i, interval in enumerate(plan):
        out[interval].append(seen[i] - sent[i])
    return out


async def _create(engine: Engine, n: int) -> list[str]:
    return [(await engine.create(AGENT, REVIEW)).id for _ in range(n)]


async def _park(
    engine: Engine, waker: ParkingWaker, n: int
) -> tuple[list[str], list[asyncio.Task[float]]]:
    """N new review tasks, each with a waiter blocked on it."""
    ids = await _create(engine, n)
    watchers = [asyncio.create_task(_notified(engine, i)) for i in ids]
    await waker.until_parked(n)
    return ids, watchers


@dataclass
class Samples:
    """Latencies in seconds for one store."""

    crowd_start: list[float] = field(default_factory=list)  # N waiters parked at once
    crowd_return: list[float] = field(default_factory=list)
    alone_start: list[float] = field(default_factory=list)  # one waiter parked at a time
    alone_return: list[float] = field(default_factory=list)
    polled: list[float] = field(default_factory=list)
    sdk: dict[float, list[float]] = field(default_factory=dict)  # by polling interval
    backstop: list[float] = field(default_factory=list)  # crowd, default wait_backstop


async def _alone(engine: Engine, waker: ParkingWaker, n: int, out: Samples) -> None:
    """``n`` decisions, each with only its own waiter parked."""
    for _ in range(n):
        start, ret = await _decide_all(engine, *await _park(engine, waker, 1))
        out.alone_start += start
        out.alone_return += ret


async def measure(kind: StoreKind, waiters: int, alone: int, pollers: int, per_sdk: int) -> Samples:
    out = Samples()
    async with open_store(kind) as store:
        waker = ParkingWaker()
        engine = Engine(store, waker=waker, wait_backstop=NO_BACKSTOP)
        await _decide_all(engine, *await _park(engine, waker, WARMUP))  # discarded

        # The single-waiter anchor is taken half before and half after the crowd, so a
        # drift in the machine's speed during the run touches both alike.
        await _alone(engine, waker, alone // 2, out)
        out.crowd_start, out.crowd_return = await _decide_all(
            engine, *await _park(engine, waker, waiters)
        )
        await _alone(engine, waker, alone - alone // 2, out)

        rng = random.Random(1)
        ids = await _create(engine, pollers)
        polls = [
            asyncio.create_task(_polling(engine, i, POLL_INTERVAL, rng.uniform(0, POLL_INTERVAL)))
            for i in ids
        ]
        out.polled, _ = await _decide_all(engine, ids, polls)
        if per_sdk:
            out.sdk = await _sdk_polling(engine, per_sdk)
    return out


async def measure_backstop(kind: StoreKind, waiters: int) -> list[float]:
    """decide→woken with the default backstop, decisions paced past its first round."""
    async with open_store(kind) as store:
        waker = ParkingWaker()
        engine = Engine(store, waker=waker)
        await _decide_all(engine, *await _park(engine, waker, WARMUP))  # discarded
        ids, watchers = await _park(engine, waker, waiters)
        parked = time.perf_counter()
        latencies: list[float] = []
        for i, (task_id, watcher) in enumerate(zip(ids, watchers, strict=True)):
            if time.perf_counter() - parked > 1.5 * DEFAULT_BACKSTOP:
                for left in watchers[i:]:
                    left.cancel()
                await asyncio.gather(*watchers[i:], return_exceptions=True)
                break
            start, _ = await _decide_all(engine, [task_id], [watcher])
            latencies += start
            await asyncio.sleep(PACE)  # pacing between decisions; not part of any figure
    return latencies


def _stats(samples: list[float]) -> dict[str, float]:
    """p50, p99, max and mean in milliseconds."""
    ms = [s * 1000 for s in samples]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "mean": statistics.fmean(ms),
    }


def _rows(kind: StoreKind, s: Samples, waiters: int) -> list[Row]:
    store = STORE_LABELS[kind]
    rows: list[Row] = []
    for what, crowd, alone, stats in (
        ("decide→woken", s.crowd_start, s.alone_start, ("p50", "p99", "max", "mean")),
        ("returned→woken", s.crowd_return, s.alone_return, ("p50", "p99", "max")),
    ):
        many, one = _stats(crowd), _stats(alone)
        rows += [
            row(
                BENCH,
                f"{store}: {what} {stat}, {waiters:,} waiters",
                many[stat],
                "ms",
                anchor=f"same, 1 waiter ({one[stat]:.3f} ms)",
                ratio=ratio(many[stat], one[stat]),
                **(
                    {"chart": "wakeup", "label": f"in-process engine.wait, {store}", "series": stat}
                    if what == "decide→woken" and stat in ("p50", "p99")
                    else {}
                ),
            )
            for stat in stats
        ]
    for stat in ("p99", "max"):
        figure = (
            f"{store}: decide→woken {stat}, {waiters:,} waiters, "
            f"default wait_backstop ({DEFAULT_BACKSTOP:g} s)"
        )
        if not s.backstop:
            rows.append(row(BENCH, figure, None, "ms", note="not run with --quick"))
            continue
        many, off = _stats(s.backstop), _stats(s.crowd_start)
        rows.append(
            row(
                BENCH,
                figure,
                many[stat],
                "ms",
                anchor=f"same, backstop raised ({off[stat]:.3f} ms)",
                ratio=ratio(many[stat], off[stat]),
            )
        )
    notified = _stats(s.crowd_start)
    polled = _stats(s.polled)["mean"]
    rows.append(
        row(
            BENCH,
            f"{store}: polling every {POLL_INTERVAL:g} s, decide→seen mean "
            f"({len(s.polled)} pollers)",
            polled,
            "ms",
            anchor=f"decide→woken mean, {waiters:,} waiters",
            ratio=ratio(polled, notified["mean"]),
        )
    )
    for interval, who in SDK_POLLERS:
        if interval not in s.sdk:
            figure = f"{store}: polling every {interval:g} s ({who}), decide→seen p50"
            rows.append(row(BENCH, figure, None, "ms", note="not run with --quick"))
            continue
        seen = _stats(s.sdk[interval])
        for stat in ("p50", "p99"):
            rows.append(
                row(
                    BENCH,
                    f"{store}: polling every {interval:g} s ({who}), decide→seen {stat} "
                    f"({len(s.sdk[interval])} pollers)",
                    seen[stat],
                    "ms",
                    anchor=f"decide→woken {stat}, {waiters:,} waiters",
                    ratio=ratio(seen[stat], notified[stat]),
                )
            )
    return rows


async def run(quick: bool) -> list[Row]:
    waiters, alone, pollers, per_sdk = (100, 20, 10, 0) if quick else (1000, 200, 20, 30)
    rows: list[Row] = []
    for kind in STORES:
        samples = await measure(kind, waiters, alone, pollers, per_sdk)
        if not quick:
            samples.backstop = await measure_backstop(kind, waiters)
        rows += _rows(kind, samples, waiters)
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
