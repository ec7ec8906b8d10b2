"""The outbox: webhook events are rows written in the same transaction as the change that
causes them, so a change and its notification commit (or vanish) together."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select

from handrail import Event, Status, Task
from handrail.ids import new_id
from handrail.store import Transaction
from handrail.store.sql import SqlTransaction

from .._subscribed import Owed, Subscriptions, subscriptions
from ..modes import organisation
from ..tables import webhook_endpoints, webhook_outbox
from ._schemes import STANDARD, Outbound, Scheme

__all__ = ["EVENT_TYPES", "OutboxHook", "new_secret", "queue_event"]

log = logging.getLogger(__name__)

_BY_STATUS = {
    Status.ASSIGNED: "task.assigned",
    Status.SUBMITTED: "task.submitted",
    Status.MANUAL_REVIEW: "task.manual_review",
    Status.VERIFIED: "task.verified",
    Status.FAILED: "task.failed",
    Status.EXPIRED: "task.expired",
    Status.CANCELLED: "task.cancelled",
    Status.DISPUTED: "task.disputed",
}
EVENT_TYPES: tuple[str, ...] = ("task.posted", *_BY_STATUS.values())
_STANDARD_ONLY: Mapping[str, Scheme] = {STANDARD.name: STANDARD}


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def queue_event(
    conn: Connection,
    org_id: str,
    event_type: str,
    data: Any,
    now: datetime,
    endpoint_id: str | None = None,
    *,
    everyone: bool = False,
    task: Task | None = None,
    schemes: Mapping[str, Scheme] = _STANDARD_ONLY,
    endpoints: Sequence[Row[Any]] | None = None,
) -> int:
    """Queue ``event_type`` for every enabled endpoint of the organisation that wants it
    (``everyone``: whatever they want; ``endpoint_id``: that one only), each in its own
    scheme's form. Endpoints bound to a task (per-task callbacks) get only that task's
    events. ``endpoints``: those rows, already read (see ``_subscribed``), instead of a
    query of its own. Returns how many deliveries were queued."""
    if endpoints is None:
        query = select(webhook_endpoints).where(
            webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.enabled
        )
        if endpoint_id is not None:
            query = query.where(webhook_endpoints.c.id == endpoint_id)
        key = task.idempotency_key if task is not None else None
        bound = webhook_endpoints.c.task_key
        query = query.where(
            or_(bound.is_(None), bound == key) if key is not None else bound.is_(None)
        )
        endpoints = conn.execute(query).all()
    rows = []
    for endpoint in endpoints:
        wanted = endpoint.events or []
        if not everyone and event_type not in wanted and "*" not in wanted:
            continue
        scheme = schemes.get(endpoint.scheme)
        if scheme is None:
            log.error("webhook endpoint %s has an unknown scheme %r", endpoint.id, endpoint.scheme)
            continue
        row_id = new_id()
        payload = scheme.payload(Outbound(row_id, event_type, now, data, task))
        if payload is None:
            continue  # the scheme has no such event
        rows.append(
            {
                "id": row_id,
                "org_id": org_id,
                "endpoint_id": endpoint.id,
                "event_type": event_type,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        conn.execute(insert(webhook_outbox), rows)
    return len(rows)


def _shown(task: Task) -> dict[str, Any]:
    """The task as a webhook carries it: with the fields its policy masks masked, naming
    the organisation its people know (a sandbox task says ``sandbox: true``)."""
    shown = task.redacted().model_dump(mode="json", exclude={"request_fingerprint", "version"})
    shown["org_id"] = organisation(task.org_id)
    return shown


class OutboxHook:
    """A lifecycle hook: each status change an organisation subscribed to becomes outbox
    rows, in the change's own transaction (each endpoint's in the form of its scheme). The
    endpoints are read once per transaction, and not at all when the organisation has
    none; ``owed`` learns which tasks queued rows, so only their commits poke the worker."""

    def __init__(
        self, schemes: Mapping[str, Scheme] = _STANDARD_ONLY, owed: Owed | None = None
    ) -> None:
        self.schemes = schemes
        self.owed = owed or Owed()

    async def on_create(self, tx: Transaction, task: Task) -> None:
        if isinstance(tx, SqlTransaction):
            await self._queue(tx, task, "task.posted", task.created_at)

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        if before.status is after.status or not isinstance(tx, SqlTransaction):
            return
        event_type = _BY_STATUS.get(after.status)
        if event_type is not None:
            await self._queue(tx, after, event_type, after.updated_at)

    async def _queue(self, tx: SqlTransaction, task: Task, event_type: str, now: datetime) -> None:
        subs = await subscriptions(tx, task.org_id)
        if not subs.endpoints:
            return
        queued = await tx.run(self._rows, subs, task, event_type, now)
        if queued:
            self.owed.add(task.id)

    def _rows(
        self, conn: Connection, subs: Subscriptions, task: Task, event_type: str, now: datetime
    ) -> int:
        endpoints = subs.endpoints_for(conn, task.idempotency_key)
        if not endpoints:
            return 0
        return queue_event(
            conn,
            task.org_id,
            event_type,
            _shown(task),
            now,
            task=task,
            schemes=self.schemes,
            endpoints=endpoints,
        )
