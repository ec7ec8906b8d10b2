"""The notification outbox: rows written in the same transaction as the change that calls
for them (a new review, 80% of its time gone, manual review, an escalation), so a change
and its notifications commit or vanish together. What they say, and the decision links,
are made when they are sent (``_worker``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from handrail import Event, Kind, Status, Task
from handrail.authority import authority_problem, members
from handrail.ids import new_id
from handrail.policy import ReviewerGroup
from handrail.store import Transaction
from handrail.store.sql import SqlTransaction

from ..tables import api_keys, notify_channels, notify_contacts, notify_outbox

__all__ = ["NotifyHook", "queue_notifications"]


def _wants(events: Any, event: str) -> bool:
    wanted = events or []
    return event in wanted or "*" in wanted


def queue_notifications(
    conn: Connection,
    task: Task,
    event: str,
    now: datetime,
    recipients: Collection[str] | None,
    why: str | None = None,
) -> int:
    """Queue ``event`` about ``task`` on every enabled channel of its organisation that
    wants it: an email per recipient with an address, one Slack message per channel
    (mentioning the recipients it knows). ``recipients`` None: every contact of the
    organisation. The task's requester is never among them. Returns the rows queued."""
    contacts = {
        r.reviewer_id: r
        for r in conn.execute(
            select(notify_contacts).where(notify_contacts.c.org_id == task.org_id)
        ).all()
    }
    chosen = set(contacts) if recipients is None else set(recipients) & set(contacts)
    chosen.discard(task.created_by)
    rows: list[dict[str, Any]] = []

    def row(channel_id: str, recipient: str | None, payload: dict[str, Any]) -> None:
        rows.append(
            {
                "id": new_id(),
                "org_id": task.org_id,
                "channel_id": channel_id,
                "event_type": event,
                "task_id": task.id,
                "recipient": recipient,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )

    channels = conn.execute(
        select(notify_channels).where(
            notify_channels.c.org_id == task.org_id, notify_channels.c.enabled
        )
    ).all()
    for channel in channels:
        if not _wants(channel.events, event):
            continue
        if channel.kind == "email":
            for reviewer in sorted(chosen):
                if contacts[reviewer].email:
                    row(channel.id, reviewer, {"why": why})
        else:
            slack = sorted(r for r in chosen if contacts[r].slack_user_id)
            row(channel.id, None, {"why": why, "recipients": slack})
    if rows:
        conn.execute(insert(notify_outbox), rows)
    return len(rows)


def _admins(conn: Connection, org_id: str) -> set[str]:
    query = select(api_keys.c.principal).where(
        api_keys.c.org_id == org_id, api_keys.c.role == "admin", api_keys.c.revoked_at.is_(None)
    )
    return set(conn.execute(query).scalars())


def _may_take(task: Task, groups: Sequence[ReviewerGroup]) -> set[str] | None:
    """Who may take ``task`` (None: any reviewer), less those already on it."""
    terms = task.policy
    if task.kind is not Kind.REVIEW or terms is None or not terms.groups:
        return None
    return members(groups, terms.groups) - {a.worker_id for a in task.assignments}


class NotifyHook:
    """A lifecycle hook: the changes people should hear about become notification outbox
    rows in the change's own transaction. Sandbox tasks have simulated reviewers and
    notify nobody."""

    async def on_create(self, tx: Transaction, task: Task) -> None:
        if not isinstance(tx, SqlTransaction) or task.sandbox:
            return
        groups = await self._groups(tx, task)
        await tx.run(
            queue_notifications, task, "task.new", task.created_at, _may_take(task, groups)
        )

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        if not isinstance(tx, SqlTransaction) or after.sandbox:
            return
        now = after.updated_at
        if event is Event.POLICY:  # the policy decided it (at once, or by default): moot
            await tx.run(self._drop_pending, after)
        elif event is Event.ADD_BACKUP:
            groups = await self._groups(tx, after)
            who = _may_take(after, groups)
            if who is None:
                who = await tx.run(self._contacts, after.org_id)
            held = {a.worker_id for a in after.assignments}
            why = "80% of its time has passed and nobody has decided it"
            await tx.run(queue_notifications, after, "task.sla_warning", now, set(who) - held, why)
        elif event is Event.WIDEN and after.policy is not None and after.policy.groups:
            group = after.policy.groups[-1]
            groups = await tx.list_groups(after.org_id)
            why = f"Nobody took it in time: members of {group} may decide it now."
            await tx.run(
                queue_notifications, after, "task.escalated", now, members(groups, [group]), why
            )
        elif after.status is Status.MANUAL_REVIEW and before.status is not Status.MANUAL_REVIEW:
            groups = await self._groups(tx, after)
            admins = await tx.run(_admins, after.org_id)
            allowed = {a for a in admins if authority_problem(after, a, groups) is None}
            reasons = after.verification.reasons if after.verification else ()
            await tx.run(
                queue_notifications,
                after,
                "task.manual_review",
                now,
                allowed,
                "; ".join(reasons) or None,
            )

    @staticmethod
    async def _groups(tx: Transaction, task: Task) -> list[ReviewerGroup]:
        if task.kind is Kind.REVIEW and task.policy is not None and task.policy.groups:
            return await tx.list_groups(task.org_id)
        return []

    @staticmethod
    def _contacts(conn: Connection, org_id: str) -> set[str]:
        query = select(notify_contacts.c.reviewer_id).where(notify_contacts.c.org_id == org_id)
        return set(conn.execute(query).scalars())

    @staticmethod
    def _drop_pending(conn: Connection, task: Task) -> None:
        conn.execute(
            delete(notify_outbox).where(
                notify_outbox.c.org_id == task.org_id,
                notify_outbox.c.task_id == task.id,
                notify_outbox.c.state == "pending",
                notify_outbox.c.attempts == 0,
            )
        )
