"""``review_node``: the graph pauses on a review task, resumes down the route of the
recorded decision, and the guarded action runs only on approve or modify, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
from langchain.agents.middleware.human_in_the_loop import HITLRequest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import is_invalid_resume
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt.interrupt import HumanInterrupt

from handrail import Decision, Handrail, ManualClock, Status
from handrail_langchain.interrupts import NoDurableRun, ResumeSignal, task_id_of
from handrail_langgraph import HandrailResumer, blocking_review_node, review_node
from tests.langchain.conftest import Reviewer
from tests.langgraph.conftest import (
    PAYMENT,
    Ledger,
    PaymentState,
    payment_graph,
    resume_all,
    sqlite_saver,
    task_of,
    thread,
)

START_STATE = {"action": PAYMENT}


def paused(hr: Handrail, ledger: Ledger, **options: Any) -> tuple[Any, dict[str, Any], Any]:
    graph = payment_graph(hr, ledger, InMemorySaver(), **options)
    config = thread()
    first = graph.invoke(START_STATE, config, version="v2")
    assert len(first.interrupts) == 1 and ledger.done == []
    return graph, config, first


# ---------------------------------------------------------------- the routes


def test_approve_runs_the_action_once(hr: Handrail, ledger: Ledger) -> None:
    graph, config, first = paused(hr, ledger)
    (pending,) = first.interrupts
    task = hr.tasks.get(task_of(pending))
    assert task.action is not None and task.action.model_dump(exclude_none=True) == PAYMENT
    assert task.metadata["node"] == "review"
    assert task.metadata["langgraph"]["thread_id"] == config["configurable"]["thread_id"]
    hr.as_reviewer("alice").tasks.decide(task.id, Decision.approve("fine"))
    done = resume_all(graph, config, first)
    assert done.interrupts == ()
    assert ledger.of("pay") == [{"to": "carol", "amount": 100}]
    assert done.value["paid"] == [PAYMENT] and not done.value["refused"]
    outcome = done.value["review"]
    assert (outcome["task_id"], outcome["type"], outcome["status"]) == (
        task.id,
        "approve",
        "verified",
    )
    assert (outcome["message"], outcome["reviewer_id"]) == ("fine", "alice")
    # resuming again finds nothing to answer: the action does not run twice
    assert graph.get_state(config).interrupts == ()
    assert len(hr.tasks.list().items) == 1


def test_modify_writes_the_edited_action_and_runs_it(hr: Handrail, ledger: Ledger) -> None:
    graph, config, first = paused(hr, ledger)
    edited = {"to": "carol", "amount": 60}
    hr.as_reviewer("alice").tasks.decide(task_of(first.interrupts[0]), Decision.modify(edited))
    done = resume_all(graph, config, first)
    assert done.value["action"] == {"name": "pay", "args": edited}
    assert ledger.of("pay") == [edited]  # the edited call ran, the proposed one never did
    assert done.value["review"]["type"] == "modify" and done.value["review"]["args"] == edited


def test_reject_takes_the_reject_route(hr: Handrail, ledger: Ledger) -> None:
    graph, config, first = paused(hr, ledger)
    hr.as_reviewer("alice").tasks.decide(
        task_of(first.interrupts[0]), Decision.reject("wrong account")
    )
    done = resume_all(graph, config, first)
    assert done.value["refused"] == ["wrong account"] and not done.value["paid"]
    assert ledger.done == []


def test_respond_takes_its_own_route(hr: Handrail, ledger: Ledger) -> None:
    graph, config, first = paused(
        hr, ledger, allowed_decisions=["approve", "respond"], on_respond="refuse"
    )
    task_id = task_of(first.interrupts[0])
    assert [d.value for d in hr.tasks.get(task_id).allowed_decisions] == ["approve", "respond"]
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.respond("Ask Carol first."))
    done = resume_all(graph, config, first)
    assert done.value["refused"] == ["Ask Carol first."] and ledger.done == []


def test_an_expired_review_fails_closed(ledger: Ledger) -> None:
    clock = ManualClock()
    with Handrail.local(clock=clock, sweep_interval=0.02) as hr:
        graph, config, first = paused(hr, ledger, timeout=30)
        task_id = task_of(first.interrupts[0])
        assert hr.tasks.get(task_id).sla_seconds == 30
        clock.advance(31)
        assert hr.tasks.wait(task_id, timeout=10).status is Status.EXPIRED
        done = resume_all(graph, config, first)
    assert done.value["review"]["status"] == "expired"
    assert done.value["review"]["type"] == "reject"
    assert "expired" in done.value["refused"][0] and ledger.done == []


# ---------------------------------------------------------------- resume values


def test_the_payload_reads_as_every_inbox_expects(hr: Handrail, ledger: Ledger) -> None:
    _, _, first = paused(hr, ledger, task={"title": "Pay Carol?"})
    (pending,) = first.interrupts
    request = pydantic.TypeAdapter(HITLRequest).validate_python(pending.value)
    assert request["action_requests"][0]["name"] == "pay"
    assert request["action_requests"][0]["args"] == PAYMENT["args"]
    assert request["review_configs"][0]["allowed_decisions"] == ["approve", "reject", "edit"]
    inbox = pydantic.TypeAdapter(HumanInterrupt).validate_python(pending.value)
    assert inbox["action_request"] == {"action": "pay", "args": PAYMENT["args"]}
    assert pending.value["handrail"]["title"] == "Pay Carol?"
    assert pending.response_schema == ResumeSignal.model_json_schema()
    assert task_id_of(pending) == pending.value["handrail"]["task_id"]


def test_an_invalid_resume_is_refused_and_the_pause_stays(hr: Handrail, ledger: Ledger) -> None:
    graph, config, first = paused(hr, ledger)
    for bad in ("approve", 1, {"type": "yes please"}, {"decisions": "all"}):
        with pytest.raises(pydantic.ValidationError) as refused:
            resume_all(graph, config, first, bad)
        assert is_invalid_resume(refused.value)
    assert [i.id for i in graph.get_state(config).interrupts] == [i.id for i in first.interrupts]
    assert ledger.done == [] and len(hr.tasks.list().items) == 1


def test_a_resume_claiming_approval_runs_nothing_while_undecided(
    hr: Handrail, ledger: Ledger
) -> None:
    graph, config, first = paused(hr, ledger)
    task_id = task_of(first.interrupts[0])
    for claim in ({"type": "approve"}, {"type": "accept"}, {"decisions": [{"type": "approve"}]}):
        again = resume_all(graph, config, graph.get_state(config), claim)
        (still,) = again.interrupts
        assert task_of(still) == task_id  # the same task, pausing again
    assert ledger.done == [] and hr.tasks.get(task_id).status is Status.POSTED
    assert len(hr.tasks.list().items) == 1
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.reject("no"))
    done = resume_all(graph, config, graph.get_state(config), {"type": "approve"})
    assert done.value["refused"] == ["no"] and ledger.done == []  # the recorded "no" counts


# ---------------------------------------------------------------- one task per pause


def test_a_restarted_process_finds_the_same_task(tmp_path: Path, ledger: Ledger) -> None:
    """New client on the same Handrail file, new graph on the same checkpoint file: the
    node re-runs from its start and finds the task it made before."""
    config = thread()
    with Handrail.local(tmp_path / "handrail.db") as hr, sqlite_saver(tmp_path / "cp.db") as cp:
        first = payment_graph(hr, ledger, cp).invoke(START_STATE, config, version="v2")
    task_id = task_of(first.interrupts[0])
    with Handrail.local(tmp_path / "handrail.db") as hr, sqlite_saver(tmp_path / "cp.db") as cp:
        graph = payment_graph(hr, ledger, cp)
        resume_all(graph, config, graph.get_state(config), {"type": "approve"})  # early
        assert [t.id for t in hr.tasks.list().items] == [task_id] and ledger.done == []
        hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
        outcome = HandrailResumer(graph, hr).resume_task(task_id)
        assert (
            outcome.status == "resumed" and outcome.thread_id == config["configurable"]["thread_id"]
        )
        assert HandrailResumer(graph, hr).resume_task(task_id).status == "not_pending"
    assert ledger.of("pay") == [PAYMENT["args"]]


def test_each_visit_of_the_node_is_its_own_task(hr: Handrail, ledger: Ledger) -> None:
    """A loop through the review node: the second visit asks again (a new task), it does
    not find the first visit's decision."""

    def pay(state: PaymentState) -> PaymentState:
        ledger.note("pay", **state["action"]["args"])
        return {"paid": [state["action"]]}

    def bump(state: PaymentState) -> PaymentState:
        args = state["action"]["args"]
        return {"action": {"name": "pay", "args": {**args, "amount": args["amount"] + 1}}}

    builder: StateGraph[PaymentState] = StateGraph(PaymentState)
    builder.add_node("review", review_node(hr, action="action", on_approve="pay"))
    builder.add_node("pay", pay)
    builder.add_node("bump", bump)
    builder.add_edge(START, "review")
    builder.add_conditional_edges("pay", lambda s: "bump" if len(s["paid"]) < 2 else END)
    builder.add_edge("bump", "review")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = thread()
    result = graph.invoke(START_STATE, config, version="v2")
    alice, seen = hr.as_reviewer("alice"), []
    while result.interrupts:
        (pending,) = result.interrupts
        seen.append(task_of(pending))
        alice.tasks.decide(task_of(pending), Decision.approve())
        result = resume_all(graph, config, result)
    assert len(set(seen)) == 2 == len(hr.tasks.list().items)
    assert [p["amount"] for p in ledger.of("pay")] == [100, 101]


