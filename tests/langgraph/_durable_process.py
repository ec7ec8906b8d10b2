"""A graph run or a resumer in a process of its own, for the kill tests of
``test_durable_delivery.py``: ``python -m tests.langgraph._durable_process ROLE WORKDIR
HANDRAIL CHECKPOINTS [HOLD]``.

``HANDRAIL`` is ``Handrail.local``'s database (a SQLite file or a PostgreSQL URL);
``CHECKPOINTS`` the checkpointer's (a SQLite file for ``SqliteSaver``, a PostgreSQL URL
for ``PostgresSaver``). It imports everything, then waits for a line on stdin ("go"), and
reports on stdout, one JSON object a line.

The graph is propose -> review (``review_node``, ``decision_key="review"``) -> pay. ``pay``
is the side effect to count, made idempotent as docs/langgraph.md shows: one row per
execution key in ``WORKDIR/bank.db`` (``INSERT OR IGNORE``); every run of the node is
also noted in ``WORKDIR/attempts.log`` (synced), so a test sees the node ran again.

- ``ROLE=graph``: runs one thread (``THREAD`` from the environment) until it pauses,
  reports ``{"paused": ...}`` and waits to be killed. ``HOLD=created`` stops it right after
  the review task is created, before the pause is checkpointed (``{"holding": "created",
  "task_id": ...}``); a second line on stdin lets it go on.
- ``ROLE=resumer``: ``HandrailResumer.run()`` (``STALL_AFTER`` seconds from the
  environment), reporting ``{"ready": true}`` and each resumption. ``HOLD`` stops it for
  good, once, at one point: ``create`` (inside the resumed review node, before it reads
  the decision), ``pay-before`` (inside ``pay``, before the side effect), ``pay-after``
  (inside ``pay``, after it).
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

import handrail.store.sql  # noqa: F401 - imported before "go", not after
from handrail import Handrail
from handrail_langgraph import HandrailResumer, Resumption, review_node

PAYMENT = {"name": "pay", "args": {"to": "carol", "amount": 100}}


class PaymentState(TypedDict, total=False):
    action: dict[str, Any]
    review: dict[str, Any]
    paid: Annotated[list[str], operator.add]


def say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def hold_forever(point: str, **more: Any) -> None:
    say(holding=point, **more)
    threading.Event().wait()


def pay_once(bank: Path, key: str, thread_id: str, amount: int) -> None:
    """The idempotent side effect: one row per execution key, however often it runs."""
    with sqlite3.connect(bank, timeout=30) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS payments (key TEXT PRIMARY KEY, thread TEXT, amount INT)"
        )
        conn.execute(
            "INSERT OR IGNORE INTO payments (key, thread, amount) VALUES (?, ?, ?)",
            (key, thread_id, amount),
        )


def note_attempt(log: Path, thread_id: str) -> None:
    with log.open("a") as out:
        out.write(thread_id + "\n")
        out.flush()
        os.fsync(out.fileno())


class Gate:
    """Where this process stops for good (once), if anywhere."""

    def __init__(self, hold: str) -> None:
        self.hold = hold
        self.fired = False

    def at(self, point: str, **more: Any) -> None:
        if self.hold == point and not self.fired:
            self.fired = True
            hold_forever(point, **more)


class HoldingTasks:
    """``client.tasks`` that stops at ``create`` when the gate says so."""

    def __init__(self, tasks: Any, gate: Gate, after_create: Any = None) -> None:
        self._tasks = tasks
        self._gate = gate
        self._after_create = after_create

    def create(self, spec: Any) -> Any:
        if self._after_create is None:
            self._gate.at("create")
        task = self._tasks.create(spec)
        if self._after_create is not None:
            self._after_create(task)
        return task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tasks, name)


class HoldingClient:
    def __init__(self, client: Handrail, tasks: HoldingTasks) -> None:
        self._client = client
        self.tasks = tasks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def payment_graph(client: Any, saver: BaseCheckpointSaver[Any], workdir: Path, gate: Gate) -> Any:
    def pay(state: PaymentState, config: RunnableConfig) -> PaymentState:
        thread_id = str((config.get("configurable") or {})["thread_id"])
        note_attempt(workdir / "attempts.log", thread_id)
        gate.at("pay-before")
        key = state["review"]["execution_key"]
        pay_once(workdir / "bank.db", key, thread_id, state["action"]["args"]["amount"])
        gate.at("pay-after")
        return {"paid": [key]}

    builder: StateGraph[PaymentState] = StateGraph(PaymentState)
    builder.add_node("propose", lambda state: {"action": PAYMENT})
    builder.add_node(
        "review",
        review_node(client, action="action", on_approve="pay", decision_key="review"),
    )
    builder.add_node("pay", pay)
    builder.add_edge(START, "propose")
    builder.add_edge("propose", "review")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


@contextmanager
def checkpointer(where: str) -> Iterator[BaseCheckpointSaver[Any]]:
    if "://" in where:
        with PostgresSaver.from_conn_string(where) as saver:
            saver.setup()
            yield saver
        return
    conn = sqlite3.connect(where, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def main() -> None:
    role, workdir, database, checkpoints = sys.argv[1:5]
    hold = sys.argv[5] if len(sys.argv) > 5 else ""
    sys.stdin.readline()  # go
    gate = Gate(hold)
    with Handrail.local(database) as hr, checkpointer(checkpoints) as saver:
        if role == "graph":
            run_graph(hr, saver, Path(workdir), hold)
        else:
            follow(hr, saver, Path(workdir), gate)


def run_graph(hr: Handrail, saver: BaseCheckpointSaver[Any], workdir: Path, hold: str) -> None:
    config = {"configurable": {"thread_id": os.environ["THREAD"]}}

    def created(task: Any) -> None:
        if hold == "created":
            # the kill point is "after the task is created, before the pause is
            # checkpointed", with the checkpoint the review runs from saved: LangGraph's
            # default durability ("async") saves that checkpoint while the review runs,
            # and a process killed before it lands restarts the run from the step before
            # (docs/langgraph.md says what that costs)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                saved = saver.get_tuple(config)
                # the step the review runs from (propose is step 0, the review step 1)
                if saved is not None and (saved.metadata or {}).get("step", -1) >= 1:
                    break
                time.sleep(0.005)
            say(holding="created", task_id=task.id)
            sys.stdin.readline()  # let go: the pause is checkpointed next

    client = HoldingClient(hr, HoldingTasks(hr.tasks, Gate(""), after_create=created))
    graph = payment_graph(client, saver, workdir, Gate(""))
    result = graph.invoke({}, config, version="v2")
    say(paused=[i.value["handrail"]["task_id"] for i in result.interrupts])
    threading.Event().wait()


def follow(hr: Handrail, saver: BaseCheckpointSaver[Any], workdir: Path, gate: Gate) -> None:
    client = HoldingClient(hr, HoldingTasks(hr.tasks, gate))
    graph = payment_graph(client, saver, workdir, gate)

    def report(outcome: Resumption) -> None:
        say(status=outcome.status, task_id=outcome.task_id, thread_id=outcome.thread_id)

    resumer = HandrailResumer(
        graph, hr, on_resumption=report, stall_after=float(os.environ.get("STALL_AFTER", "5"))
    )
    threading.Thread(
        target=lambda: resumer.connected.wait() and say(ready=True), daemon=True
    ).start()
    resumer.run()


def graph_for(client: Handrail) -> Any:
    """The payment graph for ``handrail resumer tests.langgraph._durable_process:graph_for``
    (``WORKDIR`` and the SQLite ``CHECKPOINTS`` file from the environment)."""
    conn = sqlite3.connect(os.environ["CHECKPOINTS"], check_same_thread=False)
    return payment_graph(client, SqliteSaver(conn), Path(os.environ["WORKDIR"]), Gate(""))


if __name__ == "__main__":
    main()
