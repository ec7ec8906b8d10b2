"""Leasing due outbox rows: the one query the webhook and notification workers share.

A worker takes the pending rows whose time has come and which no live lease holds, and
leases them for a while in the same transaction, so another process (or this one after a
crash, once the lease ends) never sends a row twice at once. PostgreSQL skips rows another
transaction is leasing (``FOR UPDATE SKIP LOCKED``); SQLite has one writer anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, or_, select, update

__all__ = ["LEASE", "lease_due"]

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
