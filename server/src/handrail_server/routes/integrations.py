"""Deciding outside the API: the pages behind an email's Approve / Reject links, and
Slack's interactions (button clicks).

A link's GET only shows what would be decided (mail scanners fetch links); the form on
that page POSTs the decision, which the engine makes with the link's decision token. A
Slack click is checked against the channel's signing secret, its Slack user mapped to a
reviewer, and decided by the engine as that reviewer: the policy refuses anyone it does
not allow, as it would over the API.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from handrail import (
    Decision,
    DecisionType,
    HandrailError,
    InvalidTransition,
    NotEligible,
    NotFound,
    Status,
    Task,
    TokenRejected,
)

from ..deps import ChannelsDep, ContactsDep, HubDep
from ..hub import Hub
from ..notifications import (
    APPROVE,
    REJECT,
    Notification,
    SignatureRefused,
    decider,
    decision_url,
    read_link,
    render,
    slack_escape,
    slack_update,
    slack_verify,
)
from ..problems import problem
from ..webhooks import check_target

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
TaskPath = Annotated[str, Path(min_length=1, max_length=64)]
Token = Annotated[str, Query(min_length=1, max_length=4096)]
_WAITING = {Status.POSTED, Status.ASSIGNED}
_REFUSED = {
    "invalid": "This link is not valid.",
    "expired": "This link has expired. Nothing was decided.",
    "used": "This link was used already. Nothing more was decided.",
    "wrong_task": "This link is for another task. Nothing was decided.",
    "wrong_decision": "This link cannot make that decision. Nothing was decided.",
    "unavailable": "Decision links are not available on this server.",
    "revoked": "The reviewer this link is for may no longer decide. Nothing was decided.",
}


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context), status_code=status, headers=PAGE_HEADERS)


def _message(title: str, message: str, status: int) -> HTMLResponse:
    return _page("message.html", status, title=title, message=message)


def _outcome(task: Task) -> str:
    decision = task.decision
    if task.status is Status.VERIFIED and decision is not None:
        verb = "approved" if decision.is_approval else "rejected"
        return f"It was {verb} by {decision.reviewer_id}."
    return f"It is {task.status.value.replace('_', ' ')} now."


def _refusal(exc: HandrailError) -> HTMLResponse:
    if isinstance(exc, TokenRejected):
        status = 410 if exc.reason == "expired" else 409 if exc.reason == "used" else 403
        return _message("Nothing was decided", _REFUSED.get(exc.reason, str(exc)), status)
    if isinstance(exc, NotEligible):
        return _message("Nothing was decided", f"You may not decide this review: {exc}", 403)
    if isinstance(exc, InvalidTransition):
        return _message("Nothing was decided", f"This review no longer waits: {exc}", 409)
    if isinstance(exc, NotFound):
        return _message("Nothing was decided", "This task does not exist.", 404)
    return _message("Nothing was decided", str(exc), 422)


async def _read_link(hub: Hub, task_id: str, token: str) -> tuple[Task, str]:
    return await read_link(hub.store, hub.engine.tokens, hub.clock.now(), task_id, token)


def _args_text(task: Task) -> str | None:
    return Notification(event="task.new", task=task, task_url="").args_text


@router.get("/decide/{task_id}", response_class=HTMLResponse)
async def confirm_page(
    task_id: TaskPath, hub: HubDep, token: Token, choice: DecisionType = DecisionType.APPROVE
) -> HTMLResponse:
    """What the link would decide, and a button to decide it. Changes nothing."""
    if choice not in (DecisionType.APPROVE, DecisionType.REJECT):
        return _message("Nothing was decided", "A link can approve or reject.", 422)
    try:
        task, reviewer = await _read_link(hub, task_id, token)
    except HandrailError as exc:
        return _refusal(exc)
    if task.status not in _WAITING:
        return _message("Already decided", "This review no longer waits. " + _outcome(task), 409)
    other = DecisionType.REJECT if choice is DecisionType.APPROVE else DecisionType.APPROVE
    shown = task.for_worker()
    return _page(
        "confirm.html",
        title=f"{choice.value.capitalize()} this action?",
        task=shown,
        args_text=_args_text(shown),
        reviewer=reviewer,
        token=token,
        choice=choice.value,
        reason="",
        error=None,
        other_url=decision_url("", task_id, token, other.value),
    )


@router.post("/decide/{task_id}", response_class=HTMLResponse)
async def decide_page(
    task_id: TaskPath,
    hub: HubDep,
    token: Annotated[str, Form(min_length=1, max_length=4096)],
    choice: Annotated[DecisionType, Form()],
    reason: Annotated[str, Form(max_length=10_000)] = "",
) -> HTMLResponse:
    """Decide with the link's token (once)."""
    if choice not in (DecisionType.APPROVE, DecisionType.REJECT):
        return _message("Nothing was decided", "A link can approve or reject.", 422)
    text = reason.strip() or None
    try:  # the checks that need no write, the reviewer's live key among them
        task, reviewer = await _read_link(hub, task_id, token)
    except HandrailError as exc:
        return _refusal(exc)
    if choice is DecisionType.REJECT and text is None:
        shown = task.for_worker()
        return _page(
            "confirm.html",
            422,
            title="Reject this action?",
            task=shown,
            args_text=_args_text(shown),
            reviewer=reviewer,
            token=token,
            choice=choice.value,
            reason="",
            error="Say why you reject it: the agent is told.",
            other_url=decision_url("", task_id, token, DecisionType.APPROVE.value),
        )
    try:
        task = await hub.engine.redeem_decision_token(
            token, Decision(type=choice, message=text), task_id=task_id
        )
    except (HandrailError, ValueError) as exc:
        if isinstance(exc, HandrailError):
            return _refusal(exc)
        return _message("Nothing was decided", str(exc), 422)
    done = "Approved" if choice is DecisionType.APPROVE else "Rejected"
    detail = "Thank you: your decision is recorded."
    if task.status is not Status.VERIFIED:
        detail += f" The review is {task.status.value.replace('_', ' ')} (others decide too)."
    return _message(done, detail, 200)


