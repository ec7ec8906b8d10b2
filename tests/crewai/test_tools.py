"""``require_approval``: a gated tool runs only on a person's approve or modify.

Real crews driven by a scripted LLM; the side effect (an email "sent") is counted.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import date

import pytest
from crewai.tools import BaseTool, ToolFailure, tool
from crewai.tools.tool_failure import ToolExecutionFailedError
from pydantic import BaseModel

from handrail import Decision, Handrail, RetryPolicy, Status
from handrail import tool_review as texts
from handrail_crewai import GatedTool, ReviewerAnswer, require_approval
from tests.crewai._support import (
    FINAL,
    Outbox,
    SendEmail,
    act,
    crew_of,
    email_tool,
    native_crew,
    reviewer,
    tool_call,
)

ALICE = '{"to": "alice@example.com", "body": "your refund"}'
ALL = ("approve", "reject", "modify", "respond")


def run_crew(tool: GatedTool, *steps: str) -> tuple[str, list[ToolFailure], str]:
    crew, llm = crew_of([tool], [*steps, FINAL.format("done")])
    out = crew.kickoff()
    failures = [r.failure for r in out.tasks_output[0].tool_failures]
    return out.raw, failures, llm.last_observation()


class TestInACrew:
    def test_approve_runs_the_tool_once(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        with reviewer(hr, Decision.approve()) as alice:
            raw, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert raw == "done"
        assert outbox.sent == [{"to": "alice@example.com", "body": "your refund"}]
        assert seen == "email sent to alice@example.com"
        assert failures == []
        (task,) = alice.tasks
        assert task.action is not None
        assert task.action.name == "send_email"
        assert task.action.args == {"to": "alice@example.com", "body": "your refund"}
        assert task.action.args_schema is not None
        assert set(task.action.args_schema["properties"]) == {"to", "body"}
        assert [d.value for d in task.allowed_decisions] == ["approve", "reject", "modify"]

    def test_modify_runs_with_the_edited_arguments_and_says_so(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        edit = Decision.modify({"to": "ops@example.com", "body": "your refund"}, "ops handles it")
        with reviewer(hr, edit):
            _, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == [{"to": "ops@example.com", "body": "your refund"}]
        assert seen.startswith("Note: a human reviewer changed this call before it ran.")
        assert '"to": "alice@example.com"' in seen and '"to": "ops@example.com"' in seen
        assert "ops handles it" in seen
        assert seen.endswith("email sent to ops@example.com")
        assert failures == []

    def test_reject_does_not_run_and_tells_the_agent_why(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        with reviewer(hr, Decision.reject("wrong customer")):
            raw, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == []
        assert raw == "done"
        assert (
            "rejected the call to `send_email`, so it was not run. Reason: wrong customer." in seen
        )
        assert texts.DO_NOT_RETRY in seen
        (failure,) = failures
        assert failure.code == "rejected_by_reviewer"
        assert failure.details["decision"]["reviewer_id"] == "alice"

    def test_respond_does_not_run_and_the_answer_is_the_result(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr, allowed_decisions=ALL)
        with reviewer(hr, Decision.respond("I called her instead")):
            _, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == []
        assert seen.endswith("a human reviewer answered instead: I called her instead")
        assert failures == []  # an answer, not a failure

    def test_a_retried_rejected_call_is_reviewed_again_not_cached(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        bob = '{"to": "bob@example.com", "body": "hi"}'
        answers = (Decision.reject("not yet"), Decision.approve(), Decision.approve())
        with reviewer(hr, *answers) as alice:
            crew, _ = crew_of(
                [gated],
                [
                    act("send_email", ALICE),
                    act("send_email", bob),  # so the retry below is not a "repeated" call
                    act("send_email", ALICE),
                    FINAL.format("done"),
                ],
            )
            crew.cache = True
            crew.kickoff()
        assert len(alice.tasks) == 3
        assert [m["to"] for m in outbox.sent] == ["bob@example.com", "alice@example.com"]

    def test_on_reject_raise_stops_the_crew(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr, on_reject="raise")
        crew, _ = crew_of([gated], [act("send_email", ALICE), FINAL.format("never")])
        with reviewer(hr, Decision.reject("no")), pytest.raises(ToolExecutionFailedError) as got:
            crew.kickoff()
        assert "Reason: no." in str(got.value)
        assert outbox.sent == []


class TestNativeToolCalls:
    def test_approve_and_reject(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        crew, llm = native_crew(
            [gated],
            [
                tool_call("send_email", {"to": "alice@example.com", "body": "x"}, "c1"),
                tool_call("send_email", {"to": "bob@example.com", "body": "y"}, "c2"),
                "done",
            ],
        )
        with reviewer(hr, Decision.approve(), Decision.reject("not bob")):
            out = crew.kickoff()
        assert outbox.sent == [{"to": "alice@example.com", "body": "x"}]
        assert llm.tool_results()[0] == "email sent to alice@example.com"
        assert "Reason: not bob." in llm.tool_results()[1]
        assert [r.failure.code for r in out.tasks_output[0].tool_failures] == [
            "rejected_by_reviewer"
        ]

    def test_a_copied_crew_is_gated_too(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        crew, _ = crew_of([gated], [act("send_email", ALICE), FINAL.format("done")])
        with reviewer(hr, Decision.reject("no")) as alice:
            crew.copy().kickoff()
        assert outbox.sent == [] and len(alice.tasks) == 1


class TestFailsClosed:
    """Nothing but a person's approve or modify runs the tool."""

    def test_an_edit_the_tool_refuses_does_not_run(self, hr: Handrail) -> None:
        tool = SendEmail()
        gated = require_approval(tool, client=hr)
        # Fits the JSON Schema (Handrail accepts it); the tool's validator refuses it.
        edit = Decision.modify({"to": "mallory@evil.test"})
        with reviewer(hr, edit):
            _, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert tool.outbox.sent == []
        assert "edited its arguments, but the tool does not accept them" in seen
        assert "only @example.com addresses" in seen
        assert [f.code for f in failures] == ["invalid_modification"]

    def test_an_edit_that_breaks_the_schema_is_refused_to_the_reviewer(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        refused: list[Exception] = []

        def bad_then_reject(task: object) -> Decision:
            try:
                hr.as_reviewer("alice").tasks.decide(
                    task.id,  # type: ignore[attr-defined]
                    Decision.modify({"to": 42}),
                )
            except Exception as exc:
                refused.append(exc)
            return Decision.reject("fine, no")

        with reviewer(hr, bad_then_reject):
            run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == []
        assert refused and "modified args do not fit" in str(refused[0])

    def test_timeout_does_not_run_and_withdraws_the_review(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr, timeout=0.2)
        _, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == []
        assert "No human answered in time" in seen and "was not run" in seen
        assert [f.code for f in failures] == ["no_human_decision"]
        (task,) = hr.tasks.list().items
        assert task.status is Status.CANCELLED

    def test_an_unreachable_server_does_not_run(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens here
        outbox = Outbox()
        with Handrail(
            f"http://127.0.0.1:{port}", "hr_test_x", retry=RetryPolicy(max_attempts=1)
        ) as down:
            gated = require_approval(email_tool(outbox), client=down)
            _, failures, seen = run_crew(gated, act("send_email", ALICE))
        assert outbox.sent == []
        assert "no human decision could be obtained" in seen and "was not run" in seen
        assert [f.code for f in failures] == ["review_failed"]

    def test_any_error_in_the_review_does_not_run(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr, risk_tier="no such tier")
        result = gated.run(to="alice@example.com")
        assert outbox.sent == []
        assert isinstance(result, ToolFailure) and result.code == "review_failed"

    def test_a_closed_client_does_not_run(self) -> None:
        outbox = Outbox()
        client = Handrail.local()
        client.close()
        result = require_approval(email_tool(outbox), client=client).run(to="a@example.com")
        assert outbox.sent == []
        assert isinstance(result, ToolFailure) and result.code == "review_failed"


class TestDirectCalls:
    def test_the_wrapper_looks_like_the_tool(self, hr: Handrail) -> None:
        inner = SendEmail()
        gated = require_approval(inner, client=hr, description="Email a customer?")
        assert (gated.name, gated.description) == (inner.name, inner.description)
        assert gated.args_schema is inner.args_schema
        assert gated.inner is inner

    def test_the_title_is_the_description(self, hr: Handrail) -> None:
        gated = require_approval(SendEmail(), client=hr, description="Email a customer?")
        with reviewer(hr, Decision.approve()) as alice:
            gated.run(to="a@example.com")
        assert alice.tasks[0].title == "Email a customer?"

    def test_run_approve_and_reject(self, hr: Handrail) -> None:
        tool = SendEmail()
        gated = require_approval(tool, client=hr)
        with reviewer(hr, Decision.approve(), Decision.reject("no")):
            assert gated.run(to="a@example.com") == "email sent to a@example.com"
            refused = gated.run(to="b@example.com")
        assert isinstance(refused, ToolFailure) and refused.code == "rejected_by_reviewer"
        assert tool.outbox.sent == [{"to": "a@example.com", "body": "hello"}]

    def test_positional_arguments_are_reviewed_by_name(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        with reviewer(hr, Decision.approve()) as alice:
            gated._run("a@example.com", "hi")
        assert alice.tasks[0].action.args == {"to": "a@example.com", "body": "hi"}  # type: ignore[union-attr]
        assert outbox.sent == [{"to": "a@example.com", "body": "hi"}]

    def test_respond_returns_the_answer(self, hr: Handrail) -> None:
        tool = SendEmail()
        gated = require_approval(tool, client=hr, allowed_decisions=ALL)
        with reviewer(hr, Decision.respond("already done")):
            got = gated.run(to="a@example.com")
        assert isinstance(got, ReviewerAnswer) and got.endswith("answered instead: already done")
        assert tool.outbox.sent == []

    def test_an_approved_tool_that_raises_is_reported_once(self, hr: Handrail) -> None:
        calls: list[str] = []

        @tool("flaky")
        def flaky(to: str) -> str:
            """Fails."""
            calls.append(to)
            raise RuntimeError("smtp down")

        with reviewer(hr, Decision.approve()):
            got = require_approval(flaky, client=hr).run(to="a@example.com")
        assert isinstance(got, ToolFailure) and "smtp down" in got.message
        assert calls == ["a@example.com"]

    def test_the_inner_usage_limit_counts_runs_only(self, hr: Handrail) -> None:
        outbox = Outbox()
        inner = email_tool(outbox)
        inner.max_usage_count = 1
        gated = require_approval(inner, client=hr)
        with reviewer(hr, Decision.reject("no"), Decision.approve(), Decision.approve()):
            gated.run(to="a@example.com")
            gated.run(to="b@example.com")
            third = gated.run(to="c@example.com")
        assert outbox.sent == [{"to": "b@example.com", "body": "hello"}]
        assert isinstance(third, ToolFailure) and "usage limit" in third.message

    def test_bad_options_are_refused(self, hr: Handrail) -> None:
        with pytest.raises(ValueError, match="on_reject"):
            require_approval(SendEmail(), client=hr, on_reject="ignore")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="allowed_decisions"):
            require_approval(SendEmail(), client=hr, allowed_decisions=())


class TestAsync:
    async def test_arun_uses_the_async_tool(self, hr: Handrail) -> None:
        tool = SendEmail()
        gated = require_approval(tool, client=hr)
        with reviewer(hr, Decision.approve(), Decision.reject("no")):
            assert await gated.arun(to="a@example.com") == "email sent to a@example.com"
            refused = await gated.arun(to="b@example.com")
        assert isinstance(refused, ToolFailure)
        assert tool.outbox.sent == [{"to": "a@example.com", "body": "hello", "via": "async"}]

    async def test_arun_of_a_sync_tool_runs_it_in_a_thread(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        edit = Decision.modify({"to": "ops@example.com", "body": "x"})
        with reviewer(hr, edit):
            got = await gated.arun(to="a@example.com")
        assert outbox.sent == [{"to": "ops@example.com", "body": "x"}]
        assert got.endswith("email sent to ops@example.com")

    async def test_arun_of_an_async_function_tool(self, hr: Handrail) -> None:
        sent: list[str] = []

        @tool("notify")
        async def notify(to: str) -> str:
            """Notify someone."""
            await asyncio.sleep(0)
            sent.append(to)
            return f"notified {to}"

        with reviewer(hr, Decision.approve()):
            assert await require_approval(notify, client=hr).arun(to="bob") == "notified bob"
        assert sent == ["bob"]

    async def test_async_timeout_does_not_run(self, hr: Handrail) -> None:
        tool = SendEmail()
        got = await require_approval(tool, client=hr, timeout=0.1).arun(to="a@example.com")
        assert isinstance(got, ToolFailure) and got.code == "no_human_decision"
        assert tool.outbox.sent == []

    async def test_akickoff_gates_too(self, hr: Handrail) -> None:
        outbox = Outbox()
        gated = require_approval(email_tool(outbox), client=hr)
        crew, llm = crew_of([gated], [act("send_email", ALICE), FINAL.format("done")])
        with reviewer(hr, Decision.reject("no")):
            out = await crew.akickoff()
        assert out.raw == "done"
        assert outbox.sent == []
        assert "Reason: no." in llm.last_observation()


class Meeting(BaseModel):
    day: date
    people: list[str]


class Schedule(BaseTool):
    name: str = "schedule"
    description: str = "Schedule a meeting."
    args_schema: type[BaseModel] = Meeting

    def _run(self, day: date, people: list[str]) -> str:
        return f"{day.isoformat()} {people}"


def test_review_payload_is_json(hr: Handrail) -> None:
    """Arguments of any pydantic type reach the reviewer as JSON."""
    with reviewer(hr, Decision.approve()) as alice:
        got = require_approval(Schedule(), client=hr).run(day="2026-01-02", people=["a"])
    assert got == "2026-01-02 ['a']"
    action = alice.tasks[0].action
    assert action is not None
    assert json.dumps(action.args) == '{"day": "2026-01-02", "people": ["a"]}'
