"""``HandrailMiddleware`` is a drop-in for the locked LangChain's ``HumanInTheLoopMiddleware``:
every argument that class takes, with the same default; ``interrupt_mode`` behaving as it
does ("batched": a turn's gated calls all decided before any runs; "per_call": each call on
its own); and the one default mode of every LangChain and LangGraph gate ("auto")."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from handrail import Decision, Handrail, Status
from handrail_langchain import HandrailMiddleware, ask_human_tool, require_approval
from handrail_langgraph import ReviewedToolNode
from handrail_langgraph.tool_calls import Gate, ToolCallReviewer
from tests.langchain.conftest import Reviewer, Tools, call, calls, script, tool_messages

ASK = {"messages": [{"role": "user", "content": "go"}]}


def test_it_takes_every_argument_of_the_middleware_it_replaces() -> None:
    theirs = inspect.signature(HumanInTheLoopMiddleware.__init__).parameters
    ours = inspect.signature(HandrailMiddleware.__init__).parameters
    assert "interrupt_mode" in theirs  # the locked version has it: this test means something
    for name, param in theirs.items():
        assert name in ours, f"HandrailMiddleware lacks {name!r}"
        mine = ours[name]
        assert mine.kind == param.kind, name
        assert mine.default == param.default or name == "edit_notice", name
    # the edit notice is worded by Handrail (the same words in every adapter); it is a
    # string or None there too
    assert isinstance(ours["edit_notice"].default, str)
    # Handrail's own arguments come after, and none is required
    extra = [n for n in ours if n not in theirs and n not in ("self", "client")]
    assert extra and all(ours[n].default is not inspect.Parameter.empty for n in extra)


def test_an_unknown_interrupt_mode_is_refused(hr: Handrail) -> None:
    with pytest.raises(ValueError, match="interrupt_mode must be 'batched' or 'per_call'"):
        HandrailMiddleware(hr, {"send_email": True}, interrupt_mode="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HumanInTheLoopMiddleware({"send_email": True}, interrupt_mode="all")  # type: ignore[arg-type]


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def by_call(result: Any) -> dict[str, str]:
    """Tool call id to the Handrail task its interrupt waits on."""
    return {i.value["tool_call_id"]: i.value["handrail"]["task_id"] for i in result.interrupts}


def look_again(agent: Any, config: dict[str, Any], result: Any) -> Any:
    resume = {i.id: {"task_id": i.value["handrail"]["task_id"]} for i in result.interrupts}
    return agent.invoke(Command(resume=resume), config, version="v2")


def paused_agent(hr: Handrail, tools: Tools, **options: Any) -> Any:
    model = script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("delete_file", "d1", path="/srv/db"),
            call("lookup", "l1", query="x"),
        ),
        AIMessage("done"),
    )
    middleware = HandrailMiddleware(
        hr,
        {"send_email": True, "delete_file": {"allowed_decisions": ["approve", "reject"]}},
        **options,
    )
    return create_agent(
        model,
        [tools.send_email, tools.delete_file, tools.lookup],
        middleware=[middleware],
        checkpointer=InMemorySaver(),
    )


def test_batched_runs_none_of_a_turn_until_all_are_decided(hr: Handrail, tools: Tools) -> None:
    agent = paused_agent(hr, tools)  # the defaults: batched, auto (a checkpointer: pause)
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    tasks = by_call(first)
    assert sorted(tasks) == ["d1", "e1"]  # both asked together, after the model
    assert agent.get_state(config).next == ("HandrailMiddleware.after_model",)
    assert tools.ledger.done == []  # not even the ungated lookup: the turn waits
    alice = hr.as_reviewer("alice")
    alice.tasks.decide(tasks["e1"], Decision.approve())
    partial = look_again(agent, config, first)
    # e1 is approved, but d1 is not decided: nothing of the turn has run
    assert sorted(by_call(partial)) == ["d1"] and tools.ledger.done == []
    alice.tasks.decide(tasks["d1"], Decision.reject("keep it"))
    done = look_again(agent, config, partial)
    assert done.interrupts == ()
    answers = tool_messages(done.value["messages"])
    assert answers["e1"].content == "sent to bob@example.com"
    assert answers["d1"].status == "error" and "Reason: keep it." in str(answers["d1"].content)
    assert sorted(n for n, _ in tools.ledger.done) == ["lookup", "send_email"]
    assert len(hr.tasks.list().items) == 2  # one task per gated call, never asked twice


def test_per_call_runs_each_call_once_it_is_decided(hr: Handrail, tools: Tools) -> None:
    agent = paused_agent(hr, tools, interrupt_mode="per_call")
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    tasks = by_call(first)
    assert sorted(tasks) == ["d1", "e1"]
    assert tools.ledger.of("lookup") == [{"query": "x"}]  # ungated calls do not wait
    alice = hr.as_reviewer("alice")
    alice.tasks.decide(tasks["e1"], Decision.approve())
    partial = look_again(agent, config, first)
    # e1 ran as soon as it was decided; d1 still waits
    assert sorted(by_call(partial)) == ["d1"]
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
    alice.tasks.decide(tasks["d1"], Decision.reject("keep it"))
    done = look_again(agent, config, partial)
    assert done.interrupts == () and tools.ledger.of("delete_file") == []
    assert len(hr.tasks.list().items) == 2


@pytest.mark.parametrize("interrupt_mode", ["batched", "per_call"])
def test_both_modes_block_without_a_checkpointer(
    hr: Handrail, tools: Tools, interrupt_mode: str
) -> None:
    model = script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("transfer", "t1", to="carol", amount=100),
        ),
        AIMessage("done"),
    )
    middleware = HandrailMiddleware(
        hr, {"send_email": True, "transfer": True}, interrupt_mode=interrupt_mode, timeout=20
    )  # type: ignore[arg-type]
    agent = create_agent(model, [tools.send_email, tools.transfer], middleware=[middleware])
    decisions = {"e1": Decision.approve(), "t1": Decision.modify({"to": "carol", "amount": 40})}
    with Reviewer(hr.as_reviewer("alice"), decisions, order=["e1", "t1"]):
        out = agent.invoke(ASK)
    answers = tool_messages(out["messages"])
    assert answers["e1"].content == "sent to bob@example.com"
    assert str(answers["t1"].content).endswith("Tool response:\npaid 40 to carol")
    assert tools.ledger.of("transfer") == [{"to": "carol", "amount": 40}]
    found = hr.tasks.list().items
    assert len(found) == 2 and all(t.status is Status.VERIFIED for t in found)


GATES = {
    "HandrailMiddleware": HandrailMiddleware.__init__,
    "require_approval": require_approval,
    "ask_human_tool": ask_human_tool,
    "ReviewedToolNode": ReviewedToolNode.__init__,
    "ToolCallReviewer": ToolCallReviewer.__init__,
    "Gate": Gate,
}


@pytest.mark.parametrize("name", sorted(GATES))
def test_every_gate_defaults_to_the_same_mode(name: str) -> None:
    assert inspect.signature(GATES[name]).parameters["mode"].default == "auto"


def test_the_default_pauses_with_a_checkpointer_in_every_adapter(
    hr: Handrail, tools: Tools
) -> None:
    """The rule: pause (durably) where the run has a checkpointer, block where it has none.
    The middleware, a gated tool and the reviewed tool node all follow it."""
    gated = require_approval(tools.send_email, client=hr)
    tool_agent = create_agent(
        script(calls(call("send_email", "e1", to="bob@example.com", body="hi")), AIMessage("")),
        [gated],
        checkpointer=InMemorySaver(),
    )
    middleware_agent = paused_agent(hr, tools)
    for agent in (tool_agent, middleware_agent):
        result = agent.invoke(ASK, thread(), version="v2")
        assert "e1" in by_call(result)  # paused, not blocked
    assert tools.ledger.done == []


async def test_batched_async_agents_too(hr: Handrail, tools: Tools) -> None:
    agent = paused_agent(hr, tools)
    config = thread()
    first = await agent.ainvoke(ASK, config, version="v2")
    tasks = by_call(first)
    assert sorted(tasks) == ["d1", "e1"] and tools.ledger.done == []
    alice = hr.as_reviewer("alice")
    await alice.tasks.adecide(tasks["e1"], Decision.modify({"to": "bob@example.com", "body": "yo"}))
    await alice.tasks.adecide(tasks["d1"], Decision.approve())
    resume = {i.id: {"task_id": i.value["handrail"]["task_id"]} for i in first.interrupts}
    done = await agent.ainvoke(Command(resume=resume), config, version="v2")
    assert done.interrupts == ()
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "yo"}]
    assert tools.ledger.of("delete_file") == [{"path": "/srv/db"}]
    answers = tool_messages(done.value["messages"])
    assert "Executed instead: send_email" in str(answers["e1"].content)
