"""``import handrail`` loads nothing heavy it does not need: numpy (Dawid–Skene), httpx
(the HTTP client; it loads click, rich and pygments for its command line) and jsonschema
come in when first used. Checked in a fresh interpreter, by what is in ``sys.modules``
(the time it takes is a benchmark: ``benchmarks/bench_import.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "click", "rich", "pygments", "httpx", "jsonschema")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    names: list[str] = json.loads(out.splitlines()[-1])
    return sorted({n.split(".")[0] for n in names} & set(HEAVY))


def test_import_handrail_loads_none_of_them() -> None:
    assert _loaded("import handrail") == []


def test_a_local_client_and_its_public_api_load_none_of_them() -> None:
    code = (
        "import handrail\n"
        "from handrail import Decision, Handrail, RetryPolicy\n"
        "from handrail.client import decision_of\n"
        "from handrail.tool_review import refusal\n"
        "with Handrail.local() as hr:\n"
        "    hr.tasks.list()\n"
    )
    assert _loaded(code) == []


def test_each_comes_in_when_used() -> None:
    assert "httpx" in _loaded("from handrail.client import HttpSession")
    assert "httpx" in _loaded("from handrail import Handrail\nHandrail('http://127.0.0.1:9', 'k')")
    assert "numpy" in _loaded(
        "from handrail.consensus import dawid_skene\ndawid_skene([('i', 'w', 'a')])"
    )
    checked = (
        "from handrail.validation import validate_instance\n"
        "validate_instance(1, {'type': 'integer'}, '$', 'bad')"
    )
    assert "jsonschema" in _loaded(checked)
