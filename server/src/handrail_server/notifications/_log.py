"""The notification log, as the API (``GET /v1/notifications/deliveries``) shows it: the
notifications queued (newest first) and their attempts. Never their payloads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from handrail.clock import utc
from handrail.store.sql import SqlStore

from ..tables import notify_attempts, notify_outbox

__all__ = ["NotificationLog", "notification_log"]

_LEFT_OUT = ("payload", "lease_until")


@dataclass(frozen=True, slots=True)
class NotificationLog:
    notifications: list[dict[str, Any]]
    """State, tries and last error of each, newest first."""
    attempts: list[dict[str, Any]]
    """Every attempt at sending those, newest first."""


def _aware(row: Any) -> dict[str, Any]:
    return {
        k: utc(v) if isinstance(v, datetime) else v
        for k, v in row._mapping.items()
        if k not in _LEFT_OUT
    }


async def notification_log(
    store: SqlStore,
    org_id: str,
    limit: int,
    *,
    task_id: str | None = None,
    channel_id: str | None = None,
) -> NotificationLog:
    """``limit`` of the organisation's newest notifications (of one task, through one
    channel, when given) and their attempts."""
    return await store.run(
        lambda c: _read(c, org_id, limit, task_id=task_id, channel_id=channel_id), readonly=True
    )


def _read(
    conn: Connection, org_id: str, limit: int, *, task_id: str | None, channel_id: str | None
) -> NotificationLog:
    query = select(notify_outbox).where(notify_outbox.c.org_id == org_id)
    if task_id is not None:
        query = query.where(notify_outbox.c.task_id == task_id)
    if channel_id is not None:
        query = query.where(notify_outbox.c.channel_id == channel_id)
    rows = conn.execute(
        query.order_by(notify_outbox.c.created_at.desc(), notify_outbox.c.id).limit(limit)
    ).all()
    attempts = conn.execute(
        select(notify_attempts)
        .where(
            notify_attempts.c.org_id == org_id,
            notify_attempts.c.outbox_id.in_([r.id for r in rows]),
        )
        .order_by(notify_attempts.c.at.desc())
    ).all()
    return NotificationLog(
        notifications=[_aware(r) for r in rows], attempts=[_aware(a) for a in attempts]
    )
