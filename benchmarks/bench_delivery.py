"""A decision delivered to its paused LangGraph thread by a running resumer, on the durable
setup: the engine on a SQLite file (``Handrail.local(path)``) and ``SqliteSaver`` on
another file, ``HandrailResumer.run()`` following the event stream.

The reviewer decides through a second engine on the same file (as a reviewer's process
would: the resumer hears of it through the change feed). The graph is ``review -> pay``
(``pay`` a no-op). Two figures, p50 and p99 over many threads:

- decision → thread finished: from ``decide`` returning to the resumer's run of the
  thread having finished (``pay`` done);
- decision before the pause: the graph is held between creating its task and
  checkpointing the pause, the decision lands and the resumer has seen it (``waiting``);
  then the graph goes on: from the moment it is let go to the thread finished.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from _common import Row, percentile, row, table
from handrail import Decision, Handrail
from handrail_langgraph import HandrailResumer, Resumption, review_node

BENCH = "delivery"
ACTION = {"name": "pay", "args": {"to": "carol", "amount": 100}}
CHART = "decision to thread finished (SQLite engine + SqliteSaver)"


class State(TypedDict, total=False):
    action: dict[str, Any]
    paid: bool


class _HeldTasks:
    """``client.tasks`` whose ``create`` calls ``after_create`` with the task it made."""

    def __init__(self, tasks: Any, after_create: Callable[[Any], None]) -> None:
        self._tasks, self._after = tasks, after_create

    def create(self, spec: Any) -> Any:
        task = self._tasks.create(spec)
        self._after(task)
        return task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tasks, name)


class _Client:
    def __init__(self, client: Handrail, tasks: Any) -> None:
        self._client, self.tasks = client, tasks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _graph(client: Any, saver: SqliteSaver) -> Any:
    builder: StateGraph[State] = StateGraph(State)
    builder.add_node("review", review_node(client, action="action", on_approve="pay"))
    builder.add_node("pay", lambda state: {"paid": True})
    builder.add_edge(START, "review")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


class _Watch:
    """The resumer's outcomes by task: an event per (task, status)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def event(self, task_id: str, status: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault((task_id, status), threading.Event())

    def __call__(self, outcome: Resumption) -> None:
        if outcome.task_id is not None:
            self.event(outcome.task_id, outcome.status).set()


def _measure(n: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="handrail-bench-") as tmp:
        db = Path(tmp) / "handrail.db"
        conn = sqlite3.connect(Path(tmp) / "checkpoints.db", check_same_thread=False)
        with Handrail.local(db) as hr, Handrail.local(db) as other:
            saver = SqliteSaver(conn)
            watch = _Watch()
            held: list[threading.Event] = []  # the next create waits on it, once
            made: list[str] = []

            def after_create(task: Any) -> None:
                made.append(task.id)
                if held:
                    held.pop().wait(30)

            graph = _graph(_Client(hr, _HeldTasks(hr.tasks, after_create)), saver)
            resumer = HandrailResumer(graph, hr, on_resumption=watch, reconcile_every=None)
            follower = threading.Thread(target=resumer.run, daemon=True)
            follower.start()
            assert resumer.connected.wait(30)
            alice = other.as_reviewer("alice")
            plain, race = [], []
            try:
                for i in range(n + 5):
                    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
                    paused = graph.invoke({"action": ACTION}, config, version="v2")
                    task_id = paused.interrupts[0].value["handrail"]["task_id"]
                    finished = watch.event(task_id, "resumed")
                    alice.tasks.decide(task_id, Decision.approve())
                    started = time.perf_counter()
                    assert finished.wait(30), "the resumer did not resume"
                    if i >= 5:
                        plain.append((time.perf_counter() - started) * 1000)
                for _ in range(n // 2 + 3):
                    race.append(_race(graph, alice, watch, held, made))
            finally:
                resumer.stop()
                follower.join(30)
        conn.close()
    race = race[3:]
    rows = []
    for label, samples in (
        ("decision → thread finished", plain),
        ("decision before the pause: pause checkpointed → thread finished", race),
    ):
        for q in (50, 99):
            rows.append(
                row(
                    BENCH,
                    f"{label}, resumer running, p{q}",
                    percentile(samples, q),
                    "ms",
                    note=f"{len(samples)} threads",
                    chart=CHART,
                    label=label,
                    series=f"p{q}",
                )
            )
    return rows


def _race(
    graph: Any,
    alice: Handrail,
    watch: _Watch,
    held: list[threading.Event],
    made: list[str],
) -> float:
    """One decision that lands before its pause is checkpointed: ms from the graph let go
    to the thread finished."""
    gate = threading.Event()
    made.clear()
    held.append(gate)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    runner = threading.Thread(target=lambda: graph.invoke({"action": ACTION}, config, version="v2"))
    runner.start()
    while not made:
        time.sleep(0.001)
    task_id = made[0]
    alice.tasks.decide(task_id, Decision.approve())
    assert watch.event(task_id, "waiting").wait(30), "the resumer never saw the decision"
    finished = watch.event(task_id, "resumed")
    started = time.perf_counter()
    gate.set()
    assert finished.wait(30), "the resumer did not resume"
    elapsed = (time.perf_counter() - started) * 1000
    runner.join(30)
    return elapsed


async def run(quick: bool) -> list[Row]:
    return await asyncio.to_thread(_measure, 30 if quick else 200)


if __name__ == "__main__":
    import sys

    print(table(asyncio.run(run("--quick" in sys.argv))))