# ---------------------------------------------------------------- Slack


async def _tell_slack(hub: Hub, url: str, body: dict[str, Any]) -> None:
    """Post a message update to an interaction's ``response_url`` (best effort)."""
    try:
        await check_target(url, allow_private=hub.settings.allow_private_webhooks)
        await hub.notifications.post_json(url, body)
    except Exception as exc:  # UnsafeTarget, HTTP trouble: the decision stands either way
        log.warning("could not update the Slack message: %s", exc)


def _slack_answer(
    hub: Hub, tasks: BackgroundTasks, payload: dict[str, Any], text: str, *, replace: bool
) -> JSONResponse:
    body = slack_update(text, replace=replace)
    url = payload.get("response_url")
    if isinstance(url, str) and url:
        tasks.add_task(_tell_slack, hub, url, body)
    return JSONResponse(body)


def _refused(request: Request, status: int, detail: str) -> JSONResponse:
    code = "unauthenticated" if status == 401 else "bad_request"
    return problem(request, status, code, detail)


@router.post("/integrations/slack/{channel_id}/interactions")
async def slack_interactions(
    channel_id: Annotated[str, Path(min_length=1, max_length=36)],
    request: Request,
    hub: HubDep,
    channels: ChannelsDep,
    contacts: ContactsDep,
    tasks: BackgroundTasks,
) -> JSONResponse:
    """A click on a Slack message's Approve / Reject button (Slack's Interactivity
    Request URL for this channel)."""
    body = await request.body()
    channel = await channels.slack(channel_id)
    if channel is None or not channel.enabled or channel.signing_secret is None:
        return _refused(request, 401, "no Slack app is set up for this channel")
    try:
        slack_verify(
            channel.signing_secret,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
            body,
            hub.clock.now(),
        )
    except SignatureRefused as exc:
        return _refused(request, 401, str(exc))
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user = str(payload["user"]["id"])
        action = payload["actions"][0]
        action_id, task_id = str(action["action_id"]), str(action["value"])
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError):
        return _refused(request, 400, "not a Slack block_actions payload")
    org = channel.org_id
    if action_id not in (APPROVE, REJECT):
        return _slack_answer(
            hub, tasks, payload, "Handrail does not know that button.", replace=False
        )
    linked = await contacts.reviewer_of_slack_user(org, user)
    if linked is None:
        log.warning("a Slack user unknown to %s clicked on task %s", org, task_id)
        text = "Nothing was decided: your Slack account is not linked to a Handrail reviewer."
        return _slack_answer(hub, tasks, payload, text, replace=False)
    reviewer = await decider(hub.store, org, linked)
    if reviewer is None:
        log.warning("%s of %s has no live reviewer key (task %s)", linked, org, task_id)
        text = "Nothing was decided: your Handrail reviewer has no live reviewer key."
        return _slack_answer(hub, tasks, payload, text, replace=False)
    if action_id == APPROVE:
        decision = Decision(type=DecisionType.APPROVE)
    else:
        decision = Decision(type=DecisionType.REJECT, message=f"rejected in Slack by {reviewer.id}")
    try:
        task = await hub.engine.decide(reviewer, task_id[:64], decision)
    except HandrailError as exc:
        why = f"you may not decide it ({exc})" if isinstance(exc, NotEligible) else str(exc)
        text = f"Nothing was decided: {slack_escape(why)}"
        return _slack_answer(hub, tasks, payload, text, replace=False)
    verb = "Approved" if action_id == APPROVE else "Rejected"
    if not task.terminal:  # a quorum: the buttons stay for the others
        text = f"Your {verb.lower()} vote is recorded; the review needs more."
        return _slack_answer(hub, tasks, payload, text, replace=False)
    final = task.decision
    by = final.reviewer_id if final is not None else reviewer.id
    outcome = "Approved" if final is not None and final.is_approval else "Rejected"
    text = f"{outcome} by {slack_escape(str(by))} (<@{user}> clicked): {slack_escape(task.title)}"
    return _slack_answer(hub, tasks, payload, text, replace=True)
