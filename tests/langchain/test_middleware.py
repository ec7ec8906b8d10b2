"""``HandrailMiddleware`` in ``create_agent``, blocking mode (no checkpointer): the same
configuration as ``HumanInTheLoopMiddleware``, one Handrail task per gated call, every call
answered, nothing run without a recorded approve or edit."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import InterruptOnConfig
from langchain_core.messages import AIMessage

from handrail import Decision, DecisionType, Handrail, RetryPolicy, Status
from handrail_langchain import DO_NOT_RETRY, HandrailMiddleware
from tests.langchain.conftest import Reviewer, Tools, call, calls, script, tool_messages
from tests.server._live import free_port

ASK = {"messages": [{"role": "user", "content": "tidy up"}]}


def one_turn_of_four(tools: Tools) -> Any:
    """A model that proposes four gated calls and an ungated one at once, then stops."""
    return script(
        calls(
            call("send_email", "e1", to="bob@example.com", body="hi"),
            call("transfer", "t1", to="carol", amount=100),
            call("delete_file", "d1", path="/srv/db"),
            call("send_email", "e2", to="dave@example.com", body="hello"),
            call("lookup", "l1", query="weather"),
        ),
        AIMessage("all handled"),
    )


MIXED = {
    "e1": Decision.approve(),
    "t1": Decision.modify({"to": "carol", "amount": 40}, "too much"),
    "d1": Decision.reject("keep the database"),
    "e2": Decision.respond("Dave is on holiday; I told him myself."),
}


def agent_of(hr: Handrail, tools: Tools, model: Any, **options: Any) -> Any:
    gated: dict[str, bool | InterruptOnConfig] = {
        "send_email": True,
        "transfer": {"allowed_decisions": ["approve", "edit", "reject"]},
        "delete_file": {"allowed_decisions": ["approve", "reject"], "description": "Deleting!"},
        "lookup": False,
    }
    options.setdefault("timeout", 20)  # a broken test fails rather than hangs
    middleware = HandrailMiddleware(hr, gated, **options)
    return create_agent(
        model,
        [tools.send_email, tools.transfer, tools.delete_file, tools.lookup],
        middleware=[middleware],
    )


def check_mixed_turn(hr: Handrail, tools: Tools, messages: list[Any]) -> None:
    answers = tool_messages(messages)
    assert set(answers) == {"e1", "t1", "d1", "e2", "l1"}  # every call answered, once
    assert (answers["e1"].content, answers["e1"].status) == ("sent to bob@example.com", "success")
    assert str(answers["t1"].content).endswith("Tool response:\npaid 40 to carol")
    assert "Executed instead: transfer" in str(answers["t1"].content)
    assert answers["d1"].status == "error"
    assert "keep the database" in str(answers["d1"].content)
    assert DO_NOT_RETRY in str(answers["d1"].content)
    assert (answers["e2"].content, answers["e2"].status) == (MIXED["e2"].message, "success")
    assert answers["l1"].content == "found weather"
    assert messages[-1].content == "all handled"
    # side effects: exactly what was approved, as approved
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
    assert tools.ledger.of("transfer") == [{"to": "carol", "amount": 40}]
    assert tools.ledger.of("delete_file") == []
    assert tools.ledger.of("lookup") == [{"query": "weather"}]
    # one task per gated call: the decisions cannot miscount
    tasks = {t.metadata["tool_call_id"]: t for t in hr.tasks.list().items}
    assert sorted(tasks) == ["d1", "e1", "e2", "t1"]
    assert all(t.status is Status.VERIFIED for t in tasks.values())
    assert tasks["d1"].allowed_decisions == (DecisionType.APPROVE, DecisionType.REJECT)
    # the turn's calls are one batch, which reviewers can list together
    (batch,) = {t.batch_id for t in tasks.values()}
    assert batch is not None and batch.startswith("turn:")
    assert {t.id for t in hr.tasks.list(batch_id=batch).items} == {t.id for t in tasks.values()}
    assert tasks["d1"].instructions == "Deleting!"
    assert tasks["e1"].instructions == (
        "Tool execution requires approval\n\nTool: send_email\n"
        "Args: {'to': 'bob@example.com', 'body': 'hi'}"
    )


def test_a_turn_of_mixed_decisions_drops_nothing(hr: Handrail, tools: Tools) -> None:
    """The reviewer waits until all four calls are queued, then decides them in the reverse
    of the model's order: the calls wait side by side (one after the other, the first
    would time out), and each is resolved on its own."""
    agent = agent_of(hr, tools, one_turn_of_four(tools), timeout=20)
    with Reviewer(hr.as_reviewer("alice"), MIXED, order=["e2", "d1", "t1", "e1"]):
        result = agent.invoke(ASK)
    check_mixed_turn(hr, tools, result["messages"])


async def test_a_turn_of_mixed_decisions_drops_nothing_async(hr: Handrail, tools: Tools) -> None:
    agent = agent_of(hr, tools, one_turn_of_four(tools), timeout=20)
    with Reviewer(hr.as_reviewer("alice"), MIXED, order=["d1", "e2", "e1", "t1"]):
        result = await agent.ainvoke(ASK)
    check_mixed_turn(hr, tools, result["messages"])


def test_each_model_turn_is_a_batch_of_its_own(hr: Handrail, tools: Tools) -> None:
    model = script(
        calls(call("send_email", "a1", to="a@example.com", body="1")),
        calls(
            call("send_email", "b1", to="b@example.com", body="2"),
            call("send_email", "b2", to="c@example.com", body="3"),
        ),
        AIMessage("done"),
    )
    agent = agent_of(hr, tools, model)
    approve = {k: Decision.approve() for k in ("a1", "b1", "b2")}
    with Reviewer(hr.as_reviewer("alice"), approve):
        agent.invoke(ASK)
    batch = {t.metadata["tool_call_id"]: t.batch_id for t in hr.tasks.list().items}
    assert batch["b1"] == batch["b2"] != batch["a1"]
    assert None not in batch.values()


def test_an_invalid_edit_does_not_run(hr: Handrail, tools: Tools) -> None:
    model = script(calls(call("transfer", "t1", to="carol", amount=100)), AIMessage("ok"))
    agent = agent_of(hr, tools, model)
    with Reviewer(hr.as_reviewer("alice"), {"t1": Decision.modify({"to": "carol", "amount": 0})}):
        result = agent.invoke(ASK)
    answer = tool_messages(result["messages"])["t1"]
    assert answer.status == "error" and "between 1 and 1000" in str(answer.content)
    assert tools.ledger.done == []


def test_a_decision_the_tool_does_not_allow_is_refused(hr: Handrail, tools: Tools) -> None:
    model = script(calls(call("delete_file", "d1", path="/srv/db")), AIMessage("ok"))
    agent = agent_of(hr, tools, model, timeout=0.3)
    refused: list[Exception] = []

    def try_respond(task: Any) -> None:
        try:
            hr.as_reviewer("alice").tasks.decide(task.id, Decision.respond("done"))
        except Exception as exc:
            refused.append(exc)

    with Reviewer(hr.as_reviewer("alice"), try_respond):
        result = agent.invoke(ASK)
    assert "'respond' is not one of ['approve', 'reject']" in str(refused[0])
    assert tool_messages(result["messages"])["d1"].status == "error"
    assert tools.ledger.done == []


def test_when_and_false_skip_the_review(hr: Handrail, tools: Tools) -> None:
    only_strangers: InterruptOnConfig = {
        "allowed_decisions": ["approve", "reject"],
        "when": lambda request: not request.tool_call["args"]["to"].endswith("@example.com"),
        "description": lambda tool_call, state, runtime: (
            f"{len(state['messages'])} messages so far"
        ),
    }
    middleware = HandrailMiddleware(hr, {"send_email": only_strangers, "lookup": False}, timeout=20)
    model = script(
        calls(
            call("send_email", "in", to="bob@example.com", body="hi"),
            call("send_email", "out", to="eve@elsewhere.org", body="hi"),
            call("lookup", "l1", query="x"),
        ),
        AIMessage("done"),
    )
    agent = create_agent(model, [tools.send_email, tools.lookup], middleware=[middleware])
    with Reviewer(hr.as_reviewer("alice"), {"out": Decision.reject("not to strangers")}):
        result = agent.invoke(ASK)
    answers = tool_messages(result["messages"])
    assert answers["in"].content == "sent to bob@example.com" and answers["out"].status == "error"
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
    (task,) = hr.tasks.list().items
    assert task.metadata["tool_call_id"] == "out" and task.instructions == "2 messages so far"


def test_interrupt_on_is_checked_like_langchains(hr: Handrail) -> None:
    with pytest.raises(ValueError, match="non-empty 'allowed_decisions'"):
        HandrailMiddleware(hr, {"send_email": {"allowed_decisions": []}})
    with pytest.raises(ValueError, match="unknown decision 'accept'"):
        HandrailMiddleware(hr, {"send_email": {"allowed_decisions": ["accept"]}})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="mode"):
        HandrailMiddleware(hr, {"send_email": True}, mode="batched")  # type: ignore[arg-type]
    middleware = HandrailMiddleware(
        hr, {"a": True, "b": False, "c": {"allowed_decisions": ["modify"]}}
    )
    assert sorted(middleware.interrupt_on) == ["a", "c"]
    assert middleware.interrupt_on["a"].allowed == (
        DecisionType.APPROVE,
        DecisionType.MODIFY,
        DecisionType.REJECT,
        DecisionType.RESPOND,
    )


# ---------------------------------------------------------------- failing closed


def test_timeout_answers_every_call_and_runs_none(hr: Handrail, tools: Tools) -> None:
    agent = agent_of(hr, tools, one_turn_of_four(tools), timeout=0.3)
    result = agent.invoke(ASK)
    answers = tool_messages(result["messages"])
    for call_id in ("e1", "t1", "d1", "e2"):
        assert answers[call_id].status == "error"
        assert "No human answered in time" in str(answers[call_id].content)
    assert [name for name, _ in tools.ledger.done] == ["lookup"]
    assert {t.status for t in hr.tasks.list().items} == {Status.CANCELLED}


def test_an_unreachable_server_runs_nothing(tools: Tools) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Handrail(url, "hr_live_nobody", retry=RetryPolicy(max_attempts=1)) as down:
        result = agent_of(down, tools, one_turn_of_four(tools)).invoke(ASK)
    answers = tool_messages(result["messages"])
    assert all("could not reach" in str(answers[i].content) for i in ("e1", "t1", "d1", "e2"))
    assert [name for name, _ in tools.ledger.done] == ["lookup"]
    assert result["messages"][-1].content == "all handled"


def test_a_model_that_retries_a_rejected_call_is_told_not_to(hr: Handrail, tools: Tools) -> None:
    model = script(
        calls(call("delete_file", "d1", path="/srv/db")),
        calls(call("delete_file", "d2", path="/srv/db")),  # the same call again
        AIMessage("I will leave the database alone."),
    )
    agent = agent_of(hr, tools, model)
    rejections = {"d1": Decision.reject("never"), "d2": Decision.reject("I said never")}
    with Reviewer(hr.as_reviewer("alice"), rejections):
        result = agent.invoke(ASK)
    answers = tool_messages(result["messages"])
    for call_id in ("d1", "d2"):
        assert answers[call_id].status == "error"
        assert "Do not retry this call, or the same call with new ids" in str(
            answers[call_id].content
        )
    assert tools.ledger.done == [] and len(hr.tasks.list().items) == 2


def test_a_tool_call_without_an_id_is_refused(hr: Handrail, tools: Tools) -> None:
    model = script(
        calls(
            {
                "name": "send_email",
                "args": {"to": "x", "body": "y"},
                "id": None,
                "type": "tool_call",
            }
        )
    )
    agent = create_agent(
        model, [tools.send_email], middleware=[HandrailMiddleware(hr, {"send_email": True})]
    )
    with pytest.raises(ValueError, match="has no id"):
        agent.invoke(ASK)
    assert tools.ledger.done == [] and hr.tasks.list().items == ()


def test_a_call_to_a_tool_the_agent_lacks_asks_no_one(hr: Handrail, tools: Tools) -> None:
    model = script(calls(call("wire_money", "w1", to="mallory")), AIMessage("ok"))
    middleware = HandrailMiddleware(hr, {"wire_money": True}, timeout=20)
    agent = create_agent(model, [tools.lookup], middleware=[middleware])
    result = agent.invoke(ASK)
    answer = tool_messages(result["messages"])["w1"]
    assert answer.status == "error" and "wire_money" in str(answer.content)
    assert hr.tasks.list().items == () and tools.ledger.done == []


def test_a_tool_call_id_repeated_by_another_run_is_asked_again(hr: Handrail, tools: Tools) -> None:
    """Some models number their calls afresh in every run: the second run's "call_0" is a
    new call, so it must not find (and reuse) the approval given to the first run's."""
    decisions = iter([Decision.approve(), Decision.reject("not twice")])
    with Reviewer(hr.as_reviewer("alice"), lambda task: next(decisions)):
        for _ in range(2):
            proposal = calls(call("send_email", "call_0", to="bob@example.com", body="hi"))
            agent_of(hr, tools, script(proposal, AIMessage("ok"))).invoke(ASK)
    first, second = sorted(hr.tasks.list().items, key=lambda t: t.created_at)
    assert first.id != second.id and first.idempotency_key != second.idempotency_key
    assert str(first.idempotency_key).startswith("langchain:send_email:call_0:")
    assert [t.decision.type for t in (first, second)] == [DecisionType.APPROVE, DecisionType.REJECT]  # type: ignore[union-attr]
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
