"""A LangGraph support agent whose risky steps pause until a human decides in Handrail, and a
resumer that carries the graph on when they do.

    uv run python examples/langgraph_refunds.py

The graph: the agent (a model) calls tools through a ``ReviewedToolNode`` that gates
``refund`` and ``delete_account`` (``lookup_order`` runs freely); when it is done, a
``review_node`` asks a human whether to send the customer a goodwill voucher. Each review
pauses the graph (its state is in a SQLite checkpoint file, so the process could stop
here and another carry on); a ``HandrailResumer`` follows Handrail's events and resumes
the thread as each decision lands.

It runs offline: a scripted chat model stands in for the LLM, and Handrail's sandbox plays
the reviewers (they look up nothing, cap refunds at 100 EUR, never delete accounts, and
approve vouchers). With ``HANDRAIL_URL`` and ``HANDRAIL_API_KEY`` set (a sandbox key,
``hr_test_...``) it uses a Handrail server instead, whose sandbox reviewers approve
everything.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from handrail import Decision, Handrail, SandboxReviewer, Task
from handrail_langgraph import HandrailResumer, Resumption, ReviewedToolNode, review_node


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return f"{order_id}: 2 items, 240 EUR, delivered damaged"


@tool
def refund(order_id: str, amount: int) -> str:
    """Refund an order, in whole euros."""
    return f"refunded {amount} EUR on {order_id}"


@tool
def delete_account(customer: str) -> str:
    """Delete a customer's account for good."""
    return f"deleted {customer}"


def simulated_reviewer(task: Task) -> Decision | None:
    """Stands in for people working through the Handrail queue."""
    action = task.action
    if action is None:
        return None
    if action.name == "delete_account":
        return Decision.reject("We never delete accounts on request by chat.")
    if action.name == "refund" and action.args["amount"] > 100:
        return Decision.modify({**action.args, "amount": 100}, "refunds above 100 need a manager")
    return Decision.approve()


class ScriptedModel(GenericFakeChatModel):
    """Plays back the turns below; a real model decides them from the conversation."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


TURNS = [
    AIMessage("", tool_calls=[call("lookup_order", "l1", order_id="A-1042")]),
    AIMessage(
        "",
        tool_calls=[
            call("refund", "r1", order_id="A-1042", amount=240),
            call("delete_account", "d1", customer="ada"),
        ],
    ),
    AIMessage("Refunded 100 EUR; Ada's account stays."),
]


class State(MessagesState, total=False):
    voucher: dict[str, Any]
    vouchers: list[str]


def build(hr: Handrail, saver: SqliteSaver) -> Any:
    model = ScriptedModel(messages=iter(TURNS))

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def after_agent(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "propose_voucher"

    def propose_voucher(state: State) -> dict[str, Any]:
        return {"voucher": {"name": "issue_voucher", "args": {"customer": "ada", "amount": 20}}}

    def issue_voucher(state: State) -> dict[str, Any]:
        args = state["voucher"]["args"]
        return {"vouchers": [f"issued a {args['amount']} EUR voucher to {args['customer']}"]}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node(
        "tools",
        ReviewedToolNode(
            [lookup_order, refund, delete_account],
            client=hr,
            gated=["refund", "delete_account"],  # one Handrail review per call
        ),
    )
    builder.add_node("propose_voucher", propose_voucher)
    builder.add_node(
        "review_voucher",
        review_node(hr, action="voucher", on_approve="issue_voucher", on_reject=END),
    )
    builder.add_node("issue_voucher", issue_voucher)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", after_agent, ["tools", "propose_voucher"])
    builder.add_edge("tools", "agent")
    builder.add_edge("propose_voucher", "review_voucher")
    builder.add_edge("issue_voucher", END)
    return builder.compile(checkpointer=saver)


def client() -> Handrail:
    if os.environ.get("HANDRAIL_URL") and os.environ.get("HANDRAIL_API_KEY"):
        return Handrail.from_env()
    # the sandbox reviewers take a moment, so the graph visibly pauses first
    return Handrail.local(sandbox=SandboxReviewer(decide=simulated_reviewer, delay=0.2))


def main() -> None:
    config = {"configurable": {"thread_id": "ticket-1042"}}
    with (
        tempfile.TemporaryDirectory() as workdir,
        client() as hr,
        sqlite3.connect(Path(workdir) / "checkpoints.db", check_same_thread=False) as conn,
    ):
        graph = build(hr, SqliteSaver(conn))
        first = graph.invoke(
            {"messages": [{"role": "user", "content": "Order A-1042 arrived broken."}]},
            config,
            version="v2",
        )
        for pending in first.interrupts:  # what an inbox shows for each review
            print(f"paused for a review: {pending.value['name']} {pending.value['args']}")

        finished = threading.Event()

        def on_resumption(outcome: Resumption) -> None:
            if outcome.status == "resumed":
                print(f"resumed: {len(outcome.tasks)} decision(s) in")
            if not graph.get_state(config).next:
                finished.set()

        resumer = HandrailResumer(graph, hr, on_resumption=on_resumption)
        follower = threading.Thread(target=resumer.run, daemon=True)
        follower.start()  # in a real deployment: its own process, or the webhook router
        if not finished.wait(60):
            raise SystemExit("the reviews did not come back in time")
        resumer.stop()
        follower.join(10)
        values = graph.get_state(config).values
    for message in values["messages"]:
        if isinstance(message, ToolMessage):
            print(f"[{message.name}, {message.status}] {message.content}")
        elif message.content:
            print(f"[{message.type}] {message.content}")
    for line in values.get("vouchers", []):
        print(f"[voucher] {line}")


if __name__ == "__main__":
    main()
