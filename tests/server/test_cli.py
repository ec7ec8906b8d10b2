"""The server's commands: keys, migrate, and serve --demo (what `make run` starts)."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import Result
from typer.testing import CliRunner

from handrail_server import cli

ROOT = Path(__file__).resolve().parents[2]


def handrail(*args: str, db: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HANDRAIL_DATABASE_URL": f"sqlite:///{db}"}
    return subprocess.run(
        [sys.executable, "-m", "handrail._cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_keys_and_migrate(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    assert handrail("migrate", db=db).stdout.strip() == "the database is up to date"
    made = handrail("keys", "create", "--org", "acme", "--role", "reviewer", "--as", "alice", db=db)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert re.fullmatch(r"hr_live_[A-Za-z0-9]{32}", key)
    test_key = handrail(
        "keys", "create", "--org", "acme", "--role", "requester", "--sandbox", db=db
    )
    assert test_key.stdout.strip().startswith("hr_test_")
    listed = handrail("keys", "list", "--org", "acme", db=db).stdout.splitlines()
    assert len(listed) == 2 and "alice" in listed[0] and key not in "".join(listed)
    key_id = listed[0].split()[0]
    assert handrail("keys", "revoke", key_id, db=db).stdout.strip() == f"revoked {key_id}"
    again = handrail("keys", "revoke", key_id, db=db)
    assert again.returncode == 1 and "no active key" in again.stderr
    bad = handrail("keys", "create", "--org", "acme", "--role", "emperor", db=db)
    assert bad.returncode != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_demo_prints_keys_that_work(tmp_path: Path) -> None:
    db, port = tmp_path / "demo.db", _free_port()
    env = {**os.environ, "HANDRAIL_DATABASE_URL": f"sqlite:///{db}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "handrail._cli", "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("-d '" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "the server stopped: " + "".join(lines)
            lines.append(line)
        printed = "".join(lines)
        admin = re.search(r"(hr_live_\w+)", printed.split("running at")[0])
        requester = re.search(r"sandbox requester key.*?(hr_test_\w+)", printed)
        live = re.search(r"  requester key.*?(hr_live_\w+)", printed)
        reviewer = re.search(r"reviewer key.*?(hr_live_\w+)", printed)
        curl = re.search(r"Bearer (hr_\w+)", printed)
        assert admin and requester and live and reviewer and curl, printed
        assert curl.group(1) == live.group(1)  # the example asks a person, in the browser
        assert f"Review in the browser: {base}/signin" in printed
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        huge = httpx.get(f"{base}/healthz", headers={"X-Big": "a" * (1 << 20)})
        assert huge.status_code == 431, huge.text  # never served
        assert huge.json()["code"] == "headers_too_large"
        ask = {"Authorization": f"Bearer {requester.group(1)}"}
        task = httpx.post(
            f"{base}/v1/tasks",
            json={"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}},
            headers=ask,
        ).json()
        done = httpx.get(
            f"{base}/v1/tasks/{task['id']}/wait?timeout=20", headers=ask, timeout=30
        ).json()
        assert (done["status"], done["output"]["reviewer_id"]) == ("verified", "sandbox")
        asked = httpx.post(  # the live key's review waits for the demo reviewer
            f"{base}/v1/tasks",
            json={"kind": "review", "action": {"name": "refund", "args": {"order": "A-1"}}},
            headers={"Authorization": f"Bearer {live.group(1)}"},
        ).json()
        queue = httpx.get(
            f"{base}/v1/queue", headers={"Authorization": f"Bearer {reviewer.group(1)}"}
        )
        assert queue.status_code == 200
        assert [t["id"] for t in queue.json()["data"]] == [asked["id"]]
        keys = httpx.get(f"{base}/v1/keys", headers={"Authorization": f"Bearer {admin.group(1)}"})
        assert keys.status_code == 200 and keys.json()[0]["org_id"] == "default"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_policy_and_audit_commands(tmp_path: Path) -> None:
    """In this process (typer's runner), but for the last check: ``handrail audit`` as
    installed, exiting 1 on a broken chain."""
    db = tmp_path / "gov.db"
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli.app, [*args, "--database-url", f"sqlite:///{db}"])

    rules = tmp_path / "policy.json"
    rules.write_text(
        json.dumps(
            {
                "rules": [
                    {"id": "big", "tools": ["refund"], "when": "args.amount > 100",
                     "outcome": "deny"},
                    {"id": "rest", "tools": ["*"], "outcome": "ask"},
                ]
            }
        )
    )  # fmt: skip
    saved = run("policy", "set", str(rules), "--org", "acme")
    assert saved.exit_code == 0, saved.output
    assert saved.stdout.strip() == "saved version 1 (2 rules)"
    again = run("policy", "set", str(rules), "--org", "acme", "--expected-version", "0")
    assert again.exit_code == 1 and "changed concurrently" in again.stderr
    shown = json.loads(run("policy", "get", "--org", "acme").stdout)
    assert [r["id"] for r in shown["rules"]] == ["big", "rest"] and shown["version"] == 1
    explained = run(
        "policy", "explain", "--org", "acme", "--tool", "refund", "--args", '{"amount": "x"}'
    ).stdout
    assert "skip  big: error: cannot order 'x' > 100" in explained
    assert "outcome: ask by big (the rule erred" in explained
    assert run("policy", "set", str(tmp_path / "nope.json"), "--org", "x").exit_code != 0

    ok = run("audit", "verify")
    assert ok.exit_code == 0 and ok.stdout.strip() == "acme: ok (1 entries, head 1)"
    export = tmp_path / "audit.jsonl"
    written = run("audit", "export", "--org", "acme", "--out", str(export))
    assert written.stdout.strip() == f"wrote 1 entries to {export}"
    assert run("audit", "verify", "--file", str(export)).exit_code == 0

    with sqlite3.connect(db) as conn:  # behind the guards' back
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET body = replace(body, '\"rules\":2', '\"rules\":3')")
    export.write_text(export.read_text().replace('"rules":2', '"rules":3'))
    assert run("audit", "verify", "--file", str(export)).exit_code == 1
    broken = handrail("audit", "verify", "--org", "acme", db=db)
    assert broken.returncode == 1
    assert broken.stdout.strip().startswith("acme: BROKEN at entry 1: its contents do not match")
