"""``require_approval`` on its own: the gated tool looks like the tool, runs it only on a
recorded approve or modify, and answers every other outcome without running it."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException, tool
from pydantic import BaseModel

from handrail import (
    Decision,
    DecisionType,
    Handrail,
    RetryPolicy,
    Status,
    ValidationError,
    WaitTimeout,
)
from handrail_langchain import DO_NOT_RETRY, GatedTool, require_approval
from tests.langchain.conftest import Reviewer, Tools, call, calls, script, tool_messages
from tests.server._live import free_port

ALL = ["approve", "edit", "reject", "respond"]


def gate(inner: Any, hr: Handrail, **options: Any) -> GatedTool:
    """``require_approval`` with a bound on the wait, so a broken test fails, not hangs."""
    options.setdefault("timeout", 20)
    return require_approval(inner, client=hr, **options)


def only_task(hr: Handrail) -> Any:
    (task,) = hr.tasks.list().items
    return task


# ---------------------------------------------------------------- the model sees the same tool


class _Query(BaseModel):
    query: str


class _Search(BaseTool):
    name: str = "search"
    description: str = "Search the archive."
    args_schema: type[BaseModel] = _Query

    def _run(self, query: str) -> str:
        return f"results for {query}"


class _Inferred(BaseTool):
    """A BaseTool without an args_schema: LangChain infers one from ``_run``."""

    name: str = "ping"
    description: str = "Ping a host."

    def _run(self, host: str, count: int = 1) -> str:
        return f"pinged {host} x{count}"


def _plain(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def _structured() -> StructuredTool:
    return StructuredTool.from_function(
        func=lambda x, y: x * y, name="multiply", description="Multiply two numbers."
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t.send_email,
        lambda t: t.delete_file,  # async-only @tool
        lambda t: t.transfer,  # explicit args_schema with a validator
        lambda t: _Search(),
        lambda t: _Inferred(),
        lambda t: _structured(),
    ],
    ids=["tool", "async-tool", "args-schema", "base-tool", "inferred-schema", "structured"],
)
def test_the_gated_tool_looks_like_the_tool(hr: Handrail, tools: Tools, make: Any) -> None:
    inner: BaseTool = make(tools)
    gated = require_approval(inner, client=hr)
    assert isinstance(gated, GatedTool)
    assert (gated.name, gated.description) == (inner.name, inner.description)
    assert gated.args == inner.args
    assert gated.tool_call_schema.model_json_schema() == inner.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert gated.return_direct == inner.return_direct


def test_a_plain_function_becomes_a_gated_tool(hr: Handrail) -> None:
    gated = require_approval(_plain, client=hr)
    assert gated.name == "_plain" and gated.description == "Weather for a city."
    with Reviewer(hr.as_reviewer("alice"), lambda task: Decision.approve()):
        assert gated.invoke({"city": "Oslo"}) == "sunny in Oslo"


def test_bad_settings_are_refused(hr: Handrail, tools: Tools) -> None:
    with pytest.raises(ValueError, match="unknown decision 'maybe'"):
        require_approval(tools.send_email, client=hr, allowed_decisions=["approve", "maybe"])
    with pytest.raises(ValueError, match="at least one"):
        require_approval(tools.send_email, client=hr, allowed_decisions=[])
    with pytest.raises(ValueError, match="mode"):
        require_approval(tools.send_email, client=hr, mode="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_reject"):
        require_approval(tools.send_email, client=hr, on_reject="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        require_approval(tools.send_email, client=hr, timeout=0)


# ---------------------------------------------------------------- decisions


def test_approve_runs_the_tool_once_with_the_models_arguments(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, description="Check the address")
    with Reviewer(hr.as_reviewer("alice"), {"c1": Decision.approve("fine")}) as alice:
        result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert isinstance(result, ToolMessage)
    assert (result.content, result.tool_call_id, result.status) == (
        "sent to bob@example.com",
        "c1",
        "success",
    )
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]
    task = only_task(hr)
    assert alice.decided == [task.id]
    assert task.status is Status.VERIFIED and task.decision.reviewer_id == "alice"
    assert task.action.name == "send_email"
    assert task.action.args == {"to": "bob@example.com", "body": "hi"}
    assert task.action.args_schema["required"] == ["to", "body"]
    assert task.idempotency_key == "langchain:send_email:c1"
    assert task.instructions == "Check the address"
    assert task.payload == {"tool_description": "Send an email to someone."}
    assert task.allowed_decisions == (
        DecisionType.APPROVE,
        DecisionType.REJECT,
        DecisionType.MODIFY,
    )


def test_modify_runs_the_edited_call_and_tells_the_model(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.transfer, hr)
    edit = Decision.modify({"to": "carol", "amount": 50}, "half is enough")
    with Reviewer(hr.as_reviewer("alice"), {"c1": edit}):
        result = gated.invoke(call("transfer", "c1", to="carol", amount=100))
    assert tools.ledger.of("transfer") == [{"to": "carol", "amount": 50}]
    assert isinstance(result, ToolMessage) and result.status == "success"
    text = str(result.content)
    assert text.startswith("Note: a human reviewer changed this tool call before it ran.")
    assert 'Executed instead: transfer with arguments {"to": "carol", "amount": 50}.' in text
    assert "half is enough" in text and text.endswith("Tool response:\npaid 50 to carol")


def test_an_edit_that_breaks_the_schema_is_refused_to_the_reviewer(
    hr: Handrail, tools: Tools
) -> None:
    """Handrail checks edited arguments against the tool's JSON Schema when the reviewer
    decides: the bad edit never becomes a decision, the task stays open."""
    gated = gate(tools.transfer, hr, timeout=0.5)
    refused: list[Exception] = []

    def reviewer(task: Any) -> None:
        try:
            hr.as_reviewer("alice").tasks.decide(
                task.id, Decision.modify({"to": "carol", "amount": "lots"})
            )
        except ValidationError as exc:
            refused.append(exc)

    with Reviewer(hr.as_reviewer("alice"), reviewer):
        result = gated.invoke(call("transfer", "c1", to="carol", amount=100))
    assert refused and "$.args.amount" in str(refused[0].to_dict())
    assert tools.ledger.of("transfer") == []
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "No human answered in time" in str(result.content)


def test_an_edit_the_tool_refuses_does_not_run(hr: Handrail, tools: Tools) -> None:
    """The amount fits the JSON Schema (an integer) but not the tool's own validator."""
    gated = gate(tools.transfer, hr)
    with Reviewer(
        hr.as_reviewer("alice"), {"c1": Decision.modify({"to": "carol", "amount": 5000})}
    ):
        result = gated.invoke(call("transfer", "c1", to="carol", amount=100))
    assert tools.ledger.of("transfer") == []
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "edited its arguments, but the tool does not accept them" in str(result.content)
    assert "between 1 and 1000" in str(result.content) and DO_NOT_RETRY in str(result.content)


