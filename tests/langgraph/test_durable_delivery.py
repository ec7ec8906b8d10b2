"""A decision reaches its paused run exactly once, whatever dies when (issue 20).

Real processes (``_durable_process.py``), each killed with SIGKILL at one point, on SQLite
(``SqliteSaver`` and ``Handrail.local(file)``) and on PostgreSQL (``PostgresSaver`` and the
PostgreSQL engine, one database for both). The approved payment is the side effect:
``pay`` runs again when its process dies inside it (LangGraph re-executes the node), and
its execution key keeps it to one row. Each case ends with the thread finished and the
payment made once, within ``LIVENESS`` seconds of the last kill or decision.

Kill points: the graph's process after the review task is created and before the pause
is checkpointed; the graph's process while paused; the decision landing before the pause
is checkpointed (the race); the resumer inside the resumed review node; inside ``pay``
before the side effect; inside ``pay`` after it.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from handrail import Decision, Handrail
from tests.langgraph._child import Child
from tests.langgraph._durable_process import Gate, checkpointer, payment_graph

LIVENESS = 30.0
"""The stated bound: each approved payment is made within this many seconds."""


class Proc(Child):
    """``_durable_process`` in a subprocess, in one role."""

    def __init__(
        self, workdir: Path, backend: tuple[str, str], role: str, hold: str = "", **env: str
    ) -> None:
        args = [sys.executable, "-m", "tests.langgraph._durable_process", role, str(workdir)]
        args += [*backend, *([hold] if hold else [])]
        log = workdir / f"{role}-{hold or 'plain'}-{uuid.uuid4().hex[:6]}.log"
        super().__init__(args, log, **env)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Handrail's database, the checkpointer's) as the processes take them."""
    if request.param == "sqlite":
        yield str(tmp_path / "handrail.db"), str(tmp_path / "checkpoints.db")
        return
    base = request.getfixturevalue("postgres_url")
    name = f"handrail_lg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (url := make_url(base).set(database=name).render_as_string(False)), url
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def payments(workdir: Path) -> list[tuple[str, str]]:
    """(thread, execution key) of every payment made."""
    bank = workdir / "bank.db"
    if not bank.exists():
        return []
    with sqlite3.connect(bank, timeout=30) as conn:
        try:
            return list(conn.execute("SELECT thread, key FROM payments ORDER BY thread"))
        except sqlite3.OperationalError:  # no payment yet: no table either
            return []


def attempts(workdir: Path) -> list[str]:
    log = workdir / "attempts.log"
    return log.read_text().split() if log.exists() else []


def finished(workdir: Path, backend: tuple[str, str], threads: list[str]) -> bool:
    """Whether every thread ran to its end (nothing left to run, nothing pending)."""
    with checkpointer(backend[1]) as saver:
        graph = payment_graph(None, saver, workdir, Gate(""))
        for thread_id in threads:
            state = graph.get_state({"configurable": {"thread_id": thread_id}})
            if state.next or state.interrupts or not state.values.get("paid"):
                return False
    return True


def paid_within(workdir: Path, backend: tuple[str, str], threads: list[str]) -> float:
    """Seconds until every thread finished (fails past ``LIVENESS``)."""
    start = time.monotonic()
    while not finished(workdir, backend, threads):
        assert time.monotonic() - start < LIVENESS, (
            f"not paid within {LIVENESS} s: {payments(workdir)}"
        )
        time.sleep(0.1)
    return time.monotonic() - start


def approve(hr: Handrail, task_id: str) -> None:
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())


def test_a_graph_killed_at_its_pause_or_outrun_by_its_decision_is_paid_once(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    threads = {case: f"{case}-{uuid.uuid4().hex[:8]}" for case in ("died", "paused", "race")}
    with ExitStack() as stack:
        resumer = Proc(tmp_path, backend, "resumer", STALL_AFTER="2")
        died = Proc(tmp_path, backend, "graph", "created", THREAD=threads["died"])
        paused = Proc(tmp_path, backend, "graph", THREAD=threads["paused"])
        race = Proc(tmp_path, backend, "graph", "created", THREAD=threads["race"])
        for proc in (resumer, died, paused, race):
            stack.callback(proc.kill)
        resumer.go()
        resumer.until("ready", True)
        hr = stack.enter_context(Handrail.local(backend[0]))

        # killed after the task is created, before the pause is checkpointed
        died.go()
        task = died.until("holding", "created")["task_id"]
        died.kill()
        approve(hr, task)

        # killed while paused
        paused.go()
        (task,) = paused.until("paused")["paused"]
        paused.kill()
        approve(hr, task)

        # the decision lands before the pause is checkpointed, the graph still running
        race.go()
        task = race.until("holding", "created")["task_id"]
        approve(hr, task)
        resumer.until("status", "waiting", task_id=task)  # it saw the decision first
        assert race.process.stdin is not None
        race.process.stdin.write(b"on\n")
        race.process.stdin.flush()
        race.until("paused")

        paid_within(tmp_path, backend, list(threads.values()))
    assert sorted(t for t, _ in payments(tmp_path)) == sorted(threads.values())
    assert len({key for _, key in payments(tmp_path)}) == 3  # one per decision
    assert sorted(attempts(tmp_path)) == sorted(threads.values())  # nothing ran twice


def test_a_resumer_killed_at_every_point_of_a_resume_pays_once(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    thread_id = f"chain-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread_id}}
    holds = ("create", "pay-before", "pay-after")
    with ExitStack() as stack:
        procs = [Proc(tmp_path, backend, "resumer", hold) for hold in (*holds, "")]
        for proc in procs:
            stack.callback(proc.kill)
        hr = stack.enter_context(Handrail.local(backend[0]))
        with checkpointer(backend[1]) as saver:
            graph = payment_graph(hr, saver, tmp_path, Gate(""))
            first = graph.invoke({}, config, version="v2")
        task = first.interrupts[0].value["handrail"]["task_id"]

        inside_review, before_pay, after_pay, last = procs
        inside_review.go()
        inside_review.until("ready", True)
        approve(hr, task)
        inside_review.until("holding", "create")  # resuming: the review node runs again
        inside_review.kill()
        assert payments(tmp_path) == [] and attempts(tmp_path) == []

        before_pay.go()  # replays the decision from the place the killed one saved
        before_pay.until("holding", "pay-before")
        before_pay.kill()
        assert payments(tmp_path) == [] and attempts(tmp_path) == [thread_id]

        after_pay.go()  # the thread stopped in pay, with no interrupt: continued
        after_pay.until("holding", "pay-after")
        after_pay.kill()
        assert len(payments(tmp_path)) == 1

        last.go()  # continued again: pay runs a third time, its key makes it a no-op
        paid_within(tmp_path, backend, [thread_id])
    assert payments(tmp_path) == [(thread_id, f"handrail:{task}:approve")]
    assert attempts(tmp_path) == [thread_id] * 3  # the node ran three times, paid once
