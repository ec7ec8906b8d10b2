"""The notification outbox: rows written in the same transaction as the change that calls
for them (a new review, 80% of its time gone, manual review, an escalation), so a change
and its notifications commit or vanish together. What they say, and the decision links,
are made when they are sent (``_worker``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select

from handrail import Event, Kind, Status, Task
from handrail.authority import authority_problem, members
from handrail.ids import new_id
from handrail.policy import ReviewerGroup
from handrail.store import Transaction
from handrail.store.sql import SqlTransaction

from .._subscribed import Owed, Subscriptions, probe, subscriptions
from ..tables import api_keys, notify_outbox

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
    subs: Subscriptions | None = None,
) -> int:
    """Queue ``event`` about ``task`` on every enabled channel of its organisation that
    wants it: an email per recipient with an address, one Slack message per channel
    (mentioning the recipients it knows). ``recipients`` None: every contact of the
    organisation. The task's requester is never among them. ``subs``: the organisation's
    channels and contacts as this transaction read them (see ``_subscribed``). Returns the
    rows queued."""
    if subs is None:
        subs = probe(conn, task.org_id)
    channels = [c for c in subs.channels_of(conn) if _wants(c.events, event)]
    if not channels:
        return 0
    contacts = subs.contacts_of(conn)
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

    for channel in channels:
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


def _wanted(conn: Connection, subs: Subscriptions, event: str) -> bool:
    return any(_wants(c.events, event) for c in subs.channels_of(conn))


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
    notify nobody. The channels and contacts are read once per transaction, and nothing
    more is read (groups, admins) unless a channel wants the event; ``owed`` learns which
    tasks queued rows, so only their commits poke the worker."""

    def __init__(self, owed: Owed | None = None) -> None:
        self.owed = owed or Owed()

    async def _subscribed(self, tx: SqlTransaction, task: Task, event: str) -> Subscriptions | None:
        """The organisation's subscriptions, if a channel of it wants ``event``."""
        subs = await subscriptions(tx, task.org_id)
        if not subs.channels or not await tx.run(_wanted, subs, event):
            return None
        return subs

    async def _queue(
        self,
        tx: SqlTransaction,
        subs: Subscriptions,
        task: Task,
        event: str,
        now: datetime,
        recipients: Collection[str] | None,
        why: str | None = None,
    ) -> None:
        queued = await tx.run(queue_notifications, task, event, now, recipients, why, subs)
        if queued:
            self.owed.add(task.id)

    async def on_create(self, tx: Transaction, task: Task) -> None:
        if not isinstance(tx, SqlTransaction) or task.sandbox:
            return
        subs = await self._subscribed(tx, task, "task.new")
        if subs is None:
            return
        groups = await self._groups(tx, task)
        await self._queue(tx, subs, task, "task.new", task.created_at, _may_take(task, groups))

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        if not isinstance(tx, SqlTransaction) or after.sandbox:
            return
        now = after.updated_at
        if event is Event.POLICY:  # the policy decided it (at once, or by default): moot
            if (await subscriptions(tx, after.org_id)).any_channel:  # else no row can exist
                await tx.run(self._drop_pending, after)
        elif event is Event.ADD_BACKUP:
            subs = await self._subscribed(tx, after, "task.sla_warning")
            if subs is None:
                return
            groups = await self._groups(tx, after)
            who = _may_take(after, groups)
            if who is None:
                who = set(await tx.run(subs.contacts_of))
            held = {a.worker_id for a in after.assignments}
            why = "80% of its time has passed and nobody has decided it"
            await self._queue(tx, subs, after, "task.sla_warning", now, set(who) - held, why)
        elif event is Event.WIDEN and after.policy is not None and after.policy.groups:
            subs = await self._subscribed(tx, after, "task.escalated")
            if subs is None:
                return
            group = after.policy.groups[-1]
            groups = await tx.list_groups(after.org_id)
            why = f"Nobody took it in time: members of {group} may decide it now."
            await self._queue(tx, subs, after, "task.escalated", now, members(groups, [group]), why)
        elif after.status is Status.MANUAL_REVIEW and before.status is not Status.MANUAL_REVIEW:
            subs = await self._subscribed(tx, after, "task.manual_review")
            if subs is None:
                return
            groups = await self._groups(tx, after)
            admins = await tx.run(_admins, after.org_id)
            allowed = {a for a in admins if authority_problem(after, a, groups) is None}
            reasons = after.verification.reasons if after.verification else ()
            await self._queue(
                tx,
                subs,
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
    def _drop_pending(conn: Connection, task: Task) -> None:
        """The task's notifications nobody has tried yet are moot: gone. A row a worker holds
        (a live lease) stays under it, for the worker to record what it sent (or that it
        found the task decided, and skipped)."""
        conn.execute(
            delete(notify_outbox).where(
                notify_outbox.c.org_id == task.org_id,
                notify_outbox.c.task_id == task.id,
                notify_outbox.c.state == "pending",
                notify_outbox.c.attempts == 0,
                or_(
                    notify_outbox.c.lease_until.is_(None),
                    notify_outbox.c.lease_until < task.updated_at,
                ),
            )
        )
