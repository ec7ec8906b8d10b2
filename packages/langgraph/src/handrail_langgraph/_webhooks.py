"""Handrail webhooks into resumes: a FastAPI router whose one route checks the Standard
Webhooks signature, then resumes the thread paused on the task the event is about.

It answers 2xx once the resume is done (or there was nothing to do), so a delivery that
fails or times out is retried by Handrail; retries and duplicates are harmless (a resume
happens only while the thread still waits on the task). A bad signature is a 401 and
changes nothing. The event's body is only trusted for the task id: the task is read
again through the resumer's client.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook, WebhookVerificationError

if TYPE_CHECKING:
    from ._resumer import HandrailResumer

__all__ = ["TERMINAL_EVENTS", "webhook_router"]

log = logging.getLogger("handrail_langgraph")

TERMINAL_EVENTS: Final = frozenset(
    {"task.verified", "task.expired", "task.cancelled", "task.failed"}
)
"""The webhook events after which a paused thread can go on."""
PROBLEM: Final = "application/problem+json"


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def webhook_router(resumer: HandrailResumer, secret: str, path: str) -> APIRouter:
    verifier = Webhook(secret)
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def handrail_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verifier.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            return _problem(401, "invalid_signature", f"the webhook is not Handrail's: {exc}")
        try:
            event: Any = json.loads(body)
        except ValueError:
            return _problem(400, "invalid_body", "the webhook body is not JSON")
        kind = event.get("type") if isinstance(event, dict) else None
        data = event.get("data") if isinstance(event, dict) else None
        task_id = data.get("id") if isinstance(data, dict) else None
        if kind not in TERMINAL_EVENTS or not isinstance(task_id, str):
            return JSONResponse({"status": "ignored", "type": kind})
        try:
            outcome = await resumer.adeliver(task_id)
        except Exception as exc:  # Handrail retries the delivery later
            log.exception("resuming for task %s (webhook) failed", task_id)
            return _problem(503, "resume_failed", f"could not resume for task {task_id}: {exc}")
        return JSONResponse(
            {
                "status": outcome.status,
                "task_id": task_id,
                "thread_id": outcome.thread_id,
                "interrupts": list(outcome.interrupts),
            }
        )

    return router
