"""Leasing due outbox rows: the one query the webhook and notification workers share.

A worker takes the pending rows whose time has come and which no live lease holds, and
leases them for a while in the same transaction, so another process (or this one after a
crash, once the lease ends) never sends a row twice at once. PostgreSQL skips rows another
transaction is leasing (``FOR UPDATE SKIP LOCKED``); SQLite has one writer anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, or_, select, update

from handrail.clock import Clock
from handrail.store.sql import SqlStore

__all__ = ["LEASE", "OutboxWorker", "lease_due"]

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)


def lease_due(
    conn: Connection,
    outbox: Table,
    owner: Table,
    on: ColumnElement[bool],
    columns: Sequence[Any],
    now: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` due rows of ``outbox``, each with ``columns`` of its ``owner`` (the
    endpoint or channel, joined ``on``), leased for :data:`LEASE` from ``now``."""
    query = (
        select(outbox, *columns)
        .join(owner, on)
        .where(
            outbox.c.state == "pending",
            outbox.c.next_attempt_at <= now,
            or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
        )
        .order_by(outbox.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=outbox)
    rows = [dict(r._mapping) for r in conn.execute(query).all()]
    if rows:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r["id"] for r in rows]))
            .values(lease_until=now + LEASE)
        )
    return rows


class OutboxWorker(ABC):
    """Sends an outbox's due rows, until cancelled: a round leases what is due
    (:meth:`_lease`, usually :func:`lease_due`) and sends those rows side by side
    (:meth:`_send`); with nothing due it sleeps until poked or ``idle`` seconds pass."""

    what = "outbox"
    """Named in the log when a round fails."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Something may be due now (called after commits, on the event loop)."""
        self._wake.set()

    async def run(self, idle: float = 1.0) -> None:
        """Deliver what is due, until cancelled; wakes at once when poked."""
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("%s round failed", self.what)
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await self._wake.wait()
                self._wake.clear()

    async def deliver_due(self, limit: int = 50) -> int:
        """One round: lease up to ``limit`` due rows and send them; how many."""
        now = self.clock.now()
        rows = await self.store.run(lambda c: self._lease(c, now, limit))
        if rows:
            await asyncio.gather(*(self._send(row) for row in rows))
        return len(rows)

    @abstractmethod
    def _lease(self, conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def _send(self, row: dict[str, Any]) -> None: ...
