"""A resumer in a process of its own, for the crash tests: ``python -m
tests.langgraph._resumer_process WORKDIR [HOLD]``.

It imports everything, then waits for a line on stdin (so a test can start it early and
pay the import time while it does other things). Then it opens the Handrail database and
the checkpoint database in ``WORKDIR`` (SQLite files
the test process uses too), builds the payment graph whose ``pay`` node appends a line to
``WORKDIR/payments.log`` (the side effect to count), and runs ``HandrailResumer.run()``.
It reports on stdout, one JSON object a line: ``{"ready": true}`` once connected, each
resumption, and ``{"holding": HOLD}`` when it stops to be killed:

- ``HOLD=before``: at the resume, before the graph runs (the decision is recorded, the
  thread not yet resumed);
- ``HOLD=after``: right after the graph ran (the payment is made), before the resumer
  marks the event handled and saves its cursor.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

import handrail.store.sql  # noqa: F401 - imported before "go", not after
from handrail import Handrail
from handrail_langgraph import HandrailResumer, Resumption, review_node


class PaymentState(TypedDict, total=False):
    action: dict[str, Any]
    paid: Annotated[list[dict[str, Any]], operator.add]


def say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def payment_graph(client: Handrail, saver: SqliteSaver, log: Path) -> Any:
    """propose -> review -> pay (a line in ``log``, synced) | END."""

    def pay(state: PaymentState) -> PaymentState:
        with log.open("a") as out:
            out.write(json.dumps(state["action"]) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return {"paid": [state["action"]]}

    builder: StateGraph[PaymentState] = StateGraph(PaymentState)
    builder.add_node("review", review_node(client, action="action", on_approve="pay"))
    builder.add_node("pay", pay)
    builder.add_edge(START, "review")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


class Holding:
    """The graph, stopping for good at the point ``hold`` names."""

    def __init__(self, graph: Any, hold: str) -> None:
        self.graph = graph
        self.hold = hold
        self.checkpointer = graph.checkpointer

    def get_state(self, config: Any) -> Any:
        return self.graph.get_state(config)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        if self.hold == "before":
            say(holding="before")
            threading.Event().wait()
        result = self.graph.invoke(*args, **kwargs)
        if self.hold == "after":
            say(holding="after")
            threading.Event().wait()
        return result


def main() -> None:
    workdir = Path(sys.argv[1])
    hold = sys.argv[2] if len(sys.argv) > 2 else ""
    sys.stdin.readline()  # go
    conn = sqlite3.connect(workdir / "checkpoints.db", check_same_thread=False)
    with Handrail.local(workdir / "handrail.db") as hr:
        graph = payment_graph(hr, SqliteSaver(conn), workdir / "payments.log")

        def report(outcome: Resumption) -> None:
            say(status=outcome.status, task_id=outcome.task_id, thread_id=outcome.thread_id)

        resumer = HandrailResumer(Holding(graph, hold) if hold else graph, hr, on_resumption=report)
        threading.Thread(
            target=lambda: resumer.connected.wait() and say(ready=True), daemon=True
        ).start()
        resumer.run()


if __name__ == "__main__":
    main()
