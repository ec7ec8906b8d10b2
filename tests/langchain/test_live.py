"""The adapter against a real Handrail server process over HTTP (``Handrail(url, key)``):
the agent holds a requester's key, the reviewer a reviewer's key of the same organisation.
The server tests' ``LiveServer`` (``tests/server/_live.py``) runs ``uvicorn`` in a
subprocess on SQLite; the keys are made in its database with ``create_key``, as the server
tests' fixtures make theirs (the server migrates the database as it starts)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from handrail import Decision, Handrail, RetryPolicy, Role, Status
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore
from handrail_langchain import HandrailMiddleware, ask_human_tool, require_approval
from handrail_server.keys import create_key
from tests.langchain.conftest import Reviewer, Tools, call, calls, script, tool_messages
from tests.server._live import LiveServer

T = TypeVar("T")
ASK = {"messages": [{"role": "user", "content": "go"}]}


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from sync code, even if a loop runs in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()  # type: ignore[arg-type]


@dataclass
class Live:
    server: LiveServer
    requester: str
    reviewer: str
    spare: LiveServer  # a second process on the same database, started early, to be killed

    def agent_client(self, **options: Any) -> Handrail:
        return Handrail(self.server.url, self.requester, **options)

    def reviewer_client(self) -> Handrail:
        return Handrail(self.server.url, self.reviewer)


async def _start(workdir: Path) -> tuple[LiveServer, str, str]:
    """A server on a new SQLite database, and a requester's and a reviewer's key."""
    server = LiveServer(f"sqlite:///{workdir / 'handrail.db'}", workdir)
    server.start()
    await server.ready()
    store = await SqlStore.open(server.database_url, create=False)
    try:
        now = SystemClock().now()
        made = [
            await store.run(
                lambda c, r=role, p=principal: create_key(
                    c, org_id="acme", role=r, now=now, principal=p
                )
            )
            for role, principal in (
                (Role.REQUESTER, "acme-agent"),
                (Role.REVIEWER, "acme-reviewer"),
            )
        ]
    finally:
        await store.close()
    return server, made[0].key, made[1].key


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("live")
    server, requester, reviewer = run_async(lambda: _start(workdir))
    spare = LiveServer(server.database_url, workdir)
    spare.start()  # it starts while the other tests run
    try:
        yield Live(server, requester, reviewer, spare)
    finally:
        spare.stop()
        server.stop()


def ids(*names: str) -> list[str]:
    """Tool call ids of this test alone (the tests share one organisation)."""
    tag = uuid.uuid4().hex[:8]
    return [f"{tag}-{name}" for name in names]


def test_a_mixed_turn_over_http(live: Live, tools: Tools) -> None:
    e1, t1, d1 = ids("e1", "t1", "d1")
    model = script(
        calls(
            call("send_email", e1, to="bob@example.com", body="hi"),
            call("transfer", t1, to="carol", amount=100),
            call("delete_file", d1, path="/srv/db"),
            call("lookup", "l1", query="x"),
        ),
        AIMessage("done"),
    )
    decisions = {
        e1: Decision.approve("ok"),
        t1: Decision.modify({"to": "carol", "amount": 30}),
        d1: Decision.reject("no deletions today"),
    }
    with live.agent_client() as hr, live.reviewer_client() as rv:
        middleware = HandrailMiddleware(
            hr, {"send_email": True, "transfer": True, "delete_file": True}, timeout=30
        )
        agent = create_agent(
            model,
            [tools.send_email, tools.transfer, tools.delete_file, tools.lookup],
            middleware=[middleware],
        )
        with Reviewer(rv, decisions, order=[d1, t1, e1]):
            result = agent.invoke(ASK)
        tasks = {t.metadata["tool_call_id"]: t for t in hr.tasks.list(limit=200).items}
    answers = tool_messages(result["messages"])
    assert answers[e1].content == "sent to bob@example.com"
    assert str(answers[t1].content).endswith("Tool response:\npaid 30 to carol")
    assert answers[d1].status == "error" and "no deletions today" in str(answers[d1].content)
    assert sorted(tools.ledger.done, key=str) == [  # they ran side by side: in any order
        ("lookup", {"query": "x"}),
        ("send_email", {"to": "bob@example.com", "body": "hi"}),
        ("transfer", {"to": "carol", "amount": 30}),
    ]
    for call_id in (e1, t1, d1):
        task = tasks[call_id]
        assert task.status is Status.VERIFIED and task.created_by == "acme-agent"
        assert task.decision is not None and task.decision.reviewer_id == "acme-reviewer"


async def test_a_gated_tool_over_http_async(live: Live, tools: Tools) -> None:
    a, r = ids("a", "r")
    async with live.agent_client() as hr:
        gated = require_approval(
            tools.delete_file, client=hr, timeout=30, allowed_decisions=["approve", "respond"]
        )
        with (
            live.reviewer_client() as rv,
            Reviewer(rv, {a: Decision.approve(), r: Decision.respond("Archived it instead.")}),
        ):
            approved = await gated.ainvoke(call("delete_file", a, path="/tmp/a"))
            answered = await gated.ainvoke(call("delete_file", r, path="/srv/db"))
    assert approved.content == "deleted /tmp/a"
    assert (answered.content, answered.status) == ("Archived it instead.", "success")
    assert tools.ledger.done == [("delete_file", {"path": "/tmp/a"})]


def test_a_durable_pause_over_http(live: Live, tools: Tools) -> None:
    (e1,) = ids("e1")
    model = script(calls(call("send_email", e1, to="bob@example.com", body="hi")), AIMessage("ok"))
    config = {"configurable": {"thread_id": e1}}
    with live.agent_client() as hr, live.reviewer_client() as rv:
        agent = create_agent(
            model, [require_approval(tools.send_email, client=hr)], checkpointer=InMemorySaver()
        )
        first = agent.invoke(ASK, config, version="v2")
        (paused,) = first.interrupts
        task_id = paused.value["handrail"]["task_id"]
        claimed = agent.invoke(
            Command(resume={paused.id: {"type": "approve"}}), config, version="v2"
        )
        assert tools.ledger.done == [] and len(claimed.interrupts) == 1  # a claim is not a decision
        rv.tasks.decide(task_id, Decision.approve())
        (again,) = claimed.interrupts
        done = agent.invoke(Command(resume={again.id: {"task_id": task_id}}), config, version="v2")
    assert tool_messages(done.value["messages"])[e1].content == "sent to bob@example.com"
    assert tools.ledger.done == [("send_email", {"to": "bob@example.com", "body": "hi"})]


def test_ask_human_over_http(live: Live) -> None:
    (q1,) = ids("q1")
    with live.agent_client() as hr, live.reviewer_client() as rv:
        ask = ask_human_tool(hr, timeout=30)
        with Reviewer(rv, {q1: "Tuesday"}):
            result = ask.invoke(call("ask_human", q1, question="Which day suits the customer?"))
    assert (result.content, result.status) == ("Tuesday", "success")


def test_a_server_that_dies_mid_wait_runs_nothing(live: Live, tools: Tools) -> None:
    """A second server process on the same database (so the same keys work), killed with
    SIGKILL while the gated call waits on it."""
    server, requester, reviewer = live.spare, live.requester, live.reviewer
    try:
        run_async(server.ready)
        retry = RetryPolicy(max_attempts=2, base=0.05, cap=0.1)
        with (
            Handrail(server.url, requester, retry=retry) as hr,
            Handrail(server.url, reviewer) as rv,
        ):
            gated = require_approval(tools.send_email, client=hr, timeout=30)
            (c1,) = ids("c1")
            seen = threading.Event()

            def kill_while_it_waits() -> None:
                skip: set[str] = set()
                while found := rv.tasks.wait_for_work(timeout=20, skip=sorted(skip)):
                    if any(t.metadata.get("tool_call_id") == c1 for t in found):
                        seen.set()
                        server.kill()
                        return
                    skip.update(t.id for t in found)

            killer = threading.Thread(target=kill_while_it_waits)
            killer.start()
            result = gated.invoke(call("send_email", c1, to="bob@example.com", body="hi"))
            killer.join(timeout=20)
    finally:
        server.stop()
    assert seen.is_set()
    assert result.status == "error" and "could not reach the Handrail server" in str(result.content)
    with live.agent_client() as hr:  # the other process: the task is there, undecided
        (task,) = [t for t in hr.tasks.list(limit=500).items if t.metadata["tool_call_id"] == c1]
        assert task.status is Status.POSTED
    assert tools.ledger.done == []
