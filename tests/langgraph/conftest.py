"""LangGraph adapter test kit: real graphs (a payment to review, an agent with tools) on
real checkpointers (in memory, a SQLite file, a PostgreSQL schema of their own), a
Handrail client in-process, and side effects counted so a test can say an action ran once
or never. The LangChain kit (scripted model, counted tools, a reviewer thread) is reused.
"""

from __future__ import annotations

import operator
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import quote

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command

from handrail import Handrail
from handrail_langgraph import (
    HandrailResumer,
    MemoryCursor,
    Resumption,
    ReviewedToolNode,
    review_node,
)
from tests.langchain.conftest import Ledger, ScriptedModel, Tools

__all__ = ["Ledger", "Tools"]

ASK = {"messages": [{"role": "user", "content": "go"}]}
PAYMENT = {"name": "pay", "args": {"to": "carol", "amount": 100}}


def thread(thread_id: str | None = None) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}


def resume_all(graph: Any, config: dict[str, Any], paused: Any, value: Any = None) -> Any:
    """Resume every pending interrupt as a client would (with the task id by default)."""
    resume = {
        i.id: value if value is not None else {"task_id": i.value["handrail"]["task_id"]}
        for i in paused.interrupts
    }
    return graph.invoke(Command(resume=resume), config, version="v2")


def task_of(interrupt: Any) -> str:
    task_id: str = interrupt.value["handrail"]["task_id"]
    return task_id


# ---------------------------------------------------------------- a payment graph


class PaymentState(TypedDict, total=False):
    action: dict[str, Any]
    review: dict[str, Any]
    paid: Annotated[list[dict[str, Any]], operator.add]
    refused: Annotated[list[str], operator.add]


def payment_graph(
    client: Handrail,
    ledger: Ledger,
    checkpointer: BaseCheckpointSaver[Any] | None,
    *,
    node: Callable[..., Any] = review_node,
    **options: Any,
) -> Any:
    """propose (the state holds the action) -> review -> pay | refuse. ``pay`` is the
    guarded side effect: it notes each payment in ``ledger``."""

    def pay(state: PaymentState) -> PaymentState:
        ledger.note("pay", **state["action"]["args"])
        return {"paid": [state["action"]]}

    def refuse(state: PaymentState) -> PaymentState:
        review = state.get("review") or {}
        return {"refused": [str(review.get("message") or "")]}

    builder: StateGraph[PaymentState] = StateGraph(PaymentState)
    builder.add_node(
        "review",
        node(
            client,
            action="action",
            on_approve="pay",
            on_reject="refuse",
            decision_key="review",
            **options,
        ),
    )
    builder.add_node("pay", pay)
    builder.add_node("refuse", refuse)
    builder.add_edge(START, "review")
    builder.add_edge("pay", END)
    builder.add_edge("refuse", END)
    return builder.compile(checkpointer=checkpointer)


# ---------------------------------------------------------------- an agent with tools


def agent_graph(
    client: Handrail,
    tools: Tools,
    model: ScriptedModel,
    checkpointer: BaseCheckpointSaver[Any] | None,
    **options: Any,
) -> Any:
    """agent -> tools (ReviewedToolNode: email, transfer and delete gated; lookup not) ->
    agent, until the model stops calling tools (``tools_condition``)."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    node = ReviewedToolNode(
        [tools.send_email, tools.transfer, tools.delete_file, tools.lookup],
        client=client,
        gated=["send_email", "transfer", "delete_file"],
        **options,
    )
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def final_text(result: Any) -> str:
    last = result.value["messages"][-1]
    assert isinstance(last, AIMessage)
    return str(last.content)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def hr() -> Iterator[Handrail]:
    with Handrail.local() as client:
        yield client


@pytest.fixture
def tools() -> Tools:
    return Tools()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@contextmanager
def sqlite_saver(path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def schema_url(base: str, schema: str) -> str:
    """``base`` with the connection's ``search_path`` set to ``schema``."""
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def postgres_schema_url(base: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (dropped afterwards), as a URL."""
    schema = f"lg_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def postgres_saver(url: str) -> Iterator[PostgresSaver]:
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        yield saver


SaverFactory = Callable[[], AbstractContextManager[BaseCheckpointSaver[Any]]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SaverFactory]:
    """Opens the same durable checkpointer again each time it is called (as a restarted
    process would): a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield lambda: sqlite_saver(tmp_path / "checkpoints.db")
        return
    base = request.getfixturevalue("postgres_url")
    with postgres_schema_url(base) as url:
        yield lambda: postgres_saver(url)


@pytest.fixture
def memory_saver() -> InMemorySaver:
    return InMemorySaver()


class Outcomes:
    """Collects a resumer's :class:`Resumption` s; ``next()`` waits for the next one."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Resumption] = queue.Queue()
        self.seen: list[Resumption] = []

    def __call__(self, outcome: Resumption) -> None:
        self._queue.put(outcome)

    def next(self, timeout: float = 20.0) -> Resumption:
        outcome = self._queue.get(timeout=timeout)
        self.seen.append(outcome)
        return outcome

    def until(self, status: str, timeout: float = 20.0) -> Resumption:
        while True:
            outcome = self.next(timeout)
            if outcome.status == status:
                return outcome

    def pending(self) -> list[Resumption]:
        found = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        self.seen.extend(found)
        return found


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


class WatchedCursor(MemoryCursor):
    """A cursor a test can wait on: ``wait_for`` returns once a saved value satisfies a
    condition (no polling: each save wakes it)."""

    def __init__(self, seq: int | None = None) -> None:
        super().__init__(seq)
        self._changed = threading.Condition()

    def save(self, seq: int) -> None:
        super().save(seq)
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, check: Callable[[int | None], bool], timeout: float = 20.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: check(self.load()), timeout)


@contextmanager
def running(resumer: HandrailResumer) -> Iterator[threading.Thread]:
    """``resumer.run()`` in a thread, connected (its first reconcile done) when this
    yields; stopped and joined afterwards."""
    worker = threading.Thread(target=resumer.run, name="resumer", daemon=True)
    worker.start()
    try:
        assert resumer.connected.wait(20), "the resumer did not connect"
        yield worker
    finally:
        resumer.stop()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the resumer did not stop"
