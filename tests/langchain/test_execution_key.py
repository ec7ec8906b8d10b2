"""The execution key an approved call runs with, in the LangChain adapter: the same on
every run of the call for one decision (LangGraph runs the tool node again when its
process dies inside it), so a side effect done once per key is done once.

``HandrailMiddleware`` (both interrupt modes) hands it to the tool's ``ToolRuntime``;
a ``require_approval`` tool hands it to the wrapped tool's ``RunnableConfig``. The dying
run is :class:`~tests.langchain.conftest.Crash`, raised inside the tool after paying.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from handrail import Decision, Handrail
from handrail_langchain import HandrailMiddleware, require_approval
from tests.langchain.conftest import Crash, Payments, Reviewer, call, calls, script
from tests.langgraph.conftest import resume_all, task_of, thread

ASK = {"messages": [{"role": "user", "content": "pay carol"}]}
DECISIONS = [
    (Decision.approve(), {"to": "carol", "amount": 100}),
    (Decision.modify({"to": "carol", "amount": 30}), {"to": "carol", "amount": 30}),
]


def model() -> Any:
    return script(calls(call("pay", "p1", to="carol", amount=100)), AIMessage("done"))


def paid_once_over_two_runs(
    hr: Handrail, agent: Any, payments: Payments, decision: Decision, ran: dict[str, Any]
) -> None:
    config = thread()
    first = agent.invoke(ASK, config, version="v2")
    (task_id,) = [task_of(i) for i in first.interrupts]
    hr.as_reviewer("alice").tasks.decide(task_id, decision)
    with pytest.raises(Crash):  # dies inside the tool, after paying
        resume_all(agent, config, first)
    done = agent.invoke(None, config, version="v2")  # LangGraph runs the tools node again
    assert done.value["messages"][-1].content == "done"
    key = f"handrail:{task_id}:{decision.type.value}"
    assert payments.keys == [key, key]  # both runs got the same key: one payment
    assert payments.paid == {key: ran}
    assert len(hr.tasks.list().items) == 1


@pytest.mark.parametrize("interrupt_mode", ["batched", "per_call"])
@pytest.mark.parametrize(("decision", "ran"), DECISIONS)
def test_middleware_a_call_run_again_gets_the_same_key(
    hr: Handrail, interrupt_mode: Any, decision: Decision, ran: dict[str, Any]
) -> None:
    payments = Payments()
    middleware = HandrailMiddleware(hr, {"pay": True}, interrupt_mode=interrupt_mode)
    agent = create_agent(
        model(), [payments.through_runtime()], middleware=[middleware], checkpointer=InMemorySaver()
    )
    paid_once_over_two_runs(hr, agent, payments, decision, ran)


@pytest.mark.parametrize(("decision", "ran"), DECISIONS)
def test_require_approval_a_call_run_again_gets_the_same_key(
    hr: Handrail, decision: Decision, ran: dict[str, Any]
) -> None:
    payments = Payments()
    gated = require_approval(payments.through_config(), client=hr)
    agent = create_agent(model(), [gated], checkpointer=InMemorySaver())
    paid_once_over_two_runs(hr, agent, payments, decision, ran)


@pytest.mark.parametrize("interrupt_mode", ["batched", "per_call"])
def test_blocking_paths_hand_the_key_too(hr: Handrail, interrupt_mode: Any) -> None:
    payments, gated_payments = Payments(), Payments()
    payments.keys.append(None)  # no crash: nothing runs these calls again
    gated_payments.keys.append(None)
    middleware = HandrailMiddleware(hr, {"pay": True}, interrupt_mode=interrupt_mode)
    with Reviewer(hr.as_reviewer("alice"), {"p1": Decision.approve()}):
        create_agent(model(), [payments.through_runtime()], middleware=[middleware]).invoke(ASK)
        (task,) = hr.tasks.list().items
        gated = require_approval(gated_payments.through_config(), client=hr)
        create_agent(model(), [gated]).invoke(ASK)
    first, second = sorted(hr.tasks.list().items, key=lambda t: t.id != task.id)
    for got, made in ((payments, first), (gated_payments, second)):
        key = f"handrail:{made.id}:approve"
        assert got.keys == [None, key]
        assert got.paid == {key: {"to": "carol", "amount": 100}}
