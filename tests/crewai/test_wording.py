"""What the model reads after a refusal is worded once, in core, and every adapter says it
the same way: LangChain's gated tool, LangGraph's reviewed tool node (the middleware's
work), CrewAI's gated tool. The texts are pinned exactly.

Each adapter gets the same decision from a client that answers every review with it; the
decisions are real ones: a task that really expired, a reviewer's real reject, a server
that is really not there.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from crewai.tools import tool as crew_tool
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from handrail import (
    Decision,
    Handrail,
    RetryPolicy,
    ReviewExpired,
    Status,
    TaskExpired,
    WaitTimeout,
)
from handrail import tool_review as texts
from handrail.client import decision_of
from handrail_crewai import require_approval as crewai_gate
from handrail_langchain import require_approval as langchain_gate
from handrail_langgraph import ReviewedToolNode

EXPIRED = (
    "The call to `pay` was not run. The review expired before anyone decided, so the "
    "action was not approved. Do not retry this call, or the same call with new ids: it "
    "would be stopped again. Continue without it, choose a different approach, or ask the "
    "user."
)
REJECTED = (
    "A human reviewer rejected the call to `pay`, so it was not run. Reason: wrong "
    "account. Do not retry this call, or the same call with new ids: it would be stopped "
    "again. Continue without it, choose a different approach, or ask the user."
)


class Answers(Handrail):
    """A client whose every review comes back as ``decision`` (or raises ``error``)."""

    def __init__(self, decision: Decision | None = None, error: Exception | None = None):
        self.decision, self.error = decision, error  # no engine, no server: only reviews

    def review(self, *args: Any, **kwargs: Any) -> Decision:
        if self.error is not None:
            raise self.error
        assert self.decision is not None
        return self.decision

    async def areview(self, *args: Any, **kwargs: Any) -> Decision:
        return self.review()


@tool
def pay(amount: int) -> str:
    """Pay an amount."""
    raise AssertionError("a refused call ran")


def _langchain(client: Any) -> str:
    gated = langchain_gate(pay, client=client, mode="block")
    message = gated.invoke({"name": "pay", "args": {"amount": 5}, "id": "c1", "type": "tool_call"})
    assert isinstance(message, ToolMessage) and message.status == "error"
    return str(message.content)


def _langgraph(client: Any) -> str:
    node = ReviewedToolNode([pay], client=client, mode="block")
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda s: {"messages": [AIMessage("", tool_calls=[_call()])]})
    graph.add_node("tools", node)
    graph.add_edge(START, "model")
    graph.add_edge("model", "tools")
    graph.add_edge("tools", END)
    out = graph.compile().invoke({"messages": []})
    (message,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert message.status == "error"
    return str(message.content)


def _call() -> dict[str, Any]:
    return {"name": "pay", "args": {"amount": 5}, "id": "c1", "type": "tool_call"}


def _crewai(client: Any) -> str:
    @crew_tool("pay")
    def crew_pay(amount: int) -> str:
        """Pay an amount."""
        raise AssertionError("a refused call ran")

    failure = crewai_gate(crew_pay, client=client).run(amount=5)
    return str(failure.message)


ADAPTERS = {"langchain": _langchain, "langgraph": _langgraph, "crewai": _crewai}


@pytest.fixture(scope="module")
def expired() -> Decision:
    with Handrail.local(sweep_interval=0.05) as hr:
        task = hr.tasks.create({"kind": "review", "action": {"name": "pay"}, "sla_seconds": 1})
        done = hr.tasks.wait(task.id, 10)
        assert done.status is Status.EXPIRED
        return decision_of(done)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_an_expired_review_reads_the_same_everywhere(adapter: str, expired: Decision) -> None:
    assert ADAPTERS[adapter](Answers(expired)) == EXPIRED


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_a_reviewers_reject_reads_the_same_everywhere(adapter: str) -> None:
    with Handrail.local() as hr:
        task = hr.tasks.create({"kind": "review", "action": {"name": "pay"}})
        hr.as_reviewer("alice").tasks.decide(task.id, Decision.reject("wrong account"))
        rejected = decision_of(hr.tasks.get(task.id))
    assert ADAPTERS[adapter](Answers(rejected)) == REJECTED


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_an_unreachable_server_reads_the_same_everywhere(adapter: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Handrail(
        f"http://127.0.0.1:{port}", "hr_test_x", retry=RetryPolicy(max_attempts=1)
    ) as down:
        with pytest.raises(Exception) as got:
            down.review("pay", {"amount": 5})
        error = got.value
    said = ADAPTERS[adapter](Answers(error=error))
    assert said == texts.failed("pay", error)
    assert said.startswith(
        "The call to `pay` was not run: no human decision could be obtained (could not "
        f"reach the Handrail server at http://127.0.0.1:{port}"
    )


def test_a_decision_on_an_expired_task_says_it_expired() -> None:
    with Handrail.local(sweep_interval=0.05) as hr:
        task = hr.tasks.create({"kind": "review", "action": {"name": "pay"}, "sla_seconds": 1})
        assert hr.tasks.wait(task.id, 10).status is Status.EXPIRED
        with pytest.raises(TaskExpired) as got:
            hr.as_reviewer("alice").tasks.decide(task.id, Decision.approve())
    assert str(got.value) == (
        f"task {task.id} expired before this decision arrived (its deadline passed before "
        "anyone decided), so nothing was recorded"
    )
    assert got.value.http_status == 410 and "claim" not in str(got.value)


def test_waiting_on_a_review_that_expired_says_so_not_still_expired() -> None:
    # the task's deadline (1 s) passes before the agent's wait (5 s) runs out
    with Handrail.local(sweep_interval=0.05) as hr, pytest.raises(ReviewExpired) as got:
        hr.review("pay", {"amount": 5}, timeout=5, sla_seconds=1, on_timeout="raise")
    assert isinstance(got.value, WaitTimeout)  # code catching WaitTimeout still does
    assert str(got.value) == (
        f"task {got.value.task_id} expired after 1s before anyone decided: there is no decision"
    )