def test_reject_does_not_run_and_tells_the_model_not_to_retry(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr)
    with Reviewer(hr.as_reviewer("alice"), {"c1": Decision.reject("wrong customer")}):
        result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert tools.ledger.of("send_email") == []
    assert isinstance(result, ToolMessage)
    assert (result.status, result.tool_call_id, result.name) == ("error", "c1", "send_email")
    assert str(result.content).startswith(
        "A human reviewer rejected the call to `send_email`, so it was not run. "
        "Reason: wrong customer. Do not retry this call"
    )
    assert result.artifact["handrail"]["decision"]["reviewer_id"] == "alice"


def test_reject_without_a_tool_call_is_a_plain_string(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr)
    with Reviewer(hr.as_reviewer("alice"), lambda task: Decision.reject("no")):
        result = gated.invoke({"to": "bob@example.com", "body": "hi"})
    assert isinstance(result, str) and "Reason: no." in result and DO_NOT_RETRY in result
    assert only_task(hr).idempotency_key is None
    assert tools.ledger.done == []


def test_reject_can_raise_a_tool_exception(hr: Handrail, tools: Tools) -> None:
    raising = gate(tools.send_email, hr, on_reject="raise")
    with (
        Reviewer(hr.as_reviewer("alice"), lambda task: Decision.reject("no")),
        pytest.raises(ToolException, match="Reason: no"),
    ):
        raising.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    handled = tools.send_email.model_copy(update={"handle_tool_error": True})
    gated = gate(handled, hr, on_reject="raise")
    with Reviewer(hr.as_reviewer("alice"), lambda task: Decision.reject("still no")):
        result = gated.invoke(call("send_email", "c2", to="bob@example.com", body="hi"))
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "still no" in str(result.content)
    assert tools.ledger.done == []


