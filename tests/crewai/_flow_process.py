"""A CrewAI flow with a Handrail review, run in a process of its own and killed (SIGKILL,
by itself at a chosen point, or from outside) for ``test_flow_crashes.py``.

    python -m tests.crewai._flow_process ROOT kickoff [FLOW_ID]
    python -m tests.crewai._flow_process ROOT resume FLOW_ID

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

import json
import os
import signal
import sqlite3
import sys
import warnings
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

ROOT = Path(sys.argv[1])
KILL_AT = os.environ.get("KILL_AT", "")
DATABASE = os.environ.get("HANDRAIL_DB") or str(ROOT / "handrail.db")
EDITED = "pay 100 to alice"


def die(point: str) -> None:
    if point == KILL_AT:
        print(f"dying at {point}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def pay(key: str, output: Any) -> None:
    """The side effect: logged per attempt; done once per execution key."""
    with sqlite3.connect(ROOT / "effects.db") as db:
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
    return SQLiteFlowPersistence(str(ROOT / "flows.db"))


def main() -> None:
    role = sys.argv[2]
    with Handrail.local(DATABASE) as hr:
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


if __name__ == "__main__":
    main()
