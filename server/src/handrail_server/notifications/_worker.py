"""Sending the notification outbox: at least once, retried on the webhooks' schedule,
every attempt logged.

Due rows are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a lease left by a dead
process runs out and the row is taken again. A row is composed when it is sent, from the
task as it is then: one about a task that no longer waits (decided, expired, cancelled), or
for a reviewer who may no longer decide it, is ``skipped``. An email to a reviewer of a
review carries Approve / Reject links with a decision token minted for that reviewer at
that moment (single-use, expiring with the task at the latest); tokens are never stored.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from sqlalchemy import Connection, and_, insert, select, update

from handrail import Engine, HandrailError, NotEligible, Principal, Role, Status, Task
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from .._leases import OutboxWorker, lease_due
from ..keys import decider_key
from ..settings import Settings
from ..tables import notify_attempts, notify_channels, notify_contacts, notify_outbox
from ..webhooks import SCHEDULE
from ._channels import Channel, ChannelError, EmailChannel, SlackChannel
from ._model import Notification

__all__ = ["NotificationWorker", "decision_url", "task_url"]

log = logging.getLogger(__name__)
_WAITING = {Status.POSTED, Status.ASSIGNED}


class Moot(Exception):
    """Nothing to send any more (the row is skipped, with this reason)."""


def task_url(base: str, task_id: str) -> str:
    return f"{base}/tasks/{quote(task_id, safe='')}"


def decision_url(base: str, task_id: str, token: str, choice: str) -> str:
    query = urlencode({"token": token, "choice": choice})
    return f"{base}/decide/{quote(task_id, safe='')}?{query}"


def _lease_due(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    columns = (
        notify_channels.c.kind,
        notify_channels.c.enabled,
        notify_channels.c.webhook_url,
    )
    return lease_due(
        conn,
        notify_outbox,
        notify_channels,
        notify_channels.c.id == notify_outbox.c.channel_id,
        columns,
        now,
        limit,
    )


def _record(
    conn: Connection,
    row: dict[str, Any],
    now: datetime,
    error: str | None,
    duration_ms: float,
    *,
    skipped: bool = False,
) -> str:
    changes: dict[str, Any] = {"lease_until": None, "last_error": error}
    if skipped:
        changes["state"] = "skipped"
    else:
        attempts = row["attempts"] + 1
        changes["attempts"] = attempts
        conn.execute(
            insert(notify_attempts),
            [
                {
                    "id": new_id(),
                    "outbox_id": row["id"],
                    "org_id": row["org_id"],
                    "channel_id": row["channel_id"],
                    "attempt": attempts,
                    "ok": error is None,
                    "error": error,
                    "duration_ms": duration_ms,
                    "at": now,
                }
            ],
        )
        if error is None:
            changes.update(state="delivered", delivered_at=now)
        elif attempts >= len(SCHEDULE) or not row["enabled"]:
            changes["state"] = "dead"
        else:
            delay = SCHEDULE[attempts] * random.uniform(0.9, 1.1)
            changes["next_attempt_at"] = now + timedelta(seconds=delay)
    conn.execute(
        update(notify_outbox)
        .where(and_(notify_outbox.c.id == row["id"], notify_outbox.c.state == "pending"))
        .values(**changes)
    )
    return str(changes.get("state", "pending"))


def _contact(conn: Connection, org_id: str, reviewer: str) -> Any:
    query = select(notify_contacts).where(
        notify_contacts.c.org_id == org_id, notify_contacts.c.reviewer_id == reviewer
    )
    return conn.execute(query).first()


def _slack_ids(conn: Connection, org_id: str, reviewers: list[str]) -> list[str]:
    if not reviewers:
        return []
    query = select(notify_contacts.c.slack_user_id).where(
        notify_contacts.c.org_id == org_id,
        notify_contacts.c.reviewer_id.in_(reviewers),
        notify_contacts.c.slack_user_id.is_not(None),
    )
    return sorted(conn.execute(query).scalars())


class NotificationWorker(OutboxWorker):
    """Sends due notification rows through their channels, until cancelled."""

    what = "notification"

    def __init__(
        self,
        store: SqlStore,
        engine: Engine,
        settings: Settings,
        email: Channel | None = None,
    ) -> None:
        super().__init__(store, engine.clock)
        self.engine = engine
        self.settings = settings
        self.email: Channel = email or EmailChannel(settings)
        self._client = httpx.AsyncClient(
            timeout=settings.notify_timeout, follow_redirects=False, trust_env=False
        )

    def _lease(self, conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
        return _lease_due(conn, now, limit)

    async def _send(self, row: dict[str, Any]) -> None:
        started = time.perf_counter()
        error: str | None = None
        skipped = False
        try:
            if not row["enabled"]:
                raise ChannelError("the channel is disabled")
            note = await self._compose(row)
            await self._channel(row).send(note)
        except Moot as moot:
            error, skipped = str(moot), True
        except ChannelError as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # a bug must not leave the row leased forever
            log.exception("notification %s failed", row["id"])
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        now = self.clock.now()
        state = await self.store.run(
            lambda c: _record(c, row, now, error, elapsed, skipped=skipped)
        )
        if state == "dead":
            log.warning("notification %s gave up: %s", row["id"], error)

    def _channel(self, row: dict[str, Any]) -> Channel:
        if row["kind"] == "email":
            return self.email
        return SlackChannel(
            row["webhook_url"], self._client, allow_private=self.settings.allow_private_webhooks
        )

    async def _compose(self, row: dict[str, Any]) -> Notification:
        org, event = row["org_id"], row["event_type"]
        async with self.store.transaction(readonly=True) as tx:
            task = await tx.get_task(org, row["task_id"])
        now = self.clock.now()
        if task is None:
            raise Moot("the task is gone")
        if event == "task.manual_review":
            if task.status is not Status.MANUAL_REVIEW:
                raise Moot(f"the task is {task.status.value} now")
        elif task.status not in _WAITING or task.expires_at <= now:
            raise Moot(f"the task is {task.status.value} now, past waiting")
        payload = row["payload"] or {}
        base = self.settings.base_url
        shown = task.for_worker()
        note = Notification(
            event=event, task=shown, task_url=task_url(base, task.id), why=payload.get("why")
        )
        if row["kind"] != "email":
            wanted = [str(r) for r in payload.get("recipients") or []]
            mentions = await self.store.run(lambda c: _slack_ids(c, org, wanted), readonly=True)
            return replace(note, mentions=tuple(mentions))
        reviewer = row["recipient"]
        contact = await self.store.run(lambda c: _contact(c, org, reviewer), readonly=True)
        if contact is None or not contact.email:
            raise Moot(f"{reviewer} has no email address any more")
        note = replace(note, recipient=reviewer, address=contact.email)
        if note.decidable and self.engine.tokens is not None:
            return await self._with_links(note, task, reviewer, now)
        return note

    async def _with_links(
        self, note: Notification, task: Task, reviewer: str, now: datetime
    ) -> Notification:
        left = int((task.expires_at - now).total_seconds())
        ttl = min(self.settings.notify_link_ttl, left)
        if ttl < 1:
            raise Moot("the task's time is up")
        key = await self.store.run(lambda c: decider_key(c, task.org_id, reviewer), readonly=True)
        if key is None:
            raise Moot(f"{reviewer} has no live reviewer key: no decision link")
        notifier = Principal(org_id=task.org_id, id="notifier", roles=frozenset({Role.ADMIN}))
        try:
            token, _ = await self.engine.mint_decision_token(
                notifier, task.id, reviewer, ttl_seconds=ttl
            )
        except NotEligible as exc:
            raise Moot(f"{reviewer} may not decide it: {exc}") from None
        except HandrailError as exc:
            raise ChannelError(f"no decision link: {exc}") from None
        base = self.settings.base_url
        return replace(
            note,
            approve_url=decision_url(base, task.id, token, "approve"),
            reject_url=decision_url(base, task.id, token, "reject"),
        )

    async def post_json(self, url: str, body: dict[str, Any]) -> None:
        """POST ``body`` to ``url`` with this worker's client (a Slack ``response_url``)."""
        answer = await self._client.post(url, json=body)
        if not 200 <= answer.status_code < 300:
            raise ChannelError(f"HTTP {answer.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
