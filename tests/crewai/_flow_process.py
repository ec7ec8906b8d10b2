"""A CrewAI flow with a Handrail review, run in a process of its own and killed (SIGKILL,
by itself at a chosen point, or from outside) for ``test_flow_crashes.py``.

    python -m tests.crewai._flow_process ROOT kickoff [FLOW_ID]
    python -m tests.crewai._flow_process ROOT resume FLOW_ID
    python -m tests.crewai._flow_process --serve

``--serve`` imports CrewAI once (seconds) and then forks a fresh process per step: it
reads a step per line on stdin (JSON: ``argv``, ``env``, and ``out``/``err`` files for
the step's output), answers ``{"pid": ...}`` once the step's process runs and
``{"exit": ...}`` (a negative signal number when killed) once it ended. The server itself
runs no flow, opens no database and holds nothing a step leaves behind.

``ROOT`` holds the flow's SQLite persistence and ``effects.db``, the side effect the
approved method has: every attempt is logged, and the payment itself is
recorded once per execution key (the idempotent way docs/crewai.md shows). ``KILL_AT``
names where the process kills itself: ``after_create`` (the review task exists, the pause
is not saved), ``paused`` (the pause is saved, ``kickoff`` returned), ``before_effect`` and
``after_effect`` (inside the method after the review). ``DECIDE_EARLY`` makes a reviewer
decide between the task's creation and the saving of the pause. ``HANDRAIL_DB`` is
Handrail's database, a SQLite file or a PostgreSQL URL (default: ``ROOT/handrail.db``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore")

from crewai.flow.async_feedback import HumanFeedbackPending  # noqa: E402
from crewai.flow.flow import Flow, listen, start  # noqa: E402
from crewai.flow.flow_config import flow_config  # noqa: E402
from crewai.flow.human_feedback import human_feedback  # noqa: E402
from crewai.flow.persistence import SQLiteFlowPersistence  # noqa: E402

from handrail import Decision, Handrail  # noqa: E402
from handrail_crewai import HandrailFeedbackProvider, resume_flow, review_task_id  # noqa: E402

EDITED = "pay 100 to alice"


@dataclass
class Step:
    """What this process is asked to do: from its arguments and environment."""

    root: Path = Path()
    kill_at: str = ""
    database: str = ""

    def configure(self) -> None:
        self.root = Path(sys.argv[1])
        self.kill_at = os.environ.get("KILL_AT", "")
        self.database = os.environ.get("HANDRAIL_DB") or str(self.root / "handrail.db")


STEP = Step()


def die(point: str) -> None:
    if point == STEP.kill_at:
        print(f"dying at {point}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def pay(key: str, output: Any) -> None:
    """The side effect: logged per attempt; done once per execution key."""
    with sqlite3.connect(STEP.root / "effects.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, output TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS paid (key TEXT PRIMARY KEY, output TEXT)")
        db.execute("INSERT INTO attempts VALUES (?, ?)", (key, str(output)))
        db.execute("INSERT OR IGNORE INTO paid VALUES (?, ?)", (key, str(output)))


class PayFlow(Flow[dict[str, Any]]):
    @start()
    @human_feedback(message="Pay Alice?", emit=["approved", "rejected"])
    def propose(self) -> str:
        return "pay 120 to alice"

    @listen("approved")
    def execute(self) -> str:
        feedback = self.last_human_feedback
        assert feedback is not None
        key = feedback.metadata["handrail"]["execution_key"]
        die("before_effect")
        pay(key, feedback.output)
        die("after_effect")
        return f"paid: {feedback.output}"

    @listen("rejected")
    def hold(self) -> str:
        return "held"


class Provider(HandrailFeedbackProvider):
    def request_feedback(self, context: Any, flow: Any) -> str:
        try:
            return super().request_feedback(context, flow)
        except HumanFeedbackPending as pending:
            die("after_create")
            if os.environ.get("DECIDE_EARLY"):
                self.client.as_reviewer("alice").tasks.decide(
                    review_task_id(pending), Decision.modify({"output": EDITED})
                )
            raise


def persistence() -> SQLiteFlowPersistence:
    return SQLiteFlowPersistence(str(STEP.root / "flows.db"))


def main() -> None:
    STEP.configure()
    role = sys.argv[2]
    with Handrail.local(STEP.database) as hr:
        if role == "kickoff":
            flow_config.hitl_provider = Provider(hr)
            inputs = {"id": sys.argv[3]} if len(sys.argv) > 3 else None
            got = PayFlow(persistence=persistence()).kickoff(inputs=inputs)
            assert isinstance(got, HumanFeedbackPending), got
            print(
                "RESULT",
                json.dumps({"flow_id": got.context.flow_id, "task_id": review_task_id(got)}),
            )
            sys.stdout.flush()
            die("paused")
        else:
            print("resuming", flush=True)
            result = resume_flow(
                PayFlow, sys.argv[3], client=hr, persistence=persistence(), timeout=60
            )
            print("RESULT", json.dumps({"result": str(result)}))


def forked(command: dict[str, Any]) -> None:
    """The step's process: its arguments, environment and output files, then the step."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "out"), (2, "err")):
        os.dup2(os.open(command[name], os.O_WRONLY | os.O_CREAT | os.O_APPEND), fd)
    sys.argv = [sys.argv[0], *command["argv"]]
    os.environ.update(command["env"])
    code = 0
    try:
        main()
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    # what a flow imports when it is made (its memory's storage: seconds), imported once
    importlib.import_module("crewai.memory.storage.lancedb_storage")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            forked(command)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["--serve"] else main()
