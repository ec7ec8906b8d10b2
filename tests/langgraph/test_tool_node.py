"""``ReviewedToolNode``: one task per gated call, all of a turn's calls paused together with
distinct interrupt ids, every call answered once, nothing run before its decision or
twice."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolRuntime, tools_condition
from langgraph.types import Command

from handrail import Decision, Handrail, Status
from handrail_langgraph import HandrailResumer, ReviewedToolNode
from handrail_langgraph.tool_calls import execution_key_of
from tests.langchain.conftest import (
    Crash,
    Payments,
    Reviewer,
    ScriptedModel,
    Tools,
    call,
    calls,
    script,
    tool_messages,
)
from tests.langgraph.conftest import ASK, agent_graph, final_text, resume_all, task_of, thread


def mixed_turn() -> Any:
    """One model turn: two emails, a transfer and a lookup (ungated), then "done"."""
    return script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("transfer", "t1", to="carol", amount=100),
            call("lookup", "l1", query="balance"),
            call("send_email", "e2", to="eve@example.com", body="hi"),
        ),
        AIMessage("done"),
    )


DECISIONS = {
    "e1": Decision.approve(),
    "t1": Decision.modify({"to": "carol", "amount": 30}),
    "e2": Decision.reject("not Eve"),
}


def by_call(result: Any) -> dict[str, Any]:
    return {i.value["tool_call_id"]: i for i in result.interrupts}


def check_mixed(hr: Handrail, tools: Tools, messages: list[Any]) -> None:
    answers = tool_messages(messages)  # each call answered exactly once
    assert sorted(answers) == ["e1", "e2", "l1", "t1"]
    assert answers["e1"].content == "sent to bob@example.com"
    assert str(answers["t1"].content).endswith("Tool response:\npaid 30 to carol")
    assert answers["e2"].status == "error" and "not Eve" in str(answers["e2"].content)
    assert answers["l1"].content == "found balance"
    assert sorted(tools.ledger.done, key=str) == [
        ("lookup", {"query": "balance"}),
        ("send_email", {"to": "bob@example.com", "body": "hi"}),
        ("transfer", {"to": "carol", "amount": 30}),
    ]
    assert len(hr.tasks.list().items) == 3


def test_a_turn_pauses_with_one_interrupt_per_gated_call(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), InMemorySaver())
    config = thread()
    first = graph.invoke(ASK, config, version="v2")
    pending = by_call(first)
    assert sorted(pending) == ["e1", "e2", "t1"]  # the lookup is not asked about
    assert len({i.id for i in first.interrupts}) == 3  # distinct interrupt ids
    assert len({task_of(i) for i in first.interrupts}) == 3  # one task per call
    (batch,) = {t.batch_id for t in hr.tasks.list().items}  # one turn: one batch
    assert batch is not None
    assert [i.id for i in graph.get_state(config).interrupts] == [i.id for i in first.interrupts]
    assert tools.ledger.done == []  # nothing ran before the decisions, not even the lookup
    alice = hr.as_reviewer("alice")
    for call_id, decision in DECISIONS.items():
        alice.tasks.decide(task_of(pending[call_id]), decision)
    done = resume_all(graph, config, first)  # one map answers them all
    assert done.interrupts == () and final_text(done) == "done"
    check_mixed(hr, tools, done.value["messages"])


def test_decisions_in_any_order_each_resume_drops_nothing(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), InMemorySaver())
    config = thread()
    result = graph.invoke(ASK, config, version="v2")
    alice = hr.as_reviewer("alice")
    for call_id in ("e2", "t1", "e1"):  # the last call first
        pending = by_call(result)
        assert call_id in pending and tools.ledger.done == []
        alice.tasks.decide(task_of(pending[call_id]), DECISIONS[call_id])
        only = pending[call_id]
        result = graph.invoke(
            Command(resume={only.id: {"task_id": task_of(only)}}), config, version="v2"
        )
        assert call_id not in by_call(result)  # answered, the others still waiting
    assert result.interrupts == ()
    check_mixed(hr, tools, result.value["messages"])


def test_a_resume_claiming_approval_runs_nothing(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), InMemorySaver())
    config = thread()
    first = graph.invoke(ASK, config, version="v2")
    again = resume_all(graph, config, first, {"type": "approve"})
    assert sorted(by_call(again)) == ["e1", "e2", "t1"] and tools.ledger.done == []
    assert {t.status for t in hr.tasks.list().items} == {Status.POSTED}


def test_the_resumer_resumes_a_turn_as_decisions_land(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), InMemorySaver())
    config = thread()
    first = graph.invoke(ASK, config, version="v2")
    resumer, alice = HandrailResumer(graph, hr), hr.as_reviewer("alice")
    pending = by_call(first)
    for call_id in ("t1", "e2"):
        alice.tasks.decide(task_of(pending[call_id]), DECISIONS[call_id])
        assert resumer.resume_task(task_of(pending[call_id])).status == "resumed"
        assert tools.ledger.done == []  # e1 still undecided: nothing of the turn runs
    alice.tasks.decide(task_of(pending["e1"]), DECISIONS["e1"])
    outcome = resumer.resume_task(task_of(pending["e1"]))
    assert outcome.status == "resumed" and graph.get_state(config).next == ()
    check_mixed(hr, tools, graph.get_state(config).values["messages"])
    for call_id in DECISIONS:  # every decision again: nothing pending, nothing runs
        assert resumer.resume_task(task_of(pending[call_id])).status == "not_pending"
    assert len(tools.ledger.done) == 3


def test_a_turn_without_gated_calls_runs_at_once(hr: Handrail, tools: Tools) -> None:
    model = script(calls(call("lookup", "l1", query="x")), AIMessage("done"))
    result = agent_graph(hr, tools, model, InMemorySaver()).invoke(ASK, thread(), version="v2")
    assert result.interrupts == () and tools.ledger.done == [("lookup", {"query": "x"})]
    assert hr.tasks.list().items == ()


def test_without_a_checkpointer_calls_block_side_by_side(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), None, timeout=20)
    decisions = {**DECISIONS}
    with Reviewer(hr.as_reviewer("alice"), decisions, order=["e2", "t1", "e1"]):
        result = graph.invoke(ASK)
    check_mixed(hr, tools, result["messages"])


async def test_a_turn_pauses_and_resumes_async(hr: Handrail, tools: Tools) -> None:
    graph = agent_graph(hr, tools, mixed_turn(), InMemorySaver())
    config = thread()
    first = await graph.ainvoke(ASK, config, version="v2")
    alice = hr.as_reviewer("alice")
    for call_id, pending in by_call(first).items():
        await alice.tasks.adecide(task_of(pending), DECISIONS[call_id])
    resumer = HandrailResumer(graph, hr, asynchronous=True)
    outcome = await resumer.aresume_task(task_of(first.interrupts[0]))
    assert outcome.status == "resumed"
    assert sorted(outcome.interrupts) == sorted(i.id for i in first.interrupts)
    state = await graph.aget_state(config)
    check_mixed(hr, tools, state.values["messages"])


def test_an_expired_call_is_refused_and_the_rest_runs(tools: Tools) -> None:
    with Handrail.local() as hr:
        model = script(
            calls(
                call("send_email", "e1", to="bob@example.com", body="hi"),
                call("delete_file", "d1", path="/srv/db"),
            ),
            AIMessage("ok"),
        )
        graph = agent_graph(hr, tools, model, InMemorySaver())
        config = thread()
        first = graph.invoke(ASK, config, version="v2")
        pending = by_call(first)
        hr.tasks.cancel(task_of(pending["d1"]), "the agent gave up")  # never decided
        hr.as_reviewer("alice").tasks.decide(task_of(pending["e1"]), Decision.approve())
        done = resume_all(graph, config, first)
    answers = tool_messages(done.value["messages"])
    assert answers["d1"].status == "error" and "cancelled" in str(answers["d1"].content)
    assert tools.ledger.done == [("send_email", {"to": "bob@example.com", "body": "hi"})]


def test_configuration(hr: Handrail, tools: Tools) -> None:
    with pytest.raises(ValueError, match="lacks"):
        ReviewedToolNode([tools.lookup], client=hr, gated=["send_email"])
    with pytest.raises(TypeError, match="collection of tool names"):
        ReviewedToolNode([tools.lookup], client=hr, gated="lookup")
    node = ReviewedToolNode(
        [tools.send_email, tools.lookup],
        client=hr,
        gated={"send_email": {"allowed_decisions": ["approve", "reject"]}},
    )
    assert sorted(node.tools_by_name) == ["lookup", "send_email"]
    assert list(node.middleware.interrupt_on) == ["send_email"]
    model = script(calls(call("send_email", "e1", to="a@example.com", body="x")), AIMessage("k"))
    graph = agent_graph(hr, tools, model, InMemorySaver(), allowed_decisions=["approve", "edit"])
    first = graph.invoke(ASK, thread(), version="v2")
    (task,) = hr.tasks.list().items
    assert [d.value for d in task.allowed_decisions] == ["approve", "modify"]
    assert first.interrupts[0].value["review_configs"][0]["allowed_decisions"] == [
        "approve",
        "edit",
    ]


def pay_graph(
    hr: Handrail, pay: BaseTool, model: ScriptedModel, checkpointer: Any, *more: BaseTool
) -> Any:
    """agent -> tools (``pay`` gated, ``more`` not) -> agent."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ReviewedToolNode([pay, *more], client=hr, gated=["pay"]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


