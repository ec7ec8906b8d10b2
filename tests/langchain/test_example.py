"""The example in ``examples/langchain_agent.py`` runs, and does what it says."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_agent.py"


def test_the_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HANDRAIL_URL", raising=False)  # the in-process sandbox, not a server
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "[ask_human, success] Yes, she is a long-standing customer" in out
    assert "Executed instead: refund with arguments" in out
    assert '"amount": 100}' in out and "refunded 100 EUR on A-1042" in out
    assert "[send_email, success] emailed ada@example.com: Your refund" in out
    assert "[delete_account, error] A human reviewer rejected the call" in out
    assert out.rstrip().endswith("[ai] Refunded 100 EUR and told Ada; her account stays.")