def test_respond_answers_for_the_tool(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, allowed_decisions=ALL)
    with Reviewer(hr.as_reviewer("alice"), {"c1": Decision.respond("I called Bob instead.")}):
        result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert tools.ledger.done == []
    assert isinstance(result, ToolMessage)
    assert (result.content, result.status) == ("I called Bob instead.", "success")
    assert only_task(hr).allowed_decisions == (
        DecisionType.APPROVE,
        DecisionType.MODIFY,
        DecisionType.REJECT,
        DecisionType.RESPOND,
    )


# ---------------------------------------------------------------- failing closed


def test_timeout_does_not_run(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, timeout=0.2)
    result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert tools.ledger.done == []
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "No human answered in time" in str(result.content) and DO_NOT_RETRY in str(
        result.content
    )
    task = only_task(hr)
    assert task.status is Status.CANCELLED and task.sla_seconds == 1


def test_timeout_can_raise(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, timeout=0.2, on_timeout="raise")
    with pytest.raises(WaitTimeout):
        gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert tools.ledger.done == []


def test_an_unreachable_server_does_not_run(tools: Tools) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Handrail(url, "hr_live_nobody", retry=RetryPolicy(max_attempts=1)) as down:
        gated = require_approval(tools.send_email, client=down)
        result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
        plain = gated.invoke({"to": "bob@example.com", "body": "hi"})
    assert tools.ledger.done == []
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "could not reach the Handrail server" in str(result.content)
    assert result.artifact["handrail"]["error"].startswith("could not reach")
    assert isinstance(plain, str) and DO_NOT_RETRY in plain


def test_any_other_error_does_not_run(tools: Tools) -> None:
    closed = Handrail.local()
    closed.close()
    gated = require_approval(tools.send_email, client=closed)
    result = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert tools.ledger.done == []
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "no human decision could be obtained" in str(result.content)


def test_invalid_model_arguments_never_reach_a_reviewer(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.transfer, hr)
    with pytest.raises(Exception, match="between 1 and 1000"):
        gated.invoke(call("transfer", "c1", to="carol", amount=-5))
    assert hr.tasks.list().items == () and tools.ledger.done == []


def test_an_async_only_tool_cannot_be_called_sync(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.delete_file, hr)
    with pytest.raises(NotImplementedError, match="async-only"):
        gated.invoke(call("delete_file", "c1", path="/tmp/x"))
    assert hr.tasks.list().items == ()  # nobody was asked in vain


# ---------------------------------------------------------------- one call, one task


def test_the_same_tool_call_asks_once(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, timeout=5)
    with Reviewer(hr.as_reviewer("alice"), {"c1": Decision.reject("no")}):
        first = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    again = gated.invoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert isinstance(first, ToolMessage) and isinstance(again, ToolMessage)
    assert first.content == again.content and again.status == "error"
    assert len(hr.tasks.list().items) == 1 and tools.ledger.done == []


# ---------------------------------------------------------------- async


