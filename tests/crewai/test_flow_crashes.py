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

The steps are forked from one server process that imported CrewAI once
(``_flow_process.py --serve``): each step is still a process of its own, started fresh
from that import, killed with SIGKILL, sharing no memory with any other step; the import
(seconds) is paid once per module rather than once per step.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from handrail import Decision, Handrail, Status
from tests.postgres import fresh_database

REPO = Path(__file__).resolve().parents[2]
LIMIT = 180.0  # seconds, for liveness only (a CrewAI import alone takes seconds)
PROPOSED, EDITED = "pay 120 to alice", "pay 100 to alice"


class Steps:
    """``_flow_process --serve``: CrewAI imported once, each step a process forked from it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crewai._flow_process", "--serve"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.count = 0
        assert self._next() == {"ready": True}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.reports.put(json.loads(line))

    def _next(self) -> dict[str, Any]:
        try:
            return self.reports.get(timeout=LIMIT)
        except queue.Empty:
            raise AssertionError(f"the step server said nothing for {LIMIT} s") from None

    def start(self, root: Place, *args: str, **env: str) -> tuple[int, Path, Path]:
        """Start a step; its pid and the files of its stdout and stderr."""
        self.count += 1
        out, err = (root.dir / f"step-{self.count}.{kind}" for kind in ("out", "err"))
        command = {"argv": [str(root.dir), *args], "env": env, "out": str(out), "err": str(err)}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        pid: int = self._next()["pid"]
        return pid, out, err

    def finish(self, pid: int) -> int:
        """The step's exit code (minus the signal that killed it)."""
        try:
            code: int = self._next()["exit"]
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            raise
        return code

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


class Place(NamedTuple):
    """Where a case runs: its directory, Handrail's database (file or URL), and the step
    server."""

    dir: Path
    db: str
    steps: Steps

    def start(self, *args: str, **env: str) -> tuple[int, Path, Path]:
        return self.steps.start(self, *args, HANDRAIL_DB=self.db, **env)


def run(root: Place, *args: str, kill_at: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    pid, out, err = root.start(*args, KILL_AT=kill_at, **env)
    code = root.steps.finish(pid)
    return subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())


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


@pytest.fixture(scope="module")
def steps() -> Iterator[Steps]:
    server = Steps()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def root(
    request: pytest.FixtureRequest, tmp_path: Path, steps: Steps
) -> AsyncIterator[Place]:
    """The case's directory and database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield Place(tmp_path, str(tmp_path / "handrail.db"), steps)
        return
    async with fresh_database(request.getfixturevalue("postgres_url"), "handrail_cf") as url:
        yield Place(tmp_path, url, steps)


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
    pid, out, _ = root.start("resume", flow_id)
    try:
        deadline = time.monotonic() + LIMIT
        while not out.exists() or "resuming" not in out.read_text():
            assert time.monotonic() < deadline, "the resume never started"
            time.sleep(0.05)
        time.sleep(0.5)  # inside resume_flow, waiting on the task
    finally:
        os.kill(pid, signal.SIGKILL)
    assert root.steps.finish(pid) == -signal.SIGKILL
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
