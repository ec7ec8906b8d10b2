"""The example in ``examples/langgraph_refunds.py`` runs, and does what it says."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langgraph_refunds.py"


def test_the_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HANDRAIL_URL", raising=False)  # the in-process sandbox, not a server
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "paused for a review: refund {'order_id': 'A-1042', 'amount': 240}" in out
    assert "paused for a review: delete_account {'customer': 'ada'}" in out
    assert "resumed: " in out
    assert "[lookup_order, success] A-1042: 2 items" in out
    assert "Executed instead: refund with arguments" in out
    assert "refunded 100 EUR on A-1042" in out and "refunded 240" not in out
    assert "[delete_account, error] A human reviewer rejected the call" in out
    assert out.rstrip().endswith("[voucher] issued a 20 EUR voucher to ada")
