"""What an organisation subscribed to (webhook endpoints, notification channels and
contacts), read at most once per transaction, and the outbox pokes owed after a commit.

A change's hooks run once per move (a decision is a claim, a submission and a verdict):
they share one read per transaction here, and a probe tells them whether there is anything
to read at all. The probe's answer is kept by the store for as long as the organisation's
configuration version holds (``SqlTransaction.configured``): the database's triggers move
that version on at every change of ``webhook_endpoints`` and ``notify_channels`` (migration
0006), and the kernel has read it already for the policy, so a change in an organisation
without endpoints or channels costs no statement here. An endpoint or a channel added in
any process is seen by every change that reads the version after it commits.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Connection, Row, bindparam, exists, or_, select

from handrail.store.sql import SqlTransaction

from .tables import notify_channels, notify_contacts, webhook_endpoints

__all__ = ["Owed", "Subscriptions", "probe", "subscriptions"]


@dataclass
class Subscriptions:
    """One organisation's subscriptions as one transaction sees them."""

    org_id: str
    endpoints: bool  # an enabled webhook endpoint exists
    channels: bool  # an enabled notification channel exists
    any_channel: bool  # a channel exists, enabled or not (outbox rows may name it)
    _endpoints: dict[str | None, Sequence[Row[Any]]] = field(default_factory=dict)
    _channels: Sequence[Row[Any]] | None = None
    _contacts: dict[str, Row[Any]] | None = None

    def endpoints_for(self, conn: Connection, task_key: str | None) -> Sequence[Row[Any]]:
        """The enabled endpoints, less those bound to another task's key."""
        if not self.endpoints:
            return ()
        held = self._endpoints.get(task_key)
        if held is None:
            bound = webhook_endpoints.c.task_key
            query = select(webhook_endpoints).where(
                webhook_endpoints.c.org_id == self.org_id,
                webhook_endpoints.c.enabled,
                or_(bound.is_(None), bound == task_key)
                if task_key is not None
                else bound.is_(None),
            )
            held = self._endpoints[task_key] = conn.execute(query).all()
        return held

    def channels_of(self, conn: Connection) -> Sequence[Row[Any]]:
        if not self.channels:
            return ()
        if self._channels is None:
            query = select(notify_channels).where(
                notify_channels.c.org_id == self.org_id, notify_channels.c.enabled
            )
            self._channels = conn.execute(query).all()
        return self._channels

    def contacts_of(self, conn: Connection) -> dict[str, Row[Any]]:
        if self._contacts is None:
            query = select(notify_contacts).where(notify_contacts.c.org_id == self.org_id)
            self._contacts = {r.reviewer_id: r for r in conn.execute(query).all()}
        return self._contacts


_ORG: BindParameter[str] = bindparam("org_id")
_PROBE = select(
    exists().where(webhook_endpoints.c.org_id == _ORG, webhook_endpoints.c.enabled),
    exists().where(notify_channels.c.org_id == _ORG, notify_channels.c.enabled),
    exists().where(notify_channels.c.org_id == _ORG),
)


def _flags(conn: Connection, org_id: str) -> tuple[bool, bool, bool]:
    """Enabled endpoints, enabled channels, any channel: one statement."""
    row = conn.execute(_PROBE, {"org_id": org_id}).one()
    return bool(row[0]), bool(row[1]), bool(row[2])


def probe(conn: Connection, org_id: str) -> Subscriptions:
    """What the organisation subscribed to, read now (outside a change's hooks)."""
    return Subscriptions(org_id, *_flags(conn, org_id))


_SEEN: weakref.WeakKeyDictionary[SqlTransaction, dict[str, Subscriptions]] = (
    weakref.WeakKeyDictionary()
)


async def subscriptions(tx: SqlTransaction, org_id: str) -> Subscriptions:
    """The organisation's subscriptions in ``tx``: the same object for every hook of the
    transaction, its flags as of the configuration version ``tx`` reads."""
    held = _SEEN.get(tx)
    if held is None:
        held = _SEEN[tx] = {}
    subs = held.get(org_id)
    if subs is None:
        subs = held[org_id] = Subscriptions(org_id, *await tx.configured(org_id, _flags))
    return subs


class Owed:
    """Tasks whose change queued outbox rows: the worker is poked after that change commits,
    and only then (a change that queued nothing wakes nobody). A change rolled back after
    queuing leaves a stale mark, at worst one poke too many; the oldest marks are dropped
    past ``limit``. Workers also poll, so a poke is never the only way a row is sent."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: dict[str, None] = {}
        self._limit = limit

    def add(self, task_id: str) -> None:
        self._ids[task_id] = None
        if len(self._ids) > self._limit:
            del self._ids[next(iter(self._ids))]

    def take(self, task_id: str) -> bool:
        """Whether a poke is owed for ``task_id`` (forgotten once asked)."""
        return self._ids.pop(task_id, 0) is None
