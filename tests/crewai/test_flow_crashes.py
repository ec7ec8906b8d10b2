"""CrewAI Flow pauses survive SIGKILL at every point: the approved action completes exactly
once. Each step runs in a process of its own (``_flow_process.py``) on one directory and
one Handrail database: every case runs on SQLite (``Handrail.local(file)``) and on
PostgreSQL (``Handrail.local(url)``, a fresh database per case). The directory holds the
flow's SQLite persistence and the side effect's own table, where the payment is recorded
once per execution key and every attempt is logged. Nothing is shared in memory between
the steps.

The kill points: after the review task is created but before the pause is saved; after
it is saved; while ``resume_flow`` waits for the decision (killed from outside); inside
the method after the review, before and after its side effect; and a decision landing
between the task's creation and the saving of the pause.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from handrail import Decision, Handrail, Status
from tests.postgres import fresh_database

REPO = Path(__file__).resolve().parents[2]
LIMIT = 180.0  # seconds, for liveness only (a CrewAI import alone takes seconds)
PROPOSED, EDITED = "pay 120 to alice", "pay 100 to alice"


class Place(NamedTuple):
    """Where a case runs: its directory and Handrail's database (file or URL)."""

    dir: Path
    db: str


def command(root: Place, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.crewai._flow_process", str(root.dir), *args]


def run(root: Place, *args: str, kill_at: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(root, *args),
        cwd=REPO,
        env={**os.environ, "HANDRAIL_DB": root.db, "KILL_AT": kill_at, **env},
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )


def ok(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    return result_of(done.stdout)


def result_of(stdout: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    found: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return found


def killed(done: subprocess.CompletedProcess[str], point: str) -> None:
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])
    assert f"dying at {point}" in done.stdout


def paused(root: Place, *args: str) -> tuple[str, str]:
    found = ok(run(root, "kickoff", *args))
    return found["flow_id"], found["task_id"]


def decide(root: Place, task_id: str, decision: Decision) -> None:
    with Handrail.local(root.db) as hr:
        hr.as_reviewer("alice").tasks.decide(task_id, decision)


def tasks(root: Place) -> list[Any]:
    with Handrail.local(root.db) as hr:
        return list(hr.tasks.list().items)


def effects(root: Place) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(payments, attempts), each as (execution key, output)."""
    path = root.dir / "effects.db"
    if not path.exists():
        return [], []
    with sqlite3.connect(path) as db:
        paid = db.execute("SELECT key, output FROM paid").fetchall()
        tried = db.execute("SELECT key, output FROM attempts").fetchall()
    return paid, tried


def resumed(root: Place, flow_id: str) -> str:
    result: str = ok(run(root, "resume", flow_id))["result"]
    return result


def paid_once(root: Place, task_id: str, output: str = PROPOSED, kind: str = "approve") -> None:
    paid, _ = effects(root)
    assert paid == [(f"handrail:{task_id}:{kind}", output)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def root(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Place]:
    """The case's directory and database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield Place(tmp_path, str(tmp_path / "handrail.db"))
        return
    async with fresh_database(request.getfixturevalue("postgres_url"), "handrail_cf") as url:
        yield Place(tmp_path, url)


def test_killed_after_the_task_is_created_before_the_pause_is_saved(root: Place) -> None:
    killed(run(root, "kickoff", kill_at="after_create"), "after_create")
    (task,) = tasks(root)
    flow_id = task.metadata["crewai"]["flow_id"]  # the task names its flow
    assert task.metadata["crewai"]["flow_class"].endswith(":PayFlow")
    # nothing was saved to resume from: the flow is kicked off again with its id, and the
    # review it reaches is the same task (no second review)
    again_flow, again_task = paused(root, flow_id)
    assert (again_flow, again_task) == (flow_id, task.id)
    decide(root, task.id, Decision.approve())
    assert resumed(root, flow_id) == f"paid: {PROPOSED}"
    assert len(tasks(root)) == 1
    paid_once(root, task.id)


def test_killed_after_the_pause_is_saved(root: Place) -> None:
    done = run(root, "kickoff", kill_at="paused")
    killed(done, "paused")
    found = result_of(done.stdout)
    flow_id, task_id = found["flow_id"], found["task_id"]
    decide(root, task_id, Decision.modify({"output": EDITED}))
    assert resumed(root, flow_id) == f"paid: {EDITED}"
    paid_once(root, task_id, EDITED, "modify")


def test_killed_while_resume_flow_waits_for_the_decision(root: Place) -> None:
    flow_id, task_id = paused(root)
    waiting = subprocess.Popen(
        command(root, "resume", flow_id),
        cwd=REPO,
        env={**os.environ, "HANDRAIL_DB": root.db},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline().strip() == "resuming"
        time.sleep(0.5)  # inside resume_flow, waiting on the task
        waiting.send_signal(signal.SIGKILL)
        assert waiting.wait(LIMIT) == -signal.SIGKILL
    finally:
        if waiting.poll() is None:
            waiting.kill()
        waiting.wait()
        if waiting.stdout is not None:
            waiting.stdout.close()
    assert effects(root) == ([], [])
    decide(root, task_id, Decision.approve())
    assert resumed(root, flow_id) == f"paid: {PROPOSED}"
    paid_once(root, task_id)


def test_killed_inside_the_next_method_before_its_side_effect(root: Place) -> None:
    flow_id, task_id = paused(root)
    decide(root, task_id, Decision.approve())
    killed(run(root, "resume", flow_id, kill_at="before_effect"), "before_effect")
    assert effects(root) == ([], [])
    # the pause was kept until the flow got past it: resumed again, the payment happens
    assert resumed(root, flow_id) == f"paid: {PROPOSED}"
    paid_once(root, task_id)


def test_killed_inside_the_next_method_after_its_side_effect(root: Place) -> None:
    flow_id, task_id = paused(root)
    decide(root, task_id, Decision.approve())
    killed(run(root, "resume", flow_id, kill_at="after_effect"), "after_effect")
    assert resumed(root, flow_id) == f"paid: {PROPOSED}"
    _, tried = effects(root)
    # the method ran twice, with the same execution key: the payment happened once
    key = f"handrail:{task_id}:approve"
    assert tried == [(key, PROPOSED), (key, PROPOSED)]
    paid_once(root, task_id)


def test_a_decision_landing_before_the_pause_is_saved(root: Place) -> None:
    found = ok(run(root, "kickoff", DECIDE_EARLY="1"))
    flow_id, task_id = found["flow_id"], found["task_id"]
    (task,) = tasks(root)
    assert task.status is Status.VERIFIED  # decided before the flow's pause was saved
    assert resumed(root, flow_id) == f"paid: {EDITED}"
    paid_once(root, task_id, EDITED, "modify")


def test_a_finished_flow_is_not_resumed_again(root: Place) -> None:
    flow_id, task_id = paused(root)
    decide(root, task_id, Decision.approve())
    assert resumed(root, flow_id) == f"paid: {PROPOSED}"
    again = run(root, "resume", flow_id)
    assert again.returncode != 0 and "No pending feedback" in again.stderr
    paid_once(root, task_id)
