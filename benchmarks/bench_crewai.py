"""What gating a CrewAI tool costs: a gated call against the bare tool call.

An auto-approving sandbox reviewer (``Handrail.local(sandbox=True)``) decides every review,
so the figures are the adapter's and the engine's work (create the review task, the
reviewer's decision, the wake-up, carry out the decision), not a person's thinking time.
Each figure is the median over many calls, each timed alone:

- the bare tool: ``tool.run(...)`` on a ``@tool`` function (CrewAI validates the arguments
  and runs it), the anchor of the next rows;
- the same tool under ``require_approval``, with ``run`` (blocking) and ``arun`` (async),
  on an in-memory engine and on a SQLite file;
- ``hr.review(...)`` alone with the same action: what any approval costs; the gated call
  over it is the adapter's own share;
- a whole one-step crew (a scripted model asks for the tool once, then answers), with the
  bare tool and with the gated one: the cost as a CrewAI user sees it.

CrewAI's telemetry is switched off for the run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import Row, ratio, row, table

BENCH = "crewai"
ARGS = {"to": "alice@example.com", "body": "your refund"}


def _medians_us(calls: dict[str, Callable[[], Any]], n: int, warmup: int) -> dict[str, float]:
    """Median time of each call, taking turns (so drift in the machine or the store hits
    every figure alike)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(s) * 1e6 for name, s in samples.items()}


async def _amedian_us(call: Callable[[], Awaitable[Any]], n: int, warmup: int) -> float:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _measure(quick: bool) -> list[Row]:
    for name in ("CREWAI_DISABLE_TELEMETRY", "OTEL_SDK_DISABLED"):
        os.environ.setdefault(name, "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from crewai.llms.base_llm import BaseLLM
        from crewai.tools import tool

        from crewai import Agent, Crew, Task

    from handrail import Handrail
    from handrail_crewai import require_approval

    n, warmup, crews = (100, 10, 10) if quick else (500, 50, 50)
    sent: list[dict[str, str]] = []

    @tool("send_email")
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        sent.append({"to": to, "body": body})
        return f"email sent to {to}"

    class Scripted(BaseLLM):
        turn: int = 0

        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            self.turn += 1
            if self.turn % 2:
                return (
                    "Thought: send it\nAction: send_email\n"
                    'Action Input: {"to": "alice@example.com", "body": "your refund"}'
                )
            return "Thought: I now know the final answer\nFinal Answer: sent"

    def crew_call(tool_: Any) -> Callable[[], Any]:
        def kickoff() -> Any:
            agent = Agent(
                role="mailer",
                goal="mail",
                backstory="b",
                llm=Scripted(model="scripted"),
                tools=[tool_],
                verbose=False,
            )
            task = Task(description="email alice", expected_output="status", agent=agent)
            return Crew(agents=[agent], tasks=[task], verbose=False).kickoff()

        return kickoff

    bare = _medians_us({"bare": lambda: send_email.run(**ARGS)}, n, warmup)["bare"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="handrail-bench-crewai-") as tmp:
        stores: dict[str, str | Path | None] = {
            "memory": None,
            "SQLite file": Path(tmp) / "bench.db",
        }
        for label, path in stores.items():
            with Handrail.local(path, sandbox=True) as hr:
                gated = require_approval(send_email, client=hr)
                got = _medians_us(
                    {
                        "run": lambda g=gated: g.run(**ARGS),
                        "review": lambda h=hr: h.review("send_email", ARGS),
                    },
                    n,
                    warmup,
                )
                figures[f"run {label}"], figures[f"review {label}"] = got["run"], got["review"]
                if label == "memory":
                    figures["arun memory"] = asyncio.run(
                        _amedian_us(lambda g=gated: g.arun(**ARGS), n, warmup)
                    )
                    crew = _medians_us(
                        {"bare": crew_call(send_email), "gated": crew_call(gated)}, crews, 3
                    )
                    figures["crew bare"], figures["crew gated"] = crew["bare"], crew["gated"]
    assert all(m == ARGS for m in sent), "every call ran with the proposed arguments"

    def us(figure: str, value: float, anchor: str = "", base: float | None = None) -> Row:
        return row(BENCH, figure, value, "µs", anchor=anchor, ratio=ratio(value, base))

    rows = [us("CrewAI: bare tool call (tool.run)", bare)]
    for label in stores:
        rows.append(
            us(
                f"CrewAI: gated call, sandbox approves, run ({label})",
                figures[f"run {label}"],
                "bare tool call",
                bare,
            )
        )
    rows.append(
        us(
            "CrewAI: gated call, sandbox approves, arun (memory)",
            figures["arun memory"],
            "bare tool call",
            bare,
        )
    )
    for label in stores:
        rows.append(
            us(
                f"CrewAI: gated call over hr.review alone ({label})",
                figures[f"run {label}"],
                f"hr.review {figures[f'review {label}']:,.0f} µs",
                figures[f"review {label}"],
            )
        )
    rows.append(us("CrewAI: one-step crew kickoff, bare tool", figures["crew bare"]))
    rows.append(
        us(
            "CrewAI: one-step crew kickoff, gated tool (memory)",
            figures["crew gated"],
            "kickoff with the bare tool",
            figures["crew bare"],
        )
    )
    return rows


async def run(quick: bool) -> list[Row]:
    return await asyncio.to_thread(_measure, quick)


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
