"""Handrail for agents over MCP: ``handrail mcp`` (stdio, or streamable HTTP).

The tools talk to a Handrail server through the HTTP client, ``Handrail(url, api_key)``,
with the agent's key. They cover HumanRail's and HumanOps' MCP tools where those make sense
here: ``request_review`` and ``ask_human`` block until a person answers; ``create_task``,
``post_task``, ``get_task``, ``wait_for_task``, ``cancel_task``, ``list_tasks``,
``get_task_history``, ``check_verification_status``, ``approve_estimate``,
``reject_estimate``, ``get_balance``, ``fund_account`` and ``health_check`` do the rest.

Elicitation (opt-in, for one person running both the agent and the review): with a
reviewer's key and ``elicit``, ``request_review`` also asks the MCP client's own user,
when the client supports elicitation. Their answer is posted as that reviewer's decision,
so it is recorded, audited and checked by the server like any other; a review nobody
answers in time is withdrawn and comes back rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import httpx
import typer
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ClientCapabilities, ElicitationCapability, ToolAnnotations
from pydantic import BaseModel, Field

from handrail import (
    Decision,
    Handrail,
    HandrailError,
    InvalidTransition,
    Kind,
    Status,
    Task,
    WaitTimeout,
)
from handrail import Money as _Money
from handrail.client import decision_of

from .proofs import proof_schema

__all__ = ["TOOLS", "ReviewForm", "app", "build_server"]

INSTRUCTIONS = (
    "Handrail routes what an agent must not do alone to a person and returns a verified "
    "decision. Before an action that moves money, deletes data or speaks for someone, call "
    "request_review and act only if it comes back approved (with the arguments it returns). "
    "For a question only a person can answer, call ask_human (or create_task, then "
    "wait_for_task). Real-world work with proof goes through post_task."
)
TaskJson = dict[str, Any]


def _shown(task: Task) -> TaskJson:
    return task.model_dump(mode="json", exclude={"request_fingerprint", "version"})


class ReviewForm(BaseModel):
    """What the MCP client's user is asked when elicitation is on."""

    decision: str = Field(
        description="approve, reject or modify",
        json_schema_extra={"enum": ["approve", "reject", "modify"]},
    )
    message: str = Field(default="", description="why (needed to reject)")
    args: str = Field(default="", description="for modify: the new arguments, as a JSON object")


def _form_decision(form: ReviewForm) -> Decision:
    message = form.message.strip() or None
    if form.decision == "approve":
        return Decision.approve(message)
    if form.decision == "modify":
        args = json.loads(form.args) if form.args.strip() else None
        if not isinstance(args, dict):
            raise ValueError("a modify decision needs the new arguments as a JSON object")
        return Decision.modify(args, message)
    if form.decision == "reject":
        return Decision.reject(message or "rejected in the MCP client")
    raise ValueError(f"{form.decision!r} is not approve, reject or modify")


