"""``examples/crewai_refunds.py`` runs as written.

The crew demo and the flow's pause run in this process (crewai is already imported here;
a process of its own costs seconds of imports). The flow is resumed by another process,
started after the pause and already waiting when a reviewer (this process, on the same
SQLite file) decides: nothing of the paused flow reaches it but the files, and the
decision crosses processes.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from crewai.flow.flow_config import flow_config

from handrail import Decision, Handrail

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crewai_refunds.py"
EDITED = "Dear Alice, your $40 refund is on its way."


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLE), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    return out


def value(out: str, prefix: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith(prefix)]
    return line.removeprefix(prefix).strip()


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    runpy.run_path(str(EXAMPLE))["main"](list(args))
    return capsys.readouterr().out


def test_the_crew_demo(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_here(capsys, "crew")
    assert value(out, "refunded:") == "['A-1042 $40.00']"
    assert "refunds over $100 need a manager" in value(out, "not run:")


def test_the_flow_pauses_here_and_resumes_in_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        paused = run_here(capsys, "pause", str(tmp_path))
    finally:
        flow_config.hitl_provider = None
    flow_id, task_id = value(paused, "paused flow"), value(paused, "review task")

    resumer = start("resume", str(tmp_path), flow_id)
    assert resumer.stdout is not None
    for line in resumer.stdout:
        if line.startswith("waiting for the decision"):
            break
    with Handrail.local(tmp_path / "handrail.db") as hr:
        hr.as_reviewer("alice").tasks.decide(task_id, Decision.modify({"output": EDITED}))
    assert value(finish(resumer), "flow result:") == f"sent: {EDITED}"
