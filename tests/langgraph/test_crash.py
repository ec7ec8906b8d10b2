"""A resumer process killed with SIGKILL around a resume: the thread still resumes, and
the guarded payment is made exactly once.

The test process and each resumer process share two SQLite files: Handrail's database
(``Handrail.local(path)``: another process's decision wakes the resumer) and the
checkpoints (``SqliteSaver``). The payment appends a synced line to ``payments.log``, so
the count survives the kills. See ``_resumer_process.py`` for the resumer's side.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from handrail import Decision, Handrail, Status
from handrail_langgraph import HandrailResumer
from tests.langgraph._child import Child
from tests.langgraph._resumer_process import payment_graph
from tests.langgraph.conftest import PAYMENT, Outcomes, running, sqlite_saver, task_of, thread


class Resumer(Child):
    """``_resumer_process`` in a subprocess."""

    def __init__(self, workdir: Path, hold: str = "") -> None:
        args = [sys.executable, "-m", "tests.langgraph._resumer_process", str(workdir)]
        super().__init__(
            [*args, hold] if hold else args, workdir / f"resumer-{hold or 'plain'}.log"
        )


@contextmanager
def resumers(workdir: Path, *holds: str) -> Iterator[list[Resumer]]:
    started = [Resumer(workdir, hold) for hold in holds]
    try:
        yield started
    finally:
        for process in started:
            process.kill()


def payments(workdir: Path) -> list[dict[str, Any]]:
    log = workdir / "payments.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_resumer_killed_around_the_resume_still_resumes_once(tmp_path: Path) -> None:
    config = thread()
    with (
        resumers(tmp_path, "before", "after") as (before, after),
        Handrail.local(tmp_path / "handrail.db") as hr,
        sqlite_saver(tmp_path / "checkpoints.db") as saver,
    ):
        graph = payment_graph(hr, saver, tmp_path / "payments.log")
        first = graph.invoke({"action": PAYMENT}, config, version="v2")
        task_id = task_of(first.interrupts[0])

        # 1. killed between the decision and the resume
        before.go()
        before.until("ready", True)
        hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
        before.until("holding", "before")  # it saw the decision; the graph did not run
        before.kill()
        assert before.process.returncode == -signal.SIGKILL
        assert hr.tasks.get(task_id).status is Status.VERIFIED
        assert payments(tmp_path) == [] and graph.get_state(config).interrupts

        # 2. the next one resumes it, and is killed before it notes the event handled
        after.go()
        after.until("holding", "after")
        after.kill()
        assert after.process.returncode == -signal.SIGKILL
        assert payments(tmp_path) == [PAYMENT]
        assert graph.get_state(config).interrupts == () and graph.get_state(config).next == ()

        # 3. the next one (here, in this process, on the same files) replays the decision's
        # event from the cursor the killed ones kept: nothing is pending, nothing runs
        outcomes = Outcomes()
        with running(HandrailResumer(graph, hr, on_resumption=outcomes)):
            replayed = outcomes.until("not_pending")
        assert replayed.task_id == task_id
    assert payments(tmp_path) == [PAYMENT]  # paid once, through two kills