@dataclass
class _Tools:
    client: Handrail
    url: str
    reviewer: Handrail | None = None
    elicit: bool = False

    # ------------------------------------------------------------ reviews

    async def _ask_user(self, ctx: Context[Any, Any, Any], task: Task) -> None:
        """Put the review to the client's user; post their answer as the reviewer's."""
        assert self.reviewer is not None and task.action is not None
        question = f"Approve {task.action.name}({json.dumps(task.action.args)})?" + (
            f"\nThe agent says: {task.agent_reasoning}" if task.agent_reasoning else ""
        )
        while True:
            answer = await ctx.elicit(question, ReviewForm)
            if answer.action == "cancel":
                return  # dismissed: other reviewers may still decide
            if answer.action == "decline":
                decision = Decision.reject("declined in the MCP client")
            else:
                try:
                    decision = _form_decision(answer.data)
                except ValueError as exc:
                    question = f"{exc}. Approve {task.action.name}?"
                    continue
            try:
                await self.reviewer.tasks.adecide(task.id, decision)
            except InvalidTransition:
                return  # decided (or withdrawn) meanwhile: the wait tells the agent
            except HandrailError as exc:  # refused, say, by the task's allowed decisions
                question = f"{exc.message}. Approve {task.action.name}?"
                continue
            return

    def _can_elicit(self, ctx: Context[Any, Any, Any]) -> bool:
        if not self.elicit or self.reviewer is None:
            return False
        wanted = ClientCapabilities(elicitation=ElicitationCapability())
        return bool(ctx.session.check_client_capability(wanted))

    async def _finish(self, task: Task, timeout: float) -> Task | None:
        """The task once it ends, or None after withdrawing it at ``timeout``."""
        try:
            return await self.client.tasks.await_(task.id, timeout)
        except WaitTimeout:
            pass
        try:
            await self.client.tasks.acancel(task.id, "the agent stopped waiting")
        except InvalidTransition:
            return await self.client.tasks.aget(task.id)  # decided meanwhile: that counts
        return None

    async def request_review(
        self,
        action: Annotated[str, Field(description="the tool or action, e.g. 'send_payment'")],
        ctx: Context[Any, Any, Any],
        args: Annotated[
            dict[str, Any] | None, Field(description="its arguments, as it would be called")
        ] = None,
        reasoning: Annotated[str | None, Field(description="why the agent wants it")] = None,
        confidence: Annotated[float | None, Field(ge=0, le=1)] = None,
        risk_tier: Literal["low", "medium", "high", "critical"] = "medium",
        title: str | None = None,
        context: Annotated[
            dict[str, Any] | None, Field(description="anything else the reviewer should see")
        ] = None,
        allowed_decisions: list[Literal["approve", "reject", "modify", "respond"]] | None = None,
        timeout_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300,
        idempotency_key: Annotated[str | None, Field(max_length=256)] = None,
    ) -> dict[str, Any]:
        """Ask a person to approve an action and wait for the decision. Run the action only
        when ``approved`` is true, with the returned ``args`` (a reviewer may have changed
        them). If nobody decides within ``timeout_seconds``, the review is withdrawn and
        comes back rejected."""
        spec: dict[str, Any] = {
            "kind": Kind.REVIEW,
            "action": {"name": action, "args": args or {}},
            "agent_reasoning": reasoning,
            "confidence": confidence,
            "risk_tier": risk_tier,
            "title": title,
            "payload": context or {},
            "idempotency_key": idempotency_key,
            "sla_seconds": max(int(timeout_seconds), 1),
        }
        if allowed_decisions:
            spec["allowed_decisions"] = allowed_decisions
        task = await self.client.tasks.acreate(spec)
        asking = None
        if not task.terminal and self._can_elicit(ctx):
            asking = asyncio.create_task(self._ask_user(ctx, task))
        try:
            done = await self._finish(task, timeout_seconds)
        finally:
            if asking is not None:
                asking.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asking
        decision = (
            decision_of(done)
            if done is not None
            else Decision.reject("No human answered in time, so the action was not approved.")
        )
        final_args = decision.args if decision.args is not None else (args or {})
        return {
            "task_id": task.id,
            "status": done.status.value if done is not None else Status.CANCELLED.value,
            "approved": decision.approved,
            "decision": decision.type.value,
            "message": decision.message,
            "args": final_args if decision.approved else None,
            "reviewer_id": decision.reviewer_id,
        }

    async def ask_human(
        self,
        question: str,
        output_schema: Annotated[
            dict[str, Any], Field(description="JSON Schema the answer must fit")
        ],
        context: dict[str, Any] | None = None,
        task_type: str = "judgment",
        risk_tier: Literal["low", "medium", "high", "critical"] = "medium",
        timeout_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300,
    ) -> dict[str, Any]:
        """Put a question to a person and wait for a verified answer that fits
        ``output_schema``. Unanswered in time, the question is withdrawn."""
        spec = {
            "kind": Kind.JUDGMENT,
            "title": question,
            "task_type": task_type,
            "output_schema": output_schema,
            "payload": context or {},
            "risk_tier": risk_tier,
            "sla_seconds": max(int(timeout_seconds), 1),
        }
        task = await self.client.tasks.acreate(spec)
        done = await self._finish(task, timeout_seconds)
        if done is None:
            return {"task_id": task.id, "status": "cancelled", "answered": False, "answer": None}
        answered = done.status is Status.VERIFIED
        return {
            "task_id": task.id,
            "status": done.status.value,
            "answered": answered,
            "answer": done.output if answered else None,
            "failure_reason": done.failure_reason,
        }

    # ------------------------------------------------------------ tasks

    async def create_task(
        self,
        task_type: Annotated[str, Field(description="e.g. 'refund_eligibility'")],
        payload: Annotated[dict[str, Any], Field(description="what the person needs to see")],
        output_schema: Annotated[dict[str, Any], Field(description="JSON Schema of the answer")],
        idempotency_key: Annotated[
            str | None, Field(max_length=256, description="the same key again: the same task")
        ] = None,
        risk_tier: Literal["low", "medium", "high", "critical"] = "medium",
        sla_seconds: Annotated[int, Field(ge=30, le=2_592_000)] = 600,
        payout_amount: Annotated[
            str | None, Field(description="the reward as a decimal string, e.g. '0.50'")
        ] = None,
        payout_currency: Literal["USD", "SATS"] = "USD",
        callback_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> TaskJson:
        """Post a judgment task (without waiting): a person answers with JSON that fits
        ``output_schema``. Then ``wait_for_task``."""
        payout = _Money.parse(payout_amount, payout_currency) if payout_amount else None
        spec = {
            "kind": Kind.JUDGMENT,
            "task_type": task_type,
            "title": title,
            "payload": payload,
            "output_schema": output_schema,
            "idempotency_key": idempotency_key,
            "risk_tier": risk_tier,
            "sla_seconds": sla_seconds,
            "payout": payout if payout is not None and payout.minor else None,
            "callback_url": callback_url,
            "metadata": metadata or {},
        }
        return _shown(await self.client.tasks.acreate(spec))

    async def post_task(
        self,
        title: str,
        description: str,
        reward_usd: Annotated[str, Field(description="a decimal string, e.g. '25.00'")],
        proof_requirements: list[str],
        task_type: Annotated[str, Field(description="e.g. VERIFICATION, PHOTO, DELIVERY")],
        sla_seconds: Annotated[int, Field(ge=60, le=2_592_000)] = 86_400,
        location: dict[str, Any] | None = None,
        proof_type: Literal["PHOTO", "SCREENSHOT", "CONFIRMATION"] = "PHOTO",
        require_estimate: Annotated[
            bool, Field(description="an operator offers a time estimate for you to approve")
        ] = True,
        idempotency_key: Annotated[str | None, Field(max_length=256)] = None,
    ) -> TaskJson:
        """Commission real-world work with proof (HumanOps' post_task): the reward is held
        from your balance, an operator offers an estimate (approve_estimate), does it and
        submits proof, and verification checks it before anyone is paid."""
        spec = {
            "kind": Kind.JUDGMENT,
            "task_type": task_type,
            "title": title,
            "instructions": description,
            "payload": {
                "location": location,
                "proof_requirements": proof_requirements,
                "proof_type": proof_type,
            },
            "output_schema": proof_schema(proof_type),
            "payout": _Money.parse(reward_usd, "USD"),
            "require_estimate": require_estimate,
            "sla_seconds": sla_seconds,
            "idempotency_key": idempotency_key,
        }
        return _shown(await self.client.tasks.acreate(spec))

    async def get_task(self, task_id: str) -> TaskJson:
        """A task as it stands: ``status``, and ``output`` once verified."""
        return _shown(await self.client.tasks.aget(task_id))

    async def wait_for_task(
        self, task_id: str, timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60
    ) -> dict[str, Any]:
        """Wait (woken the moment it changes) until the task is verified, failed, expired
        or cancelled, or ``timeout_seconds`` pass; ``done`` says which."""
        try:
            task = await self.client.tasks.await_(task_id, timeout_seconds)
        except WaitTimeout:
            task = await self.client.tasks.aget(task_id)
        return {"done": task.terminal, "task": _shown(task)}

    async def cancel_task(self, task_id: str, reason: str | None = None) -> TaskJson:
        """Withdraw a task nobody has answered; any money held for it comes back."""
        return _shown(await self.client.tasks.acancel(task_id, reason))

    async def list_tasks(
        self,
        status: Annotated[
            str | None,
            Field(description="posted, estimate_pending, assigned, submitted, verified..."),
        ] = None,
        task_type: str | None = None,
        kind: Literal["review", "judgment"] | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        after: Annotated[str | None, Field(description="next_cursor of the last page")] = None,
        newest_first: bool = True,
    ) -> dict[str, Any]:
        """Your organisation's tasks, a page at a time."""
        page = await self.client.tasks.alist(
            status=status,
            task_type=task_type,
            kind=kind,
            limit=limit,
            after=after,
            newest_first=newest_first,
        )
        return {"data": [_shown(t) for t in page.items], "next_cursor": page.next_cursor}

    async def get_task_history(self, task_id: str) -> dict[str, Any]:
        """Who did what to the task, when, and why: its audit trail."""
        events = await self.client.tasks.ahistory(task_id)
        return {"data": [e.model_dump(mode="json") for e in events]}

    async def check_verification_status(self, task_id: str) -> dict[str, Any]:
        """How verification judged the task's answer: outcome, score, stages, reasons."""
        task = await self.client.tasks.aget(task_id)
        check = task.verification
        return {
            "task_id": task.id,
            "status": task.status.value,
            "verification": check.model_dump(mode="json") if check is not None else None,
            "failure_reason": task.failure_reason,
        }

    async def approve_estimate(self, task_id: str) -> TaskJson:
        """Accept the operator's estimate: they hold the task, at the estimated price."""
        return _shown(await self.client.tasks.aapprove_estimate(task_id))

    async def reject_estimate(self, task_id: str, reason: str | None = None) -> TaskJson:
        """Decline the estimate: the task is open to other operators again."""
        return _shown(await self.client.tasks.areject_estimate(task_id, reason))

    # ------------------------------------------------------------ money and health

    async def get_balance(self, currency: Literal["USD", "SATS"] = "USD") -> dict[str, Any]:
        """What you may spend (``available``) and what is held for open paid tasks."""
        return (await self.client.ledger.abalance(currency)).model_dump(mode="json")

    async def fund_account(
        self,
        amount: Annotated[str, Field(description="a decimal string, e.g. '100.00'")],
        idempotency_key: Annotated[
            str, Field(min_length=1, max_length=200, description="the same key: one deposit")
        ],
        currency: Literal["USD", "SATS"] = "USD",
        reference: Annotated[
            str | None, Field(description="the transfer, for a live key's deposit")
        ] = None,
    ) -> dict[str, Any]:
        """Deposit: sandbox credit with a sandbox key; a live key's deposit names the
        transfer the funding rail confirms."""
        posting = await self.client.ledger.adeposit(
            _Money.parse(amount, currency), key=idempotency_key, reference=reference
        )
        return posting.model_dump(mode="json")

    async def health_check(self) -> dict[str, Any]:
        """Whether the Handrail server answers."""
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            try:
                answer = await http.get(f"{self.url.rstrip('/')}/healthz")
            except httpx.HTTPError as exc:
                return {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}"}
        body = answer.json() if answer.is_success else None
        return {"status": "healthy" if answer.is_success else "unhealthy", "server": body}


def _hints(
    *, reads: bool = False, destroys: bool = False, repeats: bool = False
) -> ToolAnnotations:
    return ToolAnnotations(
        readOnlyHint=reads,
        destructiveHint=destroys,
        idempotentHint=reads or repeats,
        openWorldHint=True,
    )


TOOLS: Mapping[str, ToolAnnotations] = {
    "request_review": _hints(),
    "ask_human": _hints(),
    "create_task": _hints(repeats=True),
    "post_task": _hints(repeats=True),
    "get_task": _hints(reads=True),
    "wait_for_task": _hints(reads=True),
    "cancel_task": _hints(destroys=True, repeats=True),
    "list_tasks": _hints(reads=True),
    "get_task_history": _hints(reads=True),
    "check_verification_status": _hints(reads=True),
    "approve_estimate": _hints(),
    "reject_estimate": _hints(),
    "get_balance": _hints(reads=True),
    "fund_account": _hints(repeats=True),
    "health_check": _hints(reads=True),
}


def build_server(
    client: Handrail,
    url: str,
    *,
    reviewer: Handrail | None = None,
    elicit: bool = False,
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/mcp",
) -> FastMCP[Any]:
    """The MCP server over ``client`` (the agent's key). ``reviewer`` (a reviewer's key)
    and ``elicit`` let ``request_review`` ask the MCP client's user."""
    if elicit and reviewer is None:
        raise ValueError("elicitation records the user's answer as a reviewer: give a reviewer key")
    server: FastMCP[Any] = FastMCP(
        "handrail", instructions=INSTRUCTIONS, host=host, port=port, streamable_http_path=path
    )
    tools = _Tools(client, url, reviewer, elicit)
    for name, hints in TOOLS.items():
        server.add_tool(getattr(tools, name), name=name, annotations=hints)
    return server


# ---------------------------------------------------------------- the command


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _commands() -> None:
    """Handrail over MCP."""


@app.command()
def mcp(
    url: Annotated[
        str,
        typer.Option(envvar="HANDRAIL_URL", help="the Handrail server, e.g. http://127.0.0.1:8000"),
    ],
    api_key: Annotated[str, typer.Option(envvar="HANDRAIL_API_KEY", help="the agent's key")],
    transport: Annotated[
        Transport, typer.Option(help="stdio (the MCP client starts it) or http (streamable HTTP)")
    ] = Transport.STDIO,
    host: Annotated[str, typer.Option(envvar="HANDRAIL_MCP_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HANDRAIL_MCP_PORT")] = 8765,
    path: Annotated[str, typer.Option(help="where streamable HTTP listens")] = "/mcp",
    reviewer_key: Annotated[
        str | None,
        typer.Option(envvar="HANDRAIL_REVIEWER_KEY", help="a reviewer's key, for --elicit"),
    ] = None,
    elicit: Annotated[
        bool,
        typer.Option(help="request_review also asks the MCP client's user (one-person setups)"),
    ] = False,
) -> None:
    """Serve Handrail's tools to agents over MCP, through the Handrail server at --url."""
    if elicit and not reviewer_key:
        raise typer.BadParameter("--elicit needs --reviewer-key (or HANDRAIL_REVIEWER_KEY)")
    client = Handrail(url, api_key)
    reviewer = Handrail(url, reviewer_key) if reviewer_key else None
    try:
        server = build_server(
            client, url, reviewer=reviewer, elicit=elicit, host=host, port=port, path=path
        )
        server.run("stdio" if transport is Transport.STDIO else "streamable-http")
    finally:
        client.close()
        if reviewer is not None:
            reviewer.close()
