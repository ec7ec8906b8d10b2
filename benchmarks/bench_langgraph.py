"""What a Handrail review costs a LangGraph graph, with no human in the way: pause, decision,
resume.

The graph is ``review -> pay``: the review node pauses until the decision, ``pay`` is a
no-op. An in-process engine (memory store) holds the tasks; the "human" is a reviewer
client whose ``decide`` call is timed on its own, so the figures are the machinery around
it:

- bare interrupt cycle: the same graph with LangGraph's own ``interrupt()`` in the node
  and ``Command(resume=...)`` (no Handrail): the anchor;
- Handrail cycle: ``review_node`` pauses (a task created, the interrupt saved), the
  reviewer decides, ``HandrailResumer.resume_task`` resumes (task read, pending
  interrupts read, the graph run on); and each phase on its own;
- wake-up: with ``HandrailResumer.run()`` following the event stream, the time from the
  decision's commit (``decide`` returning) to the resumed thread having finished;
- a tool turn: ``ReviewedToolNode`` with three gated calls (three tasks, one pause; the
  three decisions not timed; one resume) against ``ToolNode`` running the same calls
  ungated.

With ``InMemorySaver`` and with ``SqliteSaver`` on a file (what a durable graph pays for
its checkpoints either way). Means over many cycles, each ratio against a figure from the
same run.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

from _common import Row, percentile, ratio, row, table
from handrail import Decision, Handrail
from handrail_langgraph import HandrailResumer, Resumption, ReviewedToolNode, review_node

BENCH = "langgraph"
ACTION = {"name": "pay", "args": {"to": "carol", "amount": 100}}


class State(TypedDict, total=False):
    action: dict[str, Any]
    paid: bool


def _pay(state: State) -> State:
    return {"paid": True}


def bare_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def review(state: State) -> Command[Any]:
        interrupt({"action": state["action"]})
        return Command(goto="pay")

    builder: StateGraph[State] = StateGraph(State)
    builder.add_node("review", review, destinations=("pay",))
    builder.add_node("pay", _pay)
    builder.add_edge(START, "review")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


def review_graph(hr: Handrail, saver: BaseCheckpointSaver[Any]) -> Any:
    builder: StateGraph[State] = StateGraph(State)
    builder.add_node("review", review_node(hr, action="action", on_approve="pay"))
    builder.add_node("pay", _pay)
    builder.add_edge(START, "review")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


_threads = itertools.count()


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t{next(_threads)}"}}


def _us(started: float) -> float:
    return (time.perf_counter() - started) * 1e6


def _cycles(hr: Handrail, saver: BaseCheckpointSaver[Any], n: int) -> dict[str, list[float]]:
    """Bare and Handrail cycles in turn (so load shifts both alike), each phase timed."""
    bare, reviewed = bare_graph(saver), review_graph(hr, saver)
    resumer, alice = HandrailResumer(reviewed, hr), hr.as_reviewer("alice")
    samples: dict[str, list[float]] = {
        k: [] for k in ("bare", "pause", "decide", "resume", "cycle", "bare pause")
    }
    warm = max(5, n // 20)
    for i in range(n + warm):
        config = _config()
        started = time.perf_counter()
        first = bare.invoke({"action": ACTION}, config, version="v2")
        paused = _us(started)
        bare.invoke(Command(resume={first.interrupts[0].id: "ok"}), config, version="v2")
        bare_cycle = _us(started)

        config = _config()
        started = time.perf_counter()
        first = reviewed.invoke({"action": ACTION}, config, version="v2")
        pause = _us(started)
        task_id = first.interrupts[0].value["handrail"]["task_id"]
        mark = time.perf_counter()
        alice.tasks.decide(task_id, Decision.approve())
        decide = _us(mark)
        mark = time.perf_counter()
        outcome = resumer.resume_task(task_id)
        resume = _us(mark)
        cycle = _us(started)
        assert outcome.status == "resumed"
        if i >= warm:
            for key, value in (
                ("bare", bare_cycle),
                ("bare pause", paused),
                ("pause", pause),
                ("decide", decide),
                ("resume", resume),
                ("cycle", cycle),
            ):
                samples[key].append(value)
    return samples


def _wakeups(hr: Handrail, saver: BaseCheckpointSaver[Any], n: int) -> list[float]:
    """µs from ``decide`` returning to the thread resumed, with ``run()`` following events."""
    graph = review_graph(hr, saver)
    done: dict[str, threading.Event] = {}

    def note(outcome: Resumption) -> None:
        if outcome.status == "resumed" and outcome.task_id in done:
            done[outcome.task_id].set()

    resumer = HandrailResumer(graph, hr, on_resumption=note, reconcile_every=None)
    follower = threading.Thread(target=resumer.run, daemon=True)
    follower.start()
    assert resumer.connected.wait(30)
    alice, found = hr.as_reviewer("alice"), []
    try:
        for i in range(n + 5):
            first = graph.invoke({"action": ACTION}, _config(), version="v2")
            task_id = first.interrupts[0].value["handrail"]["task_id"]
            done[task_id] = threading.Event()
            alice.tasks.decide(task_id, Decision.approve())
            started = time.perf_counter()
            assert done[task_id].wait(30), "the resumer did not resume"
            if i >= 5:
                found.append(_us(started))
    finally:
        resumer.stop()
        follower.join(30)
    return found


# ---------------------------------------------------------------- a tool turn


@tool
def send_email(to: str) -> str:
    """Send an email."""
    return f"sent to {to}"


class _Model(GenericFakeChatModel):
    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self


def _turns() -> Iterator[AIMessage]:
    for n in itertools.count():
        calls = [
            {"name": "send_email", "args": {"to": f"{k}@x"}, "id": f"c{n}-{k}", "type": "tool_call"}
            for k in range(3)
        ]
        yield AIMessage("", tool_calls=calls)
        yield AIMessage("done")


def agent_graph(tools_node: Any, saver: BaseCheckpointSaver[Any]) -> Any:
    model = _Model(messages=_turns())

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools_node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


def _tool_turns(hr: Handrail, saver: BaseCheckpointSaver[Any], n: int) -> dict[str, float]:
    plain = agent_graph(ToolNode([send_email]), saver)
    gated = agent_graph(ReviewedToolNode([send_email], client=hr), saver)
    resumer, alice = HandrailResumer(gated, hr), hr.as_reviewer("alice")
    ask = {"messages": [{"role": "user", "content": "email three people"}]}
    samples: dict[str, list[float]] = {"plain": [], "gated": []}
    for i in range(n + 3):
        started = time.perf_counter()
        plain.invoke(ask, _config(), version="v2")
        plain_turn = _us(started)
        started = time.perf_counter()
        first = gated.invoke(ask, _config(), version="v2")
        pause = _us(started)
        tasks = [p.value["handrail"]["task_id"] for p in first.interrupts]
        for task_id in tasks:  # the human: not timed
            alice.tasks.decide(task_id, Decision.approve())
        started = time.perf_counter()
        assert resumer.resume_task(tasks[0]).status == "resumed"
        if i >= 3:
            samples["plain"].append(plain_turn)
            samples["gated"].append(pause + _us(started))
    return {k: statistics.fmean(v) for k, v in samples.items()}


# ---------------------------------------------------------------- the rows


@contextmanager
def _savers() -> Iterator[list[tuple[str, BaseCheckpointSaver[Any]]]]:
    with tempfile.TemporaryDirectory(prefix="handrail-bench-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "checkpoints.db", check_same_thread=False)
        try:
            yield [("InMemorySaver", InMemorySaver()), ("SqliteSaver", SqliteSaver(conn))]
        finally:
            conn.close()


def _measure(n: int) -> list[Row]:
    rows: list[Row] = []
    mean: Callable[[list[float]], float] = statistics.fmean
    with Handrail.local() as hr, _savers() as savers:
        for label, saver in savers:
            s = _cycles(hr, saver, n)
            bare, cycle = mean(s["bare"]), mean(s["cycle"])
            own = cycle - mean(s["decide"]) - bare
            wake = _wakeups(hr, saver, max(20, n // 4))
            turns = _tool_turns(hr, saver, max(10, n // 10))
            anchor = f"bare interrupt cycle ({label})"
            rows += [
                row(BENCH, anchor, bare, "µs", note="interrupt(), Command(resume=...)"),
                row(
                    BENCH,
                    f"Handrail cycle: pause, decide, resume ({label})",
                    cycle,
                    "µs",
                    anchor=anchor,
                    ratio=ratio(cycle, bare),
                ),
                row(BENCH, f"bare pause: interrupt() ({label})", mean(s["bare pause"]), "µs"),
                row(
                    BENCH,
                    f"  pause: review_node to the interrupt ({label})",
                    mean(s["pause"]),
                    "µs",
                    anchor=f"bare pause: interrupt() ({label})",
                    ratio=ratio(mean(s["pause"]), mean(s["bare pause"])),
                ),
                row(BENCH, f"  the reviewer's decide call ({label})", mean(s["decide"]), "µs"),
                row(
                    BENCH,
                    f"  resume: resume_task to the end ({label})",
                    mean(s["resume"]),
                    "µs",
                    anchor=anchor,
                    ratio=ratio(mean(s["resume"]), bare),
                ),
                row(
                    BENCH,
                    f"Handrail's share: cycle − decide − bare ({label})",
                    own,
                    "µs",
                    anchor=anchor,
                    ratio=ratio(own, bare),
                ),
                row(
                    BENCH,
                    f"wake-up: decision committed to thread resumed, run() ({label})",
                    mean(wake),
                    "µs",
                    note=f"p50 {percentile(wake, 50):.0f} µs, p95 {percentile(wake, 95):.0f} µs",
                ),
                row(BENCH, f"agent turn, 3 tool calls, ToolNode ({label})", turns["plain"], "µs"),
                row(
                    BENCH,
                    f"agent turn, 3 gated calls: pause + resume, ReviewedToolNode ({label})",
                    turns["gated"],
                    "µs",
                    anchor=f"agent turn, 3 tool calls, ToolNode ({label})",
                    ratio=ratio(turns["gated"], turns["plain"]),
                ),
            ]
    return rows


async def run(quick: bool) -> list[Row]:
    return await asyncio.to_thread(_measure, 60 if quick else 400)


if __name__ == "__main__":
    import sys

    print(table(asyncio.run(run("--quick" in sys.argv))))
