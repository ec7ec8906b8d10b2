"""Durable pauses: inside a LangGraph run with a checkpointer the gate pauses the graph
with ``interrupt()``; each pause is one Handrail task however often LangGraph re-runs the
code; the resume value only says "look again", so only a recorded decision runs anything."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pydantic
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.human_in_the_loop import HITLRequest, ToolApprovalRequest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.errors import is_invalid_resume
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt.interrupt import HumanInterrupt
from langgraph.types import Command

from handrail import Decision, Handrail, ManualClock, Status
from handrail.client import decision_of
from handrail_langchain import HandrailMiddleware, ask_human_tool, require_approval
from handrail_langchain.interrupts import (
    DurableRun,
    NoDurableRun,
    PausePoint,
    ResumeSignal,
    current_run,
    pause,
    pause_all,
    paused_thread,
    task_id_of,
    task_key,
)
from tests.langchain.conftest import Reviewer, Tools, call, calls, script, tool_messages

ASK = {"messages": [{"role": "user", "content": "go"}]}


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def task_ids(result: Any) -> dict[str, str]:
    """Interrupt id to Handrail task id."""
    return {i.id: i.value["handrail"]["task_id"] for i in result.interrupts}


def by_call(result: Any) -> dict[str, Any]:
    """Tool call id to interrupt."""
    return {i.value["tool_call_id"]: i for i in result.interrupts}


def look_again(agent: Any, config: dict[str, Any], result: Any, value: Any = None) -> Any:
    """Resume every pending interrupt; by default with the task id, as a resumer would."""
    resume = {
        i.id: value if value is not None else {"task_id": i.value["handrail"]["task_id"]}
        for i in result.interrupts
    }
    return agent.invoke(Command(resume=resume), config, version="v2")


def two_emails_and_a_lookup() -> Any:
    return script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("send_email", "e2", to="eve@example.com", body="hi"),
            call("lookup", "l1", query="x"),
        ),
        AIMessage("done"),
    )


# ---------------------------------------------------------------- the pieces


def test_task_keys_are_pure_and_tell_pauses_apart() -> None:
    key = task_key("t1", "tools:abc", "tool:c1", 0)
    assert key == task_key("t1", "tools:abc", "tool:c1", 0)
    assert key.startswith("langgraph:") and len(key) <= 80
    others = {
        task_key("t2", "tools:abc", "tool:c1", 0),
        task_key("t1", "tools:abd", "tool:c1", 0),
        task_key("t1", "tools:abc", "tool:c2", 0),
        task_key("t1", "tools:abc", "tool:c1", 1),
    }
    assert key not in others and len(others) == 4


def test_current_run_only_where_interrupt_can_pause(tools: Tools) -> None:
    assert current_run() is None  # not in a runnable at all
    seen: list[DurableRun | None] = []

    @tool
    def probe() -> str:
        """Look where we are."""
        seen.append(current_run())
        return "ok"

    model = lambda: script(calls(call("probe", "p1")), AIMessage("done"))  # noqa: E731
    create_agent(model(), [probe]).invoke(ASK)
    config = thread()
    create_agent(model(), [probe], checkpointer=InMemorySaver()).invoke(ASK, config)
    assert seen[0] is None
    run = seen[1]
    assert run is not None and run.thread_id == config["configurable"]["thread_id"]
    assert run.checkpoint_ns.startswith("tools:")


def test_pausing_outside_a_durable_run_is_a_setup_error(hr: Handrail) -> None:
    with pytest.raises(NoDurableRun, match="checkpointer"):
        pause(hr, {"kind": "review", "action": {"name": "x"}})
    assert hr.tasks.list().items == ()


# ---------------------------------------------------------------- a gated tool pauses


def test_a_gated_tool_pauses_and_trusts_only_the_recorded_decision(
    hr: Handrail, tools: Tools
) -> None:
    gated = require_approval(tools.send_email, client=hr)
    agent = create_agent(
        two_emails_and_a_lookup(), [gated, tools.lookup], checkpointer=InMemorySaver()
    )
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    assert len(first.interrupts) == 2 and len(set(task_ids(first).values())) == 2
    assert tools.ledger.of("send_email") == [] and len(hr.tasks.list().items) == 2

    # a resume that claims approval while nobody decided: nothing runs, it pauses again
    claimed = look_again(agent, config, first, {"type": "approve"})
    assert sorted(task_ids(claimed).values()) == sorted(task_ids(first).values())
    assert set(task_ids(claimed)).isdisjoint(task_ids(first))  # new interrupts, same tasks
    assert tools.ledger.of("send_email") == [] and len(hr.tasks.list().items) == 2

    alice = hr.as_reviewer("alice")
    pending = by_call(claimed)
    alice.tasks.decide(pending["e1"].value["handrail"]["task_id"], Decision.approve())
    alice.tasks.decide(pending["e2"].value["handrail"]["task_id"], Decision.reject("not eve"))
    done = look_again(agent, config, claimed)
    assert done.interrupts == ()
    answers = tool_messages(done.value["messages"])
    assert answers["e1"].content == "sent to bob@example.com"
    assert answers["e2"].status == "error" and "not eve" in str(answers["e2"].content)
    assert answers["l1"].content == "found x"
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
    assert tools.ledger.of("lookup") == [{"query": "x"}]  # ran once, before the pause
    assert len(hr.tasks.list().items) == 2  # however often the tools re-ran


def test_the_payload_reads_as_every_inbox_expects(hr: Handrail, tools: Tools) -> None:
    gated = require_approval(tools.transfer, client=hr, description="Pay the invoice?")
    model = script(calls(call("transfer", "t1", to="carol", amount=100)), AIMessage("ok"))
    agent = create_agent(model, [gated], checkpointer=InMemorySaver())
    (paused,) = agent.invoke(ASK, thread(), version="v2").interrupts
    value = paused.value
    task = hr.tasks.get(value["handrail"]["task_id"])
    assert value["handrail"]["status"] == "posted"
    assert value["handrail"]["allowed_decisions"] == ["approve", "reject", "modify"]
    assert value["handrail"]["idempotency_key"] == task.idempotency_key
    # LangChain's HumanInTheLoopMiddleware: a HITLRequest, and a per-call approval request
    request = pydantic.TypeAdapter(HITLRequest).validate_python(value)
    assert request["action_requests"] == [
        {
            "name": "transfer",
            "args": {"to": "carol", "amount": 100},
            "description": "Pay the invoice?",
        }
    ]
    assert request["review_configs"][0]["allowed_decisions"] == ["approve", "reject", "edit"]
    assert request["review_configs"][0]["args_schema"] == task.action.args_schema
    per_call = pydantic.TypeAdapter(ToolApprovalRequest).validate_python(value)
    assert (per_call["type"], per_call["tool_call_id"], per_call["name"]) == (
        "tool_approval",
        "t1",
        "transfer",
    )

    # Agent Inbox: a HumanInterrupt (the schema langgraph still ships for it)
    inbox = pydantic.TypeAdapter(HumanInterrupt).validate_python(value)
    assert inbox["action_request"] == {"action": "transfer", "args": {"to": "carol", "amount": 100}}
    assert inbox["config"] == {
        "allow_ignore": True,
        "allow_respond": False,
        "allow_edit": True,
        "allow_accept": True,
    }
    assert paused.response_schema == ResumeSignal.model_json_schema()
    assert task_id_of(paused) == task_id_of(value) == task.id
    assert task_id_of({"handrail": {}}) is None and task_id_of("other") is None


def test_an_invalid_resume_is_refused_and_the_pause_stays(hr: Handrail, tools: Tools) -> None:
    gated = require_approval(tools.send_email, client=hr)
    model = script(
        calls(call("send_email", "e1", to="bob@example.com", body="hi")), AIMessage("ok")
    )
    agent = create_agent(model, [gated], checkpointer=InMemorySaver())
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    for bad in ("yes", True, {"type": "sure"}, {"task_id": 7}):
        with pytest.raises(pydantic.ValidationError) as refused:
            look_again(agent, config, first, bad)
        assert is_invalid_resume(refused.value)
    state = agent.get_state(config)
    assert [i.id for i in state.interrupts] == [i.id for i in first.interrupts]
    hr.as_reviewer("alice").tasks.decide(next(iter(task_ids(first).values())), Decision.approve())
    done = look_again(agent, config, first)
    assert tool_messages(done.value["messages"])["e1"].content == "sent to bob@example.com"
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]


def test_a_refused_resume_survives_a_tool_that_handles_validation_errors(
    hr: Handrail, tools: Tools
) -> None:
    """``handle_validation_error=True`` turns a ValidationError inside the tool's run into a
    result; a refused resume value must not be one of those (the pause would be lost)."""
    lenient = tools.send_email.model_copy(update={"handle_validation_error": True})
    gated = require_approval(lenient, client=hr)
    model = script(
        calls(call("send_email", "e1", to="bob@example.com", body="hi")), AIMessage("ok")
    )
    agent = create_agent(model, [gated], checkpointer=InMemorySaver())
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    with pytest.raises(pydantic.ValidationError):
        look_again(agent, config, first, "approved!")
    assert [i.id for i in agent.get_state(config).interrupts] == [i.id for i in first.interrupts]
    assert tools.ledger.done == []


def test_an_expired_review_resumes_as_a_reject(tools: Tools) -> None:
    clock = ManualClock()
    with Handrail.local(clock=clock, sweep_interval=0.02) as hr:
        gated = require_approval(tools.send_email, client=hr, timeout=60)
        model = script(
            calls(call("send_email", "e1", to="bob@example.com", body="hi")), AIMessage("ok")
        )
        agent = create_agent(model, [gated], checkpointer=InMemorySaver())
        config = thread()
        first = agent.invoke(ASK, config, version="v2")
        (task_id,) = task_ids(first).values()
        assert hr.tasks.get(task_id).sla_seconds == 60
        clock.advance(61)
        assert hr.tasks.wait(task_id, timeout=10).status is Status.EXPIRED
        done = look_again(agent, config, first)
    answer = tool_messages(done.value["messages"])["e1"]
    assert answer.status == "error"
    assert "The review expired before anyone decided" in str(answer.content)
    assert tools.ledger.done == []


def test_a_restarted_process_resumes_the_same_task(tmp_path: Path, tools: Tools) -> None:
    """Kill nothing, but start over: a new client on the same Handrail database, a new
    agent on the same checkpoint file. The resumed run finds the task made before."""
    handrail_db, checkpoints = tmp_path / "handrail.db", tmp_path / "checkpoints.db"
    config = thread()

    def agent_on(hr: Handrail, connection: sqlite3.Connection, *turns: AIMessage) -> Any:
        gated = require_approval(tools.send_email, client=hr)
        return create_agent(script(*turns), [gated], checkpointer=SqliteSaver(connection))

    proposal = calls(call("send_email", "e1", to="bob@example.com", body="hi"))
    with (
        Handrail.local(handrail_db) as hr,
        sqlite3.connect(checkpoints, check_same_thread=False) as c,
    ):
        first = agent_on(hr, c, proposal).invoke(ASK, config, version="v2")
    (task_id,) = task_ids(first).values()

    with (
        Handrail.local(handrail_db) as hr,
        sqlite3.connect(checkpoints, check_same_thread=False) as c,
    ):
        hr.as_reviewer("alice").tasks.decide(
            task_id, Decision.modify({"to": "bob@example.com", "body": "hello"})
        )
        agent = agent_on(hr, c, AIMessage("ok"))  # the model's next turn, after the tool
        done = look_again(agent, config, agent.get_state(config))
        assert [t.id for t in hr.tasks.list().items] == [task_id]
    assert "Tool response:\nsent to bob@example.com" in str(
        tool_messages(done.value["messages"])["e1"].content
    )
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hello"}]


# ---------------------------------------------------------------- the middleware pauses


def middleware_agent(hr: Handrail, tools: Tools, model: Any, **options: Any) -> Any:
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


def three_calls() -> Any:
    return script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("delete_file", "d1", path="/srv/db"),
            call("send_email", "e2", to="eve@example.com", body="hi"),
        ),
        AIMessage("done"),
    )


DECISIONS = {
    "e1": Decision.modify({"to": "bob@example.com", "body": "hello"}),
    "d1": Decision.reject("keep it"),
    "e2": Decision.respond("Eve already knows."),
}


def check_three(hr: Handrail, tools: Tools, messages: list[Any]) -> None:
    answers = tool_messages(messages)
    assert str(answers["e1"].content).endswith("Tool response:\nsent to bob@example.com")
    assert answers["d1"].status == "error" and "keep it" in str(answers["d1"].content)
    assert (answers["e2"].content, answers["e2"].status) == ("Eve already knows.", "success")
    assert tools.ledger.done == [("send_email", {"to": "bob@example.com", "body": "hello"})]
    assert len(hr.tasks.list().items) == 3


def test_the_middleware_pauses_each_call_on_its_own(hr: Handrail, tools: Tools) -> None:
    agent = middleware_agent(hr, tools, three_calls(), mode="interrupt")
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    assert sorted(by_call(first)) == ["d1", "e1", "e2"] and len(set(task_ids(first))) == 3
    alice = hr.as_reviewer("alice")
    # decide one, resume: that call completes, the other two stay paused
    alice.tasks.decide(by_call(first)["d1"].value["handrail"]["task_id"], DECISIONS["d1"])
    partial = look_again(agent, config, first)
    assert sorted(by_call(partial)) == ["e1", "e2"] and tools.ledger.done == []
    for call_id, paused in by_call(partial).items():
        alice.tasks.decide(paused.value["handrail"]["task_id"], DECISIONS[call_id])
    done = look_again(agent, config, partial)
    assert done.interrupts == ()
    check_three(hr, tools, done.value["messages"])


async def test_the_middleware_pauses_async(hr: Handrail, tools: Tools) -> None:
    agent = middleware_agent(hr, tools, three_calls(), mode="interrupt")
    config = thread()
    first = await agent.ainvoke(ASK, config, version="v2")
    alice = hr.as_reviewer("alice")
    for call_id, paused in by_call(first).items():
        await alice.tasks.adecide(paused.value["handrail"]["task_id"], DECISIONS[call_id])
    resume = {i.id: {"task_id": i.value["handrail"]["task_id"]} for i in first.interrupts}
    done = await agent.ainvoke(Command(resume=resume), config, version="v2")
    assert done.interrupts == ()
    check_three(hr, tools, done.value["messages"])


def test_interrupt_mode_without_a_checkpointer_is_refused(hr: Handrail, tools: Tools) -> None:
    middleware = HandrailMiddleware(hr, {"send_email": True}, mode="interrupt")
    model = script(calls(call("send_email", "e1", to="bob@example.com", body="hi")))
    agent = create_agent(model, [tools.send_email], middleware=[middleware])
    with pytest.raises(NoDurableRun, match="checkpointer"):
        agent.invoke(ASK)
    assert tools.ledger.done == [] and hr.tasks.list().items == ()


def test_block_mode_blocks_even_with_a_checkpointer(hr: Handrail, tools: Tools) -> None:
    agent = middleware_agent(hr, tools, three_calls(), mode="block", timeout=20)
    with Reviewer(hr.as_reviewer("alice"), DECISIONS):
        result = agent.invoke(ASK, thread(), version="v2")
    assert result.interrupts == ()
    check_three(hr, tools, result.value["messages"])


# ---------------------------------------------------------------- a human answers


def test_ask_human_pauses_until_answered(hr: Handrail) -> None:
    ask = ask_human_tool(
        hr,
        output_schema={
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
        },
    )
    model = script(calls(call("ask_human", "q1", question="Ship it?")), AIMessage("shipped"))
    agent = create_agent(model, [ask], checkpointer=InMemorySaver())
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    (paused,) = first.interrupts
    assert paused.value["handrail"]["kind"] == "judgment"
    assert paused.value["action_requests"][0]["args"] == {"question": "Ship it?"}
    assert paused.value["review_configs"][0]["allowed_decisions"] == ["respond"]
    alice = hr.as_reviewer("alice")
    task_id = paused.value["handrail"]["task_id"]
    alice.tasks.claim(task_id)
    alice.tasks.submit(task_id, {"ok": True})
    done = look_again(agent, config, first)
    assert tool_messages(done.value["messages"])["q1"].content == '{"ok": true}'
    assert len(hr.tasks.list().items) == 1


# ---------------------------------------------------------------- one node, two pauses


class _State(TypedDict, total=False):
    amounts: list[int]
    outcomes: list[str]


def test_two_pauses_in_one_node_are_two_tasks(hr: Handrail) -> None:
    """What the LangGraph adapter's review node does: :func:`pause` twice with the same
    identity, in one node. Positions tell them apart; a re-run finds both again."""
    ran: list[int] = []

    def review(state: _State) -> _State:
        decisions = []
        for amount in state["amounts"]:
            spec = {"kind": "review", "action": {"name": "refund", "args": {"amount": amount}}}
            decisions.append(decision_of(pause(hr, spec, identity="review")))
        # side effects after every pause: a re-run repeats what comes before a pause
        ran.extend(a for a, d in zip(state["amounts"], decisions, strict=True) if d.approved)
        return {"outcomes": [d.type.value for d in decisions]}

    builder: StateGraph[_State] = StateGraph(_State)
    builder.add_node("review", review)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = thread()
    first = graph.invoke({"amounts": [10, 20]}, config, version="v2")
    (paused,) = first.interrupts
    alice = hr.as_reviewer("alice")
    alice.tasks.decide(paused.value["handrail"]["task_id"], Decision.approve())
    second = look_again(graph, config, first)
    (paused_again,) = second.interrupts
    assert paused_again.value["action_requests"][0]["args"] == {"amount": 20}
    alice.tasks.decide(paused_again.value["handrail"]["task_id"], Decision.reject("no"))
    done = look_again(graph, config, second)
    assert done.value["outcomes"] == ["approve", "reject"]
    assert ran == [10] and len(hr.tasks.list().items) == 2


def test_pause_all_pauses_for_every_open_task_at_once(hr: Handrail) -> None:
    """:func:`pause_all`: every task created first, one interrupt per open task (distinct
    ids), any resume reads them all again; each task names the thread it pauses."""

    def both(state: _State) -> _State:
        run = current_run()
        assert run is not None
        points = [
            PausePoint(
                {"kind": "review", "action": {"name": "refund", "args": {"amount": a}}},
                task_key(run.thread_id, run.checkpoint_ns, "refund", i),
            )
            for i, a in enumerate(state["amounts"])
        ]
        return {"outcomes": [decision_of(t).type.value for t in pause_all(hr, points)]}

    builder: StateGraph[_State] = StateGraph(_State)
    builder.add_node("both", both)
    builder.add_edge(START, "both")
    builder.add_edge("both", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = thread()
    first = graph.invoke({"amounts": [10, 20, 30]}, config, version="v2")
    assert len({i.id for i in first.interrupts}) == 3
    tasks = [hr.tasks.get(i) for i in task_ids(first).values()]
    assert {paused_thread(t) for t in tasks} == {config["configurable"]["thread_id"]}
    assert paused_thread(hr.tasks.create(kind="review", action={"name": "x"})) is None
    alice = hr.as_reviewer("alice")
    by_amount = {t.action.args["amount"]: t for t in tasks if t.action is not None}
    alice.tasks.decide(by_amount[20].id, Decision.approve())  # one of the side interrupts
    (side,) = [i for i in first.interrupts if i.value["handrail"]["task_id"] == by_amount[20].id]
    partial = graph.invoke(
        Command(resume={side.id: {"task_id": by_amount[20].id}}), config, version="v2"
    )
    assert sorted(i.value["args"]["amount"] for i in partial.interrupts) == [10, 30]
    alice.tasks.decide(by_amount[10].id, Decision.reject("no"))
    alice.tasks.decide(by_amount[30].id, Decision.approve())
    done = look_again(graph, config, partial)
    assert done.value["outcomes"] == ["reject", "approve", "approve"]
    assert len([t for t in hr.tasks.list().items if t.task_type == "refund"]) == 3
