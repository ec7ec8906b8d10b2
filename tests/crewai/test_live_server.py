"""Against a real Handrail server over HTTP: a uvicorn process, an agent's key and a
reviewer's key (another principal) in one organisation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.flow_config import flow_config
from crewai.flow.persistence import SQLiteFlowPersistence
from crewai.tools import ToolFailure

from handrail import Decision, Handrail
from handrail_crewai import (
    HandrailFeedbackProvider,
    HandrailHumanInput,
    approval_hook,
    require_approval,
    resume_flow,
    review_task_id,
)
from tests.crewai._support import FINAL, Outbox, Reviewer, act, crew_of, email_tool
from tests.crewai.test_flows import DRAFT, SENT, RefundFlow
from tests.server._live import LiveServer, api_key, cli_key

ALICE = '{"to": "alice@example.com", "body": "your refund"}'


@dataclass
class Live:
    server: LiveServer
    agent_key: str
    reviewer_key: str

    def agent(self) -> Handrail:
        return Handrail(self.server.url, self.agent_key)

    def reviewer(self, *answers: Any) -> Reviewer:
        return Reviewer(Handrail(self.server.url, self.reviewer_key), answers, owns=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("crewai-live")
    url = f"sqlite:///{tmp / 'server.db'}"
    admin = asyncio.run(cli_key(url, "acme", "admin", principal="acme-admin"))
    server = LiveServer(url, tmp)
    server.start()
    try:

        async def keys() -> tuple[str, str]:
            await server.ready()
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as c:
                return (
                    await api_key(c, admin, "requester", "acme-agent"),
                    await api_key(c, admin, "reviewer", "acme-reviewer"),
                )

        agent_key, reviewer_key = asyncio.run(keys())
        yield Live(server, agent_key, reviewer_key)
    finally:
        server.stop()


def test_a_gated_tool_over_http(live: Live) -> None:
    outbox = Outbox()
    with live.agent() as hr, live.reviewer(Decision.approve(), Decision.reject("no")) as bob:
        gated = require_approval(email_tool(outbox), client=hr)
        bob_call = '{"to": "bob@example.com", "body": "hi"}'
        crew, llm = crew_of(
            [gated], [act("send_email", ALICE), act("send_email", bob_call), FINAL.format("done")]
        )
        assert crew.kickoff().raw == "done"
    assert outbox.sent == [{"to": "alice@example.com", "body": "your refund"}]
    assert "Reason: no." in llm.last_observation()
    assert [t.action.args["to"] for t in bob.tasks if t.action] == [
        "alice@example.com",
        "bob@example.com",
    ]


async def test_a_gated_tool_over_http_async(live: Live) -> None:
    outbox = Outbox()
    with live.agent() as hr, live.reviewer(Decision.modify({"to": "ops@example.com"})):
        got = await require_approval(email_tool(outbox), client=hr).arun(to="alice@example.com")
    assert outbox.sent == [{"to": "ops@example.com", "body": "hello"}]
    assert got.endswith("email sent to ops@example.com")


def test_a_timeout_over_http_does_not_run(live: Live) -> None:
    outbox = Outbox()
    with live.agent() as hr:
        got = require_approval(email_tool(outbox), client=hr, timeout=0.3).run(to="a@example.com")
    assert isinstance(got, ToolFailure) and got.code == "no_human_decision"
    assert outbox.sent == []


def test_the_hook_over_http(live: Live) -> None:
    outbox = Outbox()
    edit = Decision.modify({"to": "ops@example.com", "body": "your refund"})
    with live.agent() as hr, approval_hook(hr), live.reviewer(edit):
        crew, _ = crew_of([email_tool(outbox)], [act("send_email", ALICE), FINAL.format("ok")])
        crew.kickoff()
    assert outbox.sent == [{"to": "ops@example.com", "body": "your refund"}]


def test_human_input_over_http(live: Live) -> None:
    crew, _ = crew_of(
        [], [FINAL.format("one"), FINAL.format("two")], task_kwargs={"human_input": True}
    )
    answers = (Decision.reject("shorter"), Decision.approve())
    with live.agent() as hr, HandrailHumanInput(hr).installed(), live.reviewer(*answers):
        assert crew.kickoff().raw == "two"


def test_a_flow_paused_and_resumed_over_http(live: Live, tmp_path: Path) -> None:
    SENT.clear()
    flows = str(tmp_path / "flows.db")
    try:
        with live.agent() as hr:
            flow_config.hitl_provider = HandrailFeedbackProvider(hr)
            paused = RefundFlow(persistence=SQLiteFlowPersistence(flows)).kickoff()
        assert isinstance(paused, HumanFeedbackPending)
        with live.reviewer(Decision.approve()) as bob, live.agent() as later:
            got = resume_flow(
                RefundFlow,
                paused.context.flow_id,
                client=later,
                persistence=SQLiteFlowPersistence(flows),
                timeout=30,
            )
        assert got == f"sent: {DRAFT}"
        assert [t.id for t in bob.tasks] == [review_task_id(paused)]
        assert SENT == [DRAFT]
    finally:
        flow_config.hitl_provider = None
