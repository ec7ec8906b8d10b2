"""The LangGraph adapter stands alone: it never imports the LangChain adapter, and core
imports no agent framework (what the adapters share lives in core, framework-free, or
in this adapter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("langchain", "langchain_core", "langgraph", "crewai", "handrail_langchain")


def _imports(package: Path) -> set[tuple[str, str]]:
    """Every module imported anywhere under ``package``, with the file importing it."""
    found: set[tuple[str, str]] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update((str(path), alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((str(path), node.module))
    return found


def _offending(package: Path, roots: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted((f, m) for f, m in _imports(package) if m.split(".")[0] in roots)


def test_langgraph_adapter_never_imports_the_langchain_adapter() -> None:
    source = ROOT / "packages" / "langgraph" / "src"
    assert _offending(source, ("handrail_langchain", "langchain")) == []


def test_core_imports_no_framework() -> None:
    assert _offending(ROOT / "packages" / "core" / "src", FRAMEWORKS) == []


def test_langgraph_adapter_works_without_the_langchain_adapter() -> None:
    script = """
import sys
sys.modules["handrail_langchain"] = None  # not importable
sys.modules["langchain"] = None  # nor the langchain package (langchain-core is fine)
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict
from handrail import Handrail
from handrail_langgraph import HandrailResumer, ReviewedToolNode, review_node
from handrail_langgraph.interrupts import current_run, pause, task_id_of

@tool
def send(to: str) -> str:
    '''Send.'''
    return "sent " + to

class State(TypedDict, total=False):
    action: dict
    decision: dict

with Handrail.local(sandbox=True) as hr:
    ReviewedToolNode([send], client=hr)
    graph = StateGraph(State)
    graph.add_node("review", review_node(hr, action="action", on_approve="__end__"))
    graph.add_edge(START, "review")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    out = app.invoke({"action": {"name": "send", "args": {"to": "a"}}}, config)
    interrupts = out.get("__interrupt__", ())
    assert all(task_id_of(i) for i in interrupts), out
    assert current_run() is None and callable(pause) and HandrailResumer
assert "handrail_langchain" not in [m for m, v in sys.modules.items() if v is not None]
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
