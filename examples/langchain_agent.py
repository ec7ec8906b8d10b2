"""A LangChain agent whose risky tools wait for a human decision in Handrail.

    uv run python examples/langchain_agent.py

It runs offline: a scripted chat model stands in for the LLM (pass any tool-calling chat
model to ``create_agent`` instead, e.g. ``ChatOpenAI(model=...)``), and Handrail's sandbox
plays the reviewers: it approves emails, halves large refunds and refuses deletions. With
``HANDRAIL_URL`` and ``HANDRAIL_API_KEY`` set (a sandbox key, ``hr_test_...``) it asks a
Handrail server instead, whose sandbox reviewers approve everything.
"""

from __future__ import annotations

import os
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from handrail import Decision, Handrail, SandboxReviewer, Task
from handrail_langchain import HandrailMiddleware, ask_human_tool, require_approval


@tool
def send_email(to: str, subject: str) -> str:
    """Email a customer."""
    return f"emailed {to}: {subject}"


@tool
def refund(order_id: str, amount: int) -> str:
    """Refund an order, in whole euros."""
    return f"refunded {amount} EUR on {order_id}"


@tool
def delete_account(customer: str) -> str:
    """Delete a customer's account for good."""
    return f"deleted {customer}"


def simulated_reviewer(task: Task) -> Decision | Any:
    """Stands in for people working through the Handrail queue."""
    if task.action is None:  # a question from ask_human
        return "Yes, she is a long-standing customer: be generous."
    if task.action.name == "delete_account":
        return Decision.reject("We never delete accounts on request by chat.")
    if task.action.name == "refund" and task.action.args["amount"] > 100:
        return Decision.modify(
            {**task.action.args, "amount": 100}, "refunds above 100 need a manager"
        )
    return Decision.approve()


class ScriptedModel(GenericFakeChatModel):
    """Plays back the turns below; a real model decides them from the conversation."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


TURNS = [
    AIMessage("", tool_calls=[call("ask_human", "q1", question="Is Ada a loyal customer?")]),
    AIMessage(
        "",
        tool_calls=[
            call("refund", "r1", order_id="A-1042", amount=240),
            call("send_email", "e1", to="ada@example.com", subject="Your refund"),
            call("delete_account", "d1", customer="ada"),
        ],
    ),
    AIMessage("Refunded 100 EUR and told Ada; her account stays."),
]


def client() -> Handrail:
    if os.environ.get("HANDRAIL_URL") and os.environ.get("HANDRAIL_API_KEY"):
        return Handrail.from_env()
    return Handrail.local(sandbox=SandboxReviewer(decide=simulated_reviewer))


def main() -> None:
    with client() as hr:
        agent = create_agent(
            ScriptedModel(messages=iter(TURNS)),
            tools=[
                require_approval(refund, client=hr, timeout=60),  # gated where it is defined
                send_email,  # gated by the middleware below
                delete_account,  # likewise
                ask_human_tool(hr, timeout=60),  # the model may ask a person
            ],
            # a drop-in for LangChain's HumanInTheLoopMiddleware
            middleware=[
                HandrailMiddleware(
                    hr,
                    {
                        "send_email": {"allowed_decisions": ["approve", "reject"]},
                        "delete_account": True,
                    },
                    timeout=60,
                )
            ],
        )
        result = agent.invoke({"messages": [{"role": "user", "content": "Ada wants a refund."}]})
    for message in result["messages"]:
        if isinstance(message, ToolMessage):
            print(f"[{message.name}, {message.status}] {message.content}")
        elif message.content:
            print(f"[{message.type}] {message.content}")


if __name__ == "__main__":
    main()
