"""The README's example runs as written, with a reviewer deciding from another client: here,
and in a fresh environment holding only what ``pip install handrail-core`` installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from handrail import Decision, Handrail

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(path: Path) -> list[str]:
    return [str(b) for b in re.findall(r"```python\n(.*?)```", path.read_text(), re.S)]


def example() -> str:
    (block,) = python_blocks(README)
    return block


def test_the_ledger_doc_example_runs() -> None:
    (block,) = python_blocks(ROOT / "docs" / "ledger.md")
    exec(block, {})


@pytest.mark.parametrize(
    ("decision", "refunded"),
    [
        (Decision.approve(), {"order_id": "A-1042", "amount": "120.00"}),
        (
            Decision.modify({"order_id": "A-1042", "amount": "60.00"}),
            {"order_id": "A-1042", "amount": "60.00"},
        ),
        (Decision.reject("ask for photos first"), None),
    ],
)
def test_readme_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decision: Decision, refunded: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[dict[str, str]] = []

    def reviewer() -> None:  # another client on the same file: woken by the change feed
        with Handrail.local("handrail.db") as other:
            me = other.as_reviewer("alice")
            task = me.tasks.wait_for_work(timeout=30)[0]
            me.tasks.decide(task.id, decision)

    thread = threading.Thread(target=reviewer)
    thread.start()
    exec(example(), {"refund": lambda **kw: calls.append(kw), "print": lambda *a: None})
    thread.join()
    assert calls == ([refunded] if refunded else [])


FRESH = """
import importlib.util, re, sys, threading
from pathlib import Path
from handrail import Decision, Handrail

assert importlib.util.find_spec("asyncpg") is None  # handrail-core alone, no extra
(block,) = re.findall(r"```python\\n(.*?)```", Path(sys.argv[1]).read_text(), re.S)

def reviewer():
    with Handrail.local("handrail.db") as other:
        me = other.as_reviewer("alice")
        task = me.tasks.wait_for_work(timeout=30)[0]
        me.tasks.decide(task.id, Decision.approve())

thread = threading.Thread(target=reviewer)
thread.start()
calls = []
exec(block, {"refund": lambda **kw: calls.append(kw)})
thread.join()
print("refunded:", calls)

import asyncio
from handrail.store.sql import SqlStore
try:  # PostgreSQL, without the extra: a clear error, never a connection
    asyncio.run(SqlStore.open("postgresql://nobody@127.0.0.1:1/none"))
except ImportError as exc:
    assert "pip install 'handrail-core[sql]'" in str(exc), exc
else:
    raise AssertionError("PostgreSQL opened without asyncpg")
"""


_EXPORT = ("--no-emit-workspace", "--no-hashes", "--no-header", "--no-annotate")


def _fresh_environment(venv: Path, uv: str) -> None:
    """A new virtual environment holding ``handrail`` and exactly the distributions the
    lock resolves for ``handrail-core`` alone (``uv export``), each copied file by file
    from this checkout's environment (its RECORD): no network, no cache."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    exported = subprocess.run(
        [uv, "export", "--frozen", "--package", "handrail-core", "--no-dev", *_EXPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in exported.splitlines():
        if not line.strip() or line.startswith(("#", "-")):
            continue
        wanted = Requirement(line)
        if wanted.marker is not None and not wanted.marker.evaluate():
            continue
        dist = metadata.distribution(wanted.name)
        assert dist.version in wanted.specifier, (wanted, dist.version)
        for file in dist.files or ():
            if ".." in file.parts:  # scripts outside site-packages
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(dist.locate_file(file))), target)
    shutil.copytree(ROOT / "packages" / "core" / "src" / "handrail", site / "handrail")


def test_readme_example_runs_on_what_its_install_line_installs(tmp_path: Path) -> None:
    """``pip install handrail-core`` (the README's install line) then the README's example:
    SQLite works without the ``sql`` extra; PostgreSQL without it says to install it. The
    environment holds what the lock installs for ``handrail-core`` and nothing else."""
    assert "`pip install handrail-core`" in README.read_text()
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path / "venv"
    _fresh_environment(venv, uv)
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", FRESH, str(README)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "refunded: [{'order_id': 'A-1042', 'amount': '120.00'}]"
