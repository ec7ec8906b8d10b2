"""What gating a LangChain tool on Handrail costs per call, with no human in the way.

An in-process engine (memory store) whose sandbox reviewer approves every review at once
stands in for the human, so what is measured is the adapter and the review round trip:

- bare tool call: ``tool.invoke(ToolCall)`` on the plain ``@tool`` (the anchor);
- gated tool call: the same call on ``require_approval(tool)``: a review task created,
  the sandbox reviewer woken and deciding, the waiter woken, then the tool run;
- ``hr.review`` alone: the round trip any gate pays (create, decide, wake);
- the adapter's own share: gated − (review + bare), per call;
- the same, async (``ainvoke``, ``areview``);
- an agent turn (``create_agent``, scripted model: one tool call, then an answer) with
  ``HandrailMiddleware`` gating the call, anchored to the same turn without it.

Means over many calls, each ratio against a figure from the same run.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool

from _common import Row, ratio, row, table
from handrail import Handrail
from handrail_langchain import HandrailMiddleware, require_approval

BENCH = "langchain"
ARGS = {"to": "a@example.com", "body": "hi"}


@tool
def send_email(to: str, body: str) -> str:
    """Send an email."""
    return f"sent to {to}"


class _Model(GenericFakeChatModel):
    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self


def _turns() -> Iterator[AIMessage]:
    """Endless turns: a tool call (a new id each time), then an answer."""
    for n in itertools.count():
        yield AIMessage(
            "",
            tool_calls=[{"name": "send_email", "args": ARGS, "id": f"t{n}", "type": "tool_call"}],
        )
        yield AIMessage("done")


_ids = itertools.count()


def _call() -> dict[str, Any]:
    return {"name": "send_email", "args": ARGS, "id": f"c{next(_ids)}", "type": "tool_call"}


def _means_us(fns: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    """Mean µs per call of each function, called in turn (round robin), so a machine that
    gets busier or quieter during the run shifts them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(n + max(5, n // 20)):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            if i >= max(5, n // 20):  # after the warm-up
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.fmean(s) * 1e6 for name, s in samples.items()}


async def _ameans_us(fns: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(n + max(5, n // 20)):
        for name, fn in fns.items():
            started = time.perf_counter()
            await fn()
            if i >= max(5, n // 20):
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.fmean(s) * 1e6 for name, s in samples.items()}


def _sync_figures(hr: Handrail, gated: BaseTool, n: int) -> dict[str, float]:
    agent_bare = create_agent(_Model(messages=_turns()), [send_email])
    middleware = HandrailMiddleware(hr, {"send_email": True}, timeout=30)
    agent_gated = create_agent(_Model(messages=_turns()), [send_email], middleware=[middleware])
    ask = {"messages": [{"role": "user", "content": "email a"}]}
    calls = _means_us(
        {
            "bare": lambda: send_email.invoke(_call()),
            "gated": lambda: gated.invoke(_call()),
            "review": lambda: hr.review("send_email", ARGS, timeout=30),
        },
        n,
    )
    turns = _means_us(
        {"turn": lambda: agent_bare.invoke(ask), "gated turn": lambda: agent_gated.invoke(ask)},
        max(20, n // 10),
    )
    return calls | turns


async def _async_figures(hr: Handrail, gated: BaseTool, n: int) -> dict[str, float]:
    return await _ameans_us(
        {
            "bare": lambda: send_email.ainvoke(_call()),
            "gated": lambda: gated.ainvoke(_call()),
            "review": lambda: hr.areview("send_email", ARGS, timeout=30),
        },
        n,
    )


def _rows(label: str, f: dict[str, float]) -> list[Row]:
    own = f["gated"] - f["review"] - f["bare"]
    return [
        row(BENCH, f"bare tool call ({label})", f["bare"], "µs"),
        row(
            BENCH,
            f"gated tool call, sandbox approves ({label})",
            f["gated"],
            "µs",
            anchor=f"bare tool call ({label})",
            ratio=ratio(f["gated"], f["bare"]),
        ),
        row(
            BENCH,
            f"hr.review round trip alone ({label})",
            f["review"],
            "µs",
            anchor=f"bare tool call ({label})",
            ratio=ratio(f["review"], f["bare"]),
        ),
        row(
            BENCH,
            f"adapter's own share: gated − review − bare ({label})",
            own,
            "µs",
            anchor=f"gated tool call ({label})",
            ratio=ratio(own, f["gated"]),
        ),
    ]


async def run(quick: bool) -> list[Row]:
    n = 200 if quick else 2_000
    with Handrail.local(sandbox=True) as hr:
        gated = require_approval(send_email, client=hr, timeout=30)
        sync = await asyncio.to_thread(_sync_figures, hr, gated, n)
        async_ = await _async_figures(hr, gated, n)
    rows = _rows("sync", sync) + _rows("async", async_)
    rows += [
        row(BENCH, "agent turn, one tool call", sync["turn"], "µs"),
        row(
            BENCH,
            "agent turn, the call gated by HandrailMiddleware",
            sync["gated turn"],
            "µs",
            anchor="agent turn, one tool call",
            ratio=ratio(sync["gated turn"], sync["turn"]),
        ),
    ]
    return rows


if __name__ == "__main__":
    import sys

    print(table(asyncio.run(run("--quick" in sys.argv))))
