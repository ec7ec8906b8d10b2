"""``approval_hook``: CrewAI's global ``before_tool_call`` hook gates tools crew-wide."""

from __future__ import annotations

from typing import Any

import pytest
from crewai.hooks import get_after_tool_call_hooks, get_before_tool_call_hooks
from crewai.tools import tool

from handrail import Decision, Handrail, Status
from handrail_crewai import ApprovalHook, approval_hook
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


def kickoff(tools: list[Any], *steps: str, role: str = "mailer") -> str:
    crew, llm = crew_of(tools, [*steps, FINAL.format("done")], role=role)
    assert crew.kickoff().raw == "done"
    return llm.last_observation()


def lookup_tool(log: list[str]) -> Any:
    @tool("lookup")
    def lookup(order: str) -> str:
        """Look an order up."""
        log.append(order)
        return f"order {order} is paid"

    return lookup


class TestGate:
    def test_approve_runs(self, hr: Handrail) -> None:
        outbox = Outbox()
        with approval_hook(hr, tools=["send_email"]), reviewer(hr, Decision.approve()) as alice:
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == [{"to": "alice@example.com", "body": "your refund"}]
        assert seen == "email sent to alice@example.com"
        (task,) = alice.tasks
        assert task.action is not None and task.action.name == "send_email"
        assert task.action.args == {"to": "alice@example.com", "body": "your refund"}
        assert task.payload == {"agent": "mailer", "task": "email the customer"}

    def test_modify_edits_the_input_in_place(self, hr: Handrail) -> None:
        outbox = Outbox()
        edit = Decision.modify({"to": "ops@example.com", "body": "your refund"}, "to ops")
        with approval_hook(hr), reviewer(hr, edit):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == [{"to": "ops@example.com", "body": "your refund"}]
        assert seen.startswith("Note: a human reviewer changed this call before it ran.")
        assert seen.endswith("email sent to ops@example.com")

    def test_reject_blocks_with_the_reason(self, hr: Handrail) -> None:
        outbox = Outbox()
        with approval_hook(hr), reviewer(hr, Decision.reject("wrong customer")):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == []
        assert (
            "rejected the call to `send_email`, so it was not run. Reason: wrong customer." in seen
        )

    def test_respond_blocks_and_answers(self, hr: Handrail) -> None:
        outbox = Outbox()
        allowed = ("approve", "respond")
        with approval_hook(hr, allowed_decisions=allowed), reviewer(hr, Decision.respond("done")):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == []
        assert seen.endswith("a human reviewer answered instead: done")

    def test_an_edit_the_tool_refuses_blocks(self, hr: Handrail) -> None:
        tool = SendEmail()
        with approval_hook(hr), reviewer(hr, Decision.modify({"to": "x@evil.test"})):
            seen = kickoff([tool], act("send_email", ALICE))
        assert tool.outbox.sent == []
        assert "only @example.com addresses" in seen

    def test_an_edit_of_a_call_without_arguments_blocks(self, hr: Handrail) -> None:
        runs: list[str] = []

        @tool("ping")
        def ping(host: str = "a") -> str:
            """Ping a host."""
            runs.append(host)
            return f"pong {host}"

        with approval_hook(hr), reviewer(hr, Decision.modify({"host": "b"})):
            seen = kickoff([ping], act("ping", "{}"))
        assert runs == []
        assert "cannot be applied by the hook" in seen

    def test_timeout_blocks(self, hr: Handrail) -> None:
        outbox = Outbox()
        with approval_hook(hr, timeout=0.2):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == []
        assert "No human answered in time" in seen
        assert hr.tasks.list().items[0].status is Status.CANCELLED

    def test_an_error_blocks_where_crewai_would_let_it_run(self) -> None:
        """CrewAI swallows a hook's exception and runs the tool; this hook blocks."""
        outbox = Outbox()
        client = Handrail.local()
        client.close()  # every review now fails
        with approval_hook(client):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert outbox.sent == []
        assert "no human decision could be obtained" in seen


class TestScope:
    def test_only_the_named_tools_are_gated(self, hr: Handrail) -> None:
        outbox, looked = Outbox(), []
        with approval_hook(hr, tools=["send_email"]), reviewer(hr, Decision.reject("no")) as alice:
            kickoff(
                [email_tool(outbox), lookup_tool(looked)],
                act("lookup", '{"order": "A-1"}'),
                act("send_email", ALICE),
            )
        assert looked == ["A-1"]
        assert outbox.sent == []
        assert [t.action.name for t in alice.tasks if t.action] == ["send_email"]

    def test_only_the_named_agents_are_gated(self, hr: Handrail) -> None:
        outbox = Outbox()
        with approval_hook(hr, agents=["intern"]):
            seen = kickoff([email_tool(outbox)], act("send_email", ALICE), role="manager")
        assert seen == "email sent to alice@example.com"
        assert not hr.tasks.list().items

    def test_remove_unregisters_both_hooks(self, hr: Handrail) -> None:
        hook = approval_hook(hr)
        assert hook.installed
        assert len(get_before_tool_call_hooks()) == len(get_after_tool_call_hooks()) == 1
        assert hook.remove() is True
        assert hook.remove() is False
        assert get_before_tool_call_hooks() == get_after_tool_call_hooks() == []
        outbox = Outbox()
        kickoff([email_tool(outbox)], act("send_email", ALICE))
        assert len(outbox.sent) == 1 and not hr.tasks.list().items

    def test_as_a_context_manager(self, hr: Handrail) -> None:
        with ApprovalHook(hr) as hook:
            assert hook.installed and len(get_before_tool_call_hooks()) == 1
        assert not hook.installed and get_before_tool_call_hooks() == []

    def test_allowed_decisions_must_not_be_empty(self, hr: Handrail) -> None:
        with pytest.raises(ValueError, match="allowed_decisions"):
            approval_hook(hr, allowed_decisions=())
        assert get_before_tool_call_hooks() == []


class TestNativeToolCalls:
    """The path tool-calling models take: the hook sees the very dict the tool runs with."""

    def test_modify(self, hr: Handrail) -> None:
        outbox = Outbox()
        crew, llm = native_crew(
            [email_tool(outbox)],
            [tool_call("send_email", {"to": "alice@example.com", "body": "x"}), "done"],
        )
        edit = Decision.modify({"to": "ops@example.com", "body": "x"})
        with approval_hook(hr), reviewer(hr, edit):
            assert crew.kickoff().raw == "done"
        assert outbox.sent == [{"to": "ops@example.com", "body": "x"}]
        (result,) = llm.tool_results()
        assert result.startswith("Note: a human reviewer changed this call")

    def test_reject(self, hr: Handrail) -> None:
        outbox = Outbox()
        crew, llm = native_crew(
            [email_tool(outbox)],
            [tool_call("send_email", {"to": "alice@example.com", "body": "x"}), "done"],
        )
        with approval_hook(hr), reviewer(hr, Decision.reject("not today")):
            crew.kickoff()
        assert outbox.sent == []
        assert "Reason: not today." in llm.tool_results()[0]
