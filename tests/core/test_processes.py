"""Across processes on one SQLite file: waking waiters, the CLI, and surviving kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from handrail import ChangeFeedWaker, Engine, Principal, Role, Status
from handrail.store.sql import SqlStore

AGENT = Principal(org_id="local", id="agent", roles=frozenset({Role.REQUESTER}))
ROOT = Path(__file__).resolve().parents[2]


def python(code: str, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


DECIDE_IN_ANOTHER_PROCESS = """
    import sys
    from handrail import Decision, Handrail
    with Handrail.local(sys.argv[1], sweep_interval=None) as hr:
        me = hr.as_reviewer("bob")
        task = me.tasks.wait_for_work(timeout=30)[0]
        me.tasks.decide(task.id, Decision.modify({"amount": 3}, "less"))
"""


async def test_a_decision_in_another_process_wakes_the_waiter(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    store = await SqlStore.open(f"sqlite:///{db}")
    # an hour-long backstop: only the change feed can wake the waiter in time
    engine = Engine(store, waker=await ChangeFeedWaker.open(store), wait_backstop=3600)
    try:
        task = await engine.create(AGENT, {"kind": "review", "action": {"name": "pay"}})
        reviewer = asyncio.create_task(asyncio.to_thread(python, DECIDE_IN_ANOTHER_PROCESS, db))
        done = await asyncio.wait_for(engine.wait(AGENT, task.id), 60)
        await reviewer
    finally:
        await engine.aclose()
    assert done.status is Status.VERIFIED
    assert done.decision is not None and done.decision.args == {"amount": 3}
    assert done.decision.reviewer_id == "bob"


def test_handrail_review_decides_from_the_terminal(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    create = """
        import sys
        from handrail import Handrail
        with Handrail.local(sys.argv[1]) as hr:
            print(hr.tasks.create(kind="review", action={"name": "pay", "args": {"n": 1}}).id)
    """
    task_id = python(create, db).strip()
    cli = [sys.executable, "-m", "handrail._cli", "review", "--db", db, "--as", "carol"]
    done = subprocess.run(
        [*cli, "--idle-exit", "0.5"],
        input="r\nnot today\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "Approve pay" in done.stdout
    assert "1 task(s) decided." in done.stdout
    check = """
        import sys
        from handrail import Handrail
        with Handrail.local(sys.argv[1]) as hr:
            d = hr.tasks.get(sys.argv[2]).decision
            print(d.type.value, d.message, d.reviewer_id)
    """
    assert python(check, db, task_id).strip() == "reject not today carol"


def test_handrail_demo_runs_to_the_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handrail._cli", "demo"],
        input='a\nr\ntoo risky\nm\n{"table": "users", "where": "id = 1"}\n\n',
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "[agent] send_email: approve" in done.stdout
    assert "[agent] refund_payment: reject (too risky)" in done.stdout
    assert "[agent] delete_records: modify" in done.stdout
    assert "Demo over: 2 of 3 action(s) approved." in done.stdout


WRITE_THEN_HANG = """
    import sys, time
    from handrail import Decision, Handrail
    with Handrail.local(sys.argv[1], sweep_interval=None) as hr:
        me = hr.as_reviewer("alice")
        for i in range(40):
            task = hr.tasks.create(kind="review", action={"name": "pay", "args": {"i": i}})
            if i % 2:
                me.tasks.decide(task.id, Decision.approve())
            print(task.id, "decided" if i % 2 else "open", flush=True)
        print("ready", flush=True)
        time.sleep(600)
"""


def test_nothing_acknowledged_is_lost_to_kill_9(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.db")
    acknowledged = []
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITE_THEN_HANG), db],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "ready":
                break
            acknowledged.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) == 40
    check = """
        import sys
        from handrail import Handrail
        with Handrail.local(sys.argv[1]) as hr:
            for task_id in sys.argv[2:]:
                t = hr.tasks.get(task_id)
                print(t.id, t.status.value, len(hr.tasks.history(task_id)))
    """
    rows = python(check, db, *(task_id for task_id, _ in acknowledged)).split("\n")
    seen = {r.split()[0]: r.split()[1:] for r in rows if r}
    for task_id, state in acknowledged:
        expected = ["verified", "4"] if state == "decided" else ["posted", "1"]
        assert seen[task_id] == expected
