"""CrewAI with Handrail: refunds a person approves, and a flow that waits for a reviewer.

    python examples/crewai_refunds.py crew
        An agent issues two refunds through a gated tool. Simulated reviewers decide
        (Handrail's sandbox): up to $100 is approved, more is rejected.

    python examples/crewai_refunds.py pause DIR
        A flow drafts a refund email and pauses for review; the process exits.
    handrail review --db DIR/handrail.db
        Decide at the terminal (approve, reject, or edit the email).
    python examples/crewai_refunds.py resume DIR FLOW_ID
        Waits for the decision, then resumes the flow where it stopped.

It runs offline: ``ScriptedModel`` stands in for a model (use ``LLM(model=...)`` for a real
one). Set CREWAI_DISABLE_TELEMETRY=true and OTEL_SDK_DISABLED=true to keep CrewAI quiet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.flow import Flow, listen, start
from crewai.flow.flow_config import flow_config
from crewai.flow.human_feedback import human_feedback
from crewai.flow.persistence import SQLiteFlowPersistence
from crewai.llms.base_llm import BaseLLM
from crewai.tools import tool
from pydantic import Field

from crewai import Agent, Crew, Task
from handrail import Decision, Handrail, SandboxReviewer, SandboxRule
from handrail_crewai import HandrailFeedbackProvider, require_approval, resume_flow, review_task_id

REFUNDED: list[str] = []


@tool("issue_refund")
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an order (amount in dollars)."""
    REFUNDED.append(f"{order_id} ${amount:.2f}")
    return f"refunded ${amount:.2f} on {order_id}"


class ScriptedModel(BaseLLM):
    """Plays back the agent's turns; a real model decides these itself."""

    turns: list[str] = Field(default_factory=list)

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return self.turns.pop(0)


def refund_turn(order_id: str, amount: float) -> str:
    return (
        f"Thought: the customer is owed a refund on {order_id}\n"
        f"Action: issue_refund\n"
        f'Action Input: {{"order_id": "{order_id}", "amount": {amount}}}'
    )


def crew_demo() -> None:
    over_100 = SandboxRule(
        when=lambda task: float(task.action.args["amount"]) > 100,  # type: ignore[union-attr, arg-type]
        then=Decision.reject("refunds over $100 need a manager"),
    )
    with Handrail.local(sandbox=SandboxReviewer(over_100)) as hr:
        refund = require_approval(issue_refund, client=hr, timeout=30)
        model = ScriptedModel(
            model="scripted",
            turns=[
                refund_turn("A-1042", 40.0),
                refund_turn("A-2077", 250.0),
                "Thought: I now know the final answer\n"
                "Final Answer: refunded A-1042; the A-2077 refund was turned down",
            ],
        )
        agent = Agent(
            role="refund agent",
            goal="settle refunds",
            backstory="support",
            llm=model,
            tools=[refund],
        )
        task = Task(
            description="Refund A-1042 and A-2077", expected_output="what was done", agent=agent
        )
        result = Crew(agents=[agent], tasks=[task]).kickoff()
        print(f"refunded: {REFUNDED}")
        print(f"answer: {result.raw}")
        for failure in result.tasks_output[0].tool_failures:
            print(f"not run: {failure.failure.message}")


class RefundEmailFlow(Flow[dict[str, Any]]):
    @start()
    @human_feedback(message="Send this refund email?", emit=["approved", "rejected"])
    def draft(self) -> str:
        return "Dear Alice, your refund of $40 for order A-1042 is on its way."

    @listen("approved")
    def send(self) -> str:
        return f"sent: {self.last_human_feedback.output}"  # type: ignore[union-attr]

    @listen("rejected")
    def hold(self) -> str:
        return f"held back: {self.last_human_feedback.feedback}"  # type: ignore[union-attr]


def pause(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with Handrail.local(directory / "handrail.db") as hr:
        flow_config.hitl_provider = HandrailFeedbackProvider(hr)
        flow = RefundEmailFlow(persistence=SQLiteFlowPersistence(str(directory / "flows.db")))
        paused = flow.kickoff()
    assert isinstance(paused, HumanFeedbackPending)
    print(f"paused flow {paused.context.flow_id}")
    print(f"review task {review_task_id(paused)}")


def resume(directory: Path, flow_id: str) -> None:
    with Handrail.local(directory / "handrail.db") as hr:
        print("waiting for the decision", flush=True)
        result = resume_flow(
            RefundEmailFlow,
            flow_id,
            client=hr,
            persistence=SQLiteFlowPersistence(str(directory / "flows.db")),
            timeout=600,
        )
    print(f"flow result: {result}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("crew")
    commands.add_parser("pause").add_argument("dir", type=Path)
    resumed = commands.add_parser("resume")
    resumed.add_argument("dir", type=Path)
    resumed.add_argument("flow_id")
    args = parser.parse_args(argv)
    if args.command == "crew":
        crew_demo()
    elif args.command == "pause":
        pause(args.dir)
    else:
        resume(args.dir, args.flow_id)


if __name__ == "__main__":
    main(sys.argv[1:])