async def test_async_tool_approve_modify_reject(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.delete_file, hr)
    policy = {
        "a": Decision.approve(),
        "m": Decision.modify({"path": "/tmp/old.log"}),
        "r": Decision.reject("keep it"),
    }
    with Reviewer(hr.as_reviewer("alice"), policy):
        approved = await gated.ainvoke(call("delete_file", "a", path="/tmp/a.log"))
        modified = await gated.ainvoke(call("delete_file", "m", path="/etc/passwd"))
        rejected = await gated.ainvoke(call("delete_file", "r", path="/srv/db"))
    assert tools.ledger.of("delete_file") == [{"path": "/tmp/a.log"}, {"path": "/tmp/old.log"}]
    assert approved.content == "deleted /tmp/a.log"
    assert str(modified.content).endswith("Tool response:\ndeleted /tmp/old.log")
    assert rejected.status == "error" and "keep it" in str(rejected.content)


async def test_async_sync_tool_and_timeout(hr: Handrail, tools: Tools) -> None:
    gated = gate(tools.send_email, hr, timeout=0.2)
    result = await gated.ainvoke(call("send_email", "c1", to="bob@example.com", body="hi"))
    assert result.status == "error" and "No human answered in time" in str(result.content)
    with Reviewer(hr.as_reviewer("alice"), {"c2": Decision.approve()}):
        ok = await gated.ainvoke(call("send_email", "c2", to="bob@example.com", body="hi"))
    assert ok.content == "sent to bob@example.com"
    assert tools.ledger.of("send_email") == [{"to": "bob@example.com", "body": "hi"}]


async def test_async_unreachable_server_does_not_run(tools: Tools) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with Handrail(url, "hr_live_nobody", retry=RetryPolicy(max_attempts=1)) as down:
        gated = require_approval(tools.delete_file, client=down)
        result = await gated.ainvoke(call("delete_file", "c1", path="/srv/db"))
    assert result.status == "error" and "could not reach" in str(result.content)
    assert tools.ledger.done == []


def test_tool_without_a_tool_call_runs_with_plain_arguments(hr: Handrail) -> None:
    seen: list[dict[str, Any]] = []

    @tool
    def note(text: str, urgent: bool = False) -> str:
        """Write a note."""
        seen.append({"text": text, "urgent": urgent})
        return "noted"

    gated = gate(note, hr)
    with Reviewer(hr.as_reviewer("alice"), lambda task: Decision.approve()):
        assert gated.run({"text": "hello"}) == "noted"
        assert gated.invoke("direct string") == "noted"
    assert seen == [{"text": "hello", "urgent": False}, {"text": "direct string", "urgent": False}]
    args = sorted(str(t.action.args) for t in hr.tasks.list().items)
    assert args == ["{'text': 'direct string'}", "{'text': 'hello'}"]


def test_injected_arguments_stay_out_of_the_review_and_survive_an_edit(hr: Handrail) -> None:
    """ToolNode injects the runtime and the call id; the reviewer sees and edits only what
    the model fills in, and the tool still gets what was injected."""

    @tool
    def note(text: str, runtime: ToolRuntime, call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Write a note."""
        return f"noted {text!r} for {call_id} after {len(runtime.state['messages'])} messages"

    gated = gate(note, hr)
    assert set(gated.tool_call_schema.model_json_schema()["properties"]) == {"text"}  # type: ignore[union-attr]
    model = script(calls(call("note", "n1", text="hi")), AIMessage("ok"))
    agent = create_agent(model, [gated])
    with Reviewer(hr.as_reviewer("alice"), {"n1": Decision.modify({"text": "edited"})}):
        result = agent.invoke({"messages": [{"role": "user", "content": "note it"}]})
    answer = tool_messages(result["messages"])["n1"]
    assert str(answer.content).endswith("noted 'edited' for n1 after 2 messages")
    task = only_task(hr)
    assert task.action.args == {"text": "hi"}
    assert set(task.action.args_schema["properties"]) == {"text"}
