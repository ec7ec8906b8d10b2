"""A decision is delivered until its thread needs nothing more (in one process; the
same with real processes killed by SIGKILL is ``test_durable_delivery.py``).

A crash is played by a node that raises once: LangGraph keeps the thread at that step
(``next`` names it, no interrupt pending), as a killed process leaves it."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from handrail import Decision, Handrail
from handrail.interrupts import execution_key, paused_node
from handrail_langgraph import HandrailResumer
from tests.langgraph.conftest import PAYMENT, Ledger, payment_graph, task_of, thread


class Crash(Exception):
    """Stands for the process dying at this point."""


class CrashingLedger(Ledger):
    """Notes payments; the first ``crashes`` calls die before they pay."""

    def __init__(self, crashes: int) -> None:
        super().__init__()
        self.crashes = crashes

    def note(self, name: str, **args: Any) -> None:
        if self.crashes:
            self.crashes -= 1
            raise Crash("the process died inside pay")
        super().note(name, **args)


class CrashAfterCreate:
    """A client whose ``crash_on``-th ``tasks.create`` dies right after the task is made."""

    def __init__(self, client: Handrail, crash_on: int = 1) -> None:
        self._client = client
        self.crash_on = crash_on
        self.tasks = self
        self.made: list[str] = []

    def _made(self, task: Any) -> Any:
        self.made.append(task.id)
        if len(self.made) == self.crash_on:
            raise Crash("the process died before the pause was checkpointed")
        return task

    def create(self, spec: Any) -> Any:
        return self._made(self._client.tasks.create(spec))

    async def acreate(self, spec: Any) -> Any:
        return self._made(await self._client.tasks.acreate(spec))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.tasks, name)


class LosingSaver(InMemorySaver):
    """Loses the next checkpoint once armed (its process dies before the save lands), the
    tasks' writes saved before it kept: LangGraph saves a step's checkpoint after its
    tasks' writes, in the background."""

    armed = False

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        if self.armed:
            self.armed = False
            raise Crash("the process died before the step's checkpoint was saved")
        return super().put(config, checkpoint, metadata, new_versions)


async def deliver(resumer: HandrailResumer, task_id: str, asynchronous: bool) -> Any:
    if asynchronous:
        return await resumer.aresume_task(task_id)
    return resumer.resume_task(task_id)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_resume_that_died_inside_the_next_node_is_continued(
    hr: Handrail, asynchronous: bool
) -> None:
    ledger = CrashingLedger(crashes=1)
    graph = payment_graph(hr, ledger, InMemorySaver())
    config = thread()
    task_id = task_of(graph.invoke({"action": PAYMENT}, config, version="v2").interrupts[0])
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    resumer = HandrailResumer(graph, hr, asynchronous=asynchronous)

    with pytest.raises(Crash):
        await deliver(resumer, task_id, asynchronous)
    stuck = graph.get_state(config)
    assert stuck.next == ("pay",) and stuck.interrupts == () and ledger.of("pay") == []

    outcome = await deliver(resumer, task_id, asynchronous)
    assert outcome.status == "continued" and outcome.task_id == task_id
    assert ledger.of("pay") == [PAYMENT["args"]] and graph.get_state(config).next == ()
    again = await deliver(resumer, task_id, asynchronous)  # delivered: nothing more runs
    assert again.status == "not_pending" and ledger.of("pay") == [PAYMENT["args"]]


def test_a_step_whose_writes_are_saved_but_not_applied_is_continued(
    hr: Handrail, ledger: Ledger
) -> None:
    """Killed between the review's writes and the step's checkpoint: ``next`` is empty
    (the review task has its writes), no interrupt is pending, and the thread never got
    past the review (``pay`` may have run meanwhile: LangGraph saves in the background;
    its writes are lost with the checkpoint)."""
    saver = LosingSaver()
    graph = payment_graph(hr, ledger, saver)
    config = thread()
    task_id = task_of(graph.invoke({"action": PAYMENT}, config, version="v2").interrupts[0])
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    resumer = HandrailResumer(graph, hr)
    saver.armed = True
    with pytest.raises(Crash):
        resumer.resume_task(task_id)
    lost = graph.get_state(config)
    assert lost.next == () and lost.interrupts == () and not lost.values.get("paid")
    assert [t.name for t in lost.tasks] == ["review"]

    assert resumer.resume_task(task_id).status == "continued"
    done = graph.get_state(config)
    assert done.tasks == () and done.values["paid"] == [PAYMENT]
    assert ledger.of("pay")  # ran (again, perhaps: what the execution key is for)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_pause_never_checkpointed_waits_then_is_continued(
    hr: Handrail, ledger: Ledger, asynchronous: bool
) -> None:
    client = CrashAfterCreate(hr)
    saver = InMemorySaver()
    graph = payment_graph(client, ledger, saver)  # type: ignore[arg-type]
    config = thread()
    with pytest.raises(Crash):
        graph.invoke({"action": PAYMENT}, config, version="v2")
    (task_id,) = client.made
    assert hr.tasks.get(task_id).metadata["langgraph"]["node"] == "review"  # found from it
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())

    young = HandrailResumer(graph, hr, asynchronous=asynchronous, stall_after=3600)
    waiting = await deliver(young, task_id, asynchronous)  # its process may still pause
    assert waiting.status == "waiting" and not waiting.settled and ledger.of("pay") == []

    stale = HandrailResumer(graph, hr, asynchronous=asynchronous, stall_after=0)
    outcome = await deliver(stale, task_id, asynchronous)
    assert outcome.status == "continued"
    assert ledger.of("pay") == [PAYMENT["args"]] and graph.get_state(config).next == ()
    assert client.made == [task_id, task_id]  # the node ran again and found the same task
    assert (await deliver(stale, task_id, asynchronous)).status == "not_pending"


def test_a_thread_given_new_input_after_its_pause_is_left_alone(
    hr: Handrail, ledger: Ledger
) -> None:
    """A step stopped after a new input belongs to that new run (whose own process may
    still be at it), not to the decision: delivering the decision runs nothing."""
    client = CrashAfterCreate(hr, crash_on=2)
    graph = payment_graph(client, ledger, InMemorySaver())  # type: ignore[arg-type]
    config = thread()
    task_id = task_of(graph.invoke({"action": PAYMENT}, config, version="v2").interrupts[0])
    with pytest.raises(Crash):  # a new run on the thread, stopped in its review
        graph.invoke({"action": PAYMENT}, config, version="v2")
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    stopped = graph.get_state(config)
    assert stopped.next == ("review",) and stopped.interrupts == ()

    outcome = HandrailResumer(graph, hr, stall_after=0).resume_task(task_id)
    assert outcome.status == "not_pending"
    assert len(client.made) == 2 and ledger.of("pay") == []  # nothing ran again
    assert graph.get_state(config).next == ("review",)


def test_the_task_says_where_it_paused_and_the_decision_gives_one_execution_key(
    hr: Handrail, ledger: Ledger
) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    config = thread()
    task_id = task_of(graph.invoke({"action": PAYMENT}, config, version="v2").interrupts[0])
    task = hr.tasks.get(task_id)
    namespace, node = paused_node(task) or ("", "")
    assert node == "review" and namespace.startswith("review:")
    assert paused_node(hr.tasks.create(kind="review", action={"name": "x"})) is None
    assert execution_key(task) == f"handrail:{task_id}:{task.status.value}"  # undecided

    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    HandrailResumer(graph, hr).resume_task(task_id)
    key = f"handrail:{task_id}:approve"
    assert execution_key(hr.tasks.get(task_id)) == key
    assert graph.get_state(config).values["review"]["execution_key"] == key
