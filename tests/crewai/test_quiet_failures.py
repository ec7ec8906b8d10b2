"""An unreachable Handrail server costs one log line per failed call, not a traceback beside
the clean error result the model reads: in the client and in every adapter (a closed
port on 127.0.0.1, nothing mocked)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from crewai.tools import tool as crew_tool
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from handrail import Handrail, HandrailError, RetryPolicy
from handrail import tool_review as texts
from handrail_crewai import require_approval as crewai_gate
from handrail_langchain import HandrailMiddleware, ask_human_tool
from handrail_langchain import require_approval as langchain_gate
from tests.langchain.conftest import call, calls, script


@pytest.fixture
def down() -> Iterator[Handrail]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Handrail(f"http://127.0.0.1:{port}", "hr_test_x", retry=RetryPolicy(max_attempts=1)) as hr:
        yield hr


@tool
def pay(amount: int) -> str:
    """Pay an amount."""
    raise AssertionError("ran without a decision")


def _tool_call(call_id: str) -> dict[str, Any]:
    return {"name": "pay", "args": {"amount": 5}, "id": call_id, "type": "tool_call"}


def _langchain_tool(hr: Handrail) -> list[str]:
    gated = langchain_gate(pay, client=hr)
    return [str(gated.invoke(_tool_call(f"c{i}")).content) for i in range(2)]


def _middleware(hr: Handrail) -> list[str]:
    model = script(calls(call("pay", "c0", amount=5), call("pay", "c1", amount=6)), AIMessage(""))
    agent = create_agent(model, [pay], middleware=[HandrailMiddleware(hr, {"pay": True})])
    out = agent.invoke({"messages": [{"role": "user", "content": "go"}]})
    return [str(m.content) for m in out["messages"] if isinstance(m, ToolMessage)]


def _ask(hr: Handrail) -> list[str]:
    ask = ask_human_tool(hr)
    said = []
    for i in range(2):
        message = ask.invoke(
            {"name": ask.name, "args": {"question": "ok?"}, "id": f"q{i}", "type": "tool_call"}
        )
        said.append(str(message.content))
    return said


def _crewai(hr: Handrail) -> list[str]:
    @crew_tool("pay")
    def crew_pay(amount: int) -> str:
        """Pay an amount."""
        raise AssertionError("ran without a decision")

    gated = crewai_gate(crew_pay, client=hr)
    return [str(gated.run(amount=5).message) for _ in range(2)]


ADAPTERS: dict[str, Callable[[Handrail], list[str]]] = {
    "langchain tool": _langchain_tool,
    "langchain middleware": _middleware,
    "langchain ask_human_tool": _ask,
    "crewai tool": _crewai,
}


def _handrail_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("handrail")]


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_one_line_per_failed_call(
    adapter: str, down: Handrail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    said = ADAPTERS[adapter](down)
    assert len(said) == 2 and all("could not reach the Handrail server" in s for s in said)
    records = _handrail_records(caplog)
    assert len(records) <= 2  # at most one line per failed call
    for record in records:
        assert record.exc_info is None and record.exc_text is None
        assert "\n" not in record.getMessage()
        assert "could not reach the Handrail server" in record.getMessage()
    text = caplog.text
    assert "Traceback" not in text


def test_the_client_raises_and_logs_nothing(
    down: Handrail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HandrailError, match="could not reach the Handrail server") as got:
        down.review("pay", {"amount": 5})
    assert got.value.code == "connection_error"
    assert _handrail_records(caplog) == [] and "Traceback" not in caplog.text


def test_an_unexpected_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only Handrail's own errors are one line: a bug elsewhere still shows where it is."""
    caplog.set_level(logging.WARNING)
    log = logging.getLogger("handrail_langchain")
    texts.log_failure(log, "pay: no decision", RuntimeError("a bug"))
    texts.log_failure(log, "pay: no decision", HandrailError("the server said no"))
    bug, ours = _handrail_records(caplog)
    assert bug.exc_info is not None and ours.exc_info is None
    assert ours.getMessage() == (
        "pay: no decision (HandrailError: the server said no); the call was not run"
    )
