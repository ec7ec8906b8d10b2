"""``handrail resumer module:attr``: the follower as a command, with its health output."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from handrail import Decision, Handrail
from tests.langgraph._durable_process import Gate, checkpointer, payment_graph
from tests.langgraph.test_durable_delivery import payments

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_the_resumer_command_resumes_and_reports_its_health(tmp_path: Path) -> None:
    port = free_port()
    db, checkpoints = tmp_path / "handrail.db", tmp_path / "checkpoints.db"
    command = [sys.executable, "-m", "handrail._cli", "resumer"]
    command += ["tests.langgraph._durable_process:graph_for", "--db", str(db)]
    command += ["--health", f"127.0.0.1:{port}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKDIR": str(tmp_path)}
    env["CHECKPOINTS"] = str(checkpoints)
    with Handrail.local(db) as hr:  # the schema exists before the command opens it
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line.strip())

        threading.Thread(target=read, daemon=True).start()
        try:
            assert lines.get(timeout=60).startswith("following events for tests.langgraph")
            assert healthz(port) == (200, {"connected": True})

            with checkpointer(str(checkpoints)) as saver:
                graph = payment_graph(hr, saver, tmp_path, Gate(""))
                config = {"configurable": {"thread_id": "t-1"}}
                paused = graph.invoke({}, config, version="v2")
                task_id = paused.interrupts[0].value["handrail"]["task_id"]
                hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
                assert lines.get(timeout=30) == f"resumed thread t-1 (task {task_id})"
                assert graph.get_state(config).next == ()
            assert payments(tmp_path) == [("t-1", f"handrail:{task_id}:approve")]
            status, report = healthz(port)
            assert status == 200 and report["resumed"] == 1
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