def test_without_a_checkpointer_the_review_node_refuses(hr: Handrail, ledger: Ledger) -> None:
    graph = payment_graph(hr, ledger, None)
    with pytest.raises(NoDurableRun, match="blocking_review_node"):
        graph.invoke(START_STATE)
    assert hr.tasks.list().items == () and ledger.done == []


async def test_the_review_node_pauses_async(hr: Handrail, ledger: Ledger) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    config = thread()
    first = await graph.ainvoke(START_STATE, config, version="v2")
    await hr.as_reviewer("alice").tasks.adecide(task_of(first.interrupts[0]), Decision.approve())
    resumer = HandrailResumer(graph, hr, asynchronous=True)
    outcome = await resumer.aresume_task(task_of(first.interrupts[0]))
    assert outcome.status == "resumed" and outcome.interrupts == (first.interrupts[0].id,)
    assert ledger.of("pay") == [PAYMENT["args"]]
    assert (await resumer.aresume_task(task_of(first.interrupts[0]))).status == "not_pending"


# ---------------------------------------------------------------- blocking


def test_the_blocking_node_needs_no_checkpointer(hr: Handrail, ledger: Ledger) -> None:
    graph = payment_graph(hr, ledger, None, node=blocking_review_node, timeout=20)
    with Reviewer(hr.as_reviewer("alice"), lambda task: Decision.modify({"to": "dan"})):
        result = graph.invoke(START_STATE)
    assert result["action"] == {"name": "pay", "args": {"to": "dan"}}
    assert ledger.of("pay") == [{"to": "dan"}]


async def test_the_blocking_node_gives_up_and_refuses(hr: Handrail, ledger: Ledger) -> None:
    graph = payment_graph(hr, ledger, None, node=blocking_review_node, timeout=0.2)
    result = await graph.ainvoke(START_STATE)
    assert result["review"]["status"] == "cancelled" and result["review"]["type"] == "reject"
    assert "No human answered in time" in result["refused"][0]
    assert ledger.done == []
    (task,) = hr.tasks.list().items
    assert task.status is Status.CANCELLED  # withdrawn: nobody picks it up afterwards


def test_bad_configuration_is_refused_early(hr: Handrail) -> None:
    with pytest.raises(ValueError, match="unknown decision"):
        review_node(hr, action="action", on_approve="pay", allowed_decisions=["maybe"])
    with pytest.raises(ValueError, match="timeout"):
        review_node(hr, action="action", on_approve="pay", timeout=0)
    graph = payment_graph(hr, Ledger(), InMemorySaver())
    with pytest.raises(TypeError, match=r"handrail\.Action or a mapping"):
        graph.invoke({"action": "pay everyone"}, thread())
    with pytest.raises(ValueError, match="no action to review"):
        graph.invoke({}, thread())
