"""The README's example runs as written, with a reviewer deciding from another client."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

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
