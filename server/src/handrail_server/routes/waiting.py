"""Waiting without polling: long-poll, a task's event stream, the organisation's stream.

Each wakes within milliseconds of a change: the engine's waker reaches every process
(LISTEN/NOTIFY on PostgreSQL). Streams send a comment every 15 s to keep proxies open.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from handrail import Principal, Session, WaitTimeout
from handrail.wake import task_channel

from ..deps import HubDep, PrincipalDep, SessionDep
from ..hub import Hub
from ..schemas import TaskId, TaskOut

router = APIRouter(prefix="/v1", tags=["waiting"])
KEEPALIVE = 15.0
SSE = "text/event-stream"
_SEQ = re.compile(r"[0-9]{1,18}")  # an event id we sent: ASCII digits within 64 bits


DEFAULT_WAIT = 30.0
"""Seconds a long-poll waits when it names no ``timeout``."""


@router.get("/tasks/{task_id}/wait", response_model=TaskOut)
async def wait(
    task_id: TaskId,
    hub: HubDep,
    principal: PrincipalDep,
    session: SessionDep,
    timeout: Annotated[
        float, Query(gt=0, le=300, description="seconds (at most 60 are used)")
    ] = DEFAULT_WAIT,
) -> dict[str, Any]:
    """The task as soon as it is terminal (verified, failed, expired, cancelled), or as it
    stands after ``timeout`` seconds: check ``status`` and ask again.

    (Most requests here are answered by ``handrail_server.parked.ParkedWaits`` below the
    routing layer, through the same :func:`wait_reply`; this route answers the rest.)"""
    return await wait_reply(hub, session, task_id, timeout)


async def wait_reply(hub: Hub, session: Session, task_id: str, timeout: float) -> dict[str, Any]:
    """What a long-poll answers: the task once terminal, or as it stands at the timeout."""
    try:
        task = await session.wait(task_id, min(timeout, hub.settings.wait_max_seconds))
    except WaitTimeout:
        task = await session.get(task_id)
    return TaskOut.of(task)


def _frame(event: str, data: Any, id: int | str | None = None) -> str:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _task_stream(hub: Hub, session: Session, task_id: str) -> AsyncIterator[str]:
    async with hub.waker.subscribe([task_channel(task_id)]) as sub:
        version = -1
        while True:
            task = await session.get(task_id)
            if task.version != version:
                version = task.version
                yield _frame("task", TaskOut.of(task), task.version)
            if task.terminal:
                return
            if not await sub.wait(KEEPALIVE):
                yield ": keepalive\n\n"


@router.get("/tasks/{task_id}/events", response_class=StreamingResponse)
async def task_events(task_id: TaskId, hub: HubDep, session: SessionDep) -> StreamingResponse:
    """Server-sent events: the task now, then again at every change; the stream ends when
    the task is terminal."""
    await session.get(task_id)  # 404 before the stream starts
    return StreamingResponse(_task_stream(hub, session, task_id), media_type=SSE, headers=_NO_CACHE)


async def _org_stream(hub: Hub, principal: Principal, after: int) -> AsyncIterator[str]:
    feed = hub.engine.event_feed(principal, after, idle=KEEPALIVE)
    try:
        async for event in feed:
            if event is None:
                yield ": keepalive\n\n"
            else:
                yield _frame(event.event.value, event.model_dump(mode="json"), event.seq)
    finally:
        await feed.aclose()


@router.get("/events", response_class=StreamingResponse)
async def org_events(
    hub: HubDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="resume after this event id")
    ] = None,
) -> StreamingResponse:
    """Server-sent events for every change in the organisation: each task history entry,
    with its sequence number as the event id. Reconnect with ``Last-Event-ID`` (or
    ``after``) to resume without a gap; without either, the stream starts now."""
    start = after
    if last_event_id and _SEQ.fullmatch(last_event_id):
        # the header wins: a reconnecting EventSource sends it with its first URL (which may
        # still say ``after=0``), and it has seen everything up to it
        start = int(last_event_id)
    if start is None:
        start = await hub.store.last_seq()
    return StreamingResponse(_org_stream(hub, principal, start), media_type=SSE, headers=_NO_CACHE)


_NO_CACHE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