@pytest.mark.parametrize(
    ("decision", "ran"),
    [
        (Decision.approve(), {"to": "carol", "amount": 100}),
        (Decision.modify({"to": "carol", "amount": 30}), {"to": "carol", "amount": 30}),
    ],
)
def test_a_call_run_again_gets_the_same_execution_key(
    hr: Handrail, decision: Decision, ran: dict[str, Any]
) -> None:
    payments = Payments()
    model = script(calls(call("pay", "p1", to="carol", amount=100)), AIMessage("done"))
    graph = pay_graph(hr, payments.through_runtime(), model, InMemorySaver())
    config = thread()
    first = graph.invoke(ASK, config, version="v2")
    (task_id,) = [task_of(i) for i in first.interrupts]
    hr.as_reviewer("alice").tasks.decide(task_id, decision)
    with pytest.raises(Crash):  # dies inside the tool, after paying
        resume_all(graph, config, first)
    done = graph.invoke(None, config, version="v2")  # LangGraph runs the tools node again
    assert final_text(done) == "done"
    key = f"handrail:{task_id}:{decision.type.value}"
    assert payments.keys == [key, key]  # both runs got the same key: one payment
    assert payments.paid == {key: ran}
    assert len(hr.tasks.list().items) == 1


def test_a_blocking_call_gets_its_execution_key_an_ungated_one_none(hr: Handrail) -> None:
    payments = Payments()
    payments.keys.append(None)  # no crash: this run is not run again
    seen: list[str | None] = []

    @tool
    def peek(runtime: ToolRuntime) -> str:
        """Look at the balance (harmless, not gated)."""
        seen.append(execution_key_of(runtime))
        return "100"

    model = script(
        calls(call("pay", "p1", to="carol", amount=100), call("peek", "k1")), AIMessage("done")
    )
    graph = pay_graph(hr, payments.through_runtime(), model, None, peek)
    with Reviewer(hr.as_reviewer("alice"), {"p1": Decision.approve()}):
        graph.invoke(ASK, thread())
    (task,) = hr.tasks.list().items
    key = f"handrail:{task.id}:approve"
    assert payments.keys == [None, key]
    assert payments.paid == {key: {"to": "carol", "amount": 100}}
    assert seen == [None]
