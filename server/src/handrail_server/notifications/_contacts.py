"""Reviewers' contacts: where a reviewer (a principal id) hears of work, an email address
and a Slack user id, set by the organisation's admins (``/v1/notifications/contacts``).

A Slack user id maps to one reviewer per organisation: a click in Slack from that user
decides as that reviewer, so two reviewers may not share one.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from handrail.clock import Clock, utc
from handrail.errors import NotFound
from handrail.store.sql import SqlStore

from ..tables import notify_contacts

__all__ = ["Contact", "Contacts", "SlackUserTaken"]


@dataclass(frozen=True, slots=True)
class Contact:
    reviewer_id: str
    email: str | None
    slack_user_id: str | None
    updated_at: datetime


class SlackUserTaken(Exception):
    """Another reviewer of the organisation has that Slack user id."""


def _contact(m: Any) -> Contact:
    return Contact(
        reviewer_id=m["reviewer_id"],
        email=m["email"],
        slack_user_id=m["slack_user_id"],
        updated_at=utc(m["updated_at"]),  # SQLite gives naive datetimes back
    )


class Contacts:
    """The contacts of any organisation, each call scoped to one (``org_id``)."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def put(
        self,
        org_id: str,
        reviewer_id: str,
        *,
        email: str | None = None,
        slack_user_id: str | None = None,
    ) -> Contact:
        """Set (or replace) the reviewer's contact. Raises ``SlackUserTaken``."""
        values = {"email": email, "slack_user_id": slack_user_id, "updated_at": self._clock.now()}
        key = (notify_contacts.c.org_id == org_id) & (notify_contacts.c.reviewer_id == reviewer_id)

        def write(conn: Connection) -> Contact:
            if conn.execute(update(notify_contacts).where(key).values(**values)).rowcount == 0:
                conn.execute(
                    insert(notify_contacts),
                    [{"org_id": org_id, "reviewer_id": reviewer_id, **values}],
                )
            return _contact(conn.execute(select(notify_contacts).where(key)).one()._mapping)

        try:
            return await self._store.run(write)
        except Exception as exc:  # the store wraps what the driver raised
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                raise SlackUserTaken(
                    "another reviewer of this organisation has that Slack user id"
                ) from None
            raise

    async def list(self, org_id: str) -> builtins.list[Contact]:
        query = (
            select(notify_contacts)
            .where(notify_contacts.c.org_id == org_id)
            .order_by(notify_contacts.c.reviewer_id)
        )
        rows = await self._store.run(lambda c: c.execute(query).all(), readonly=True)
        return [_contact(r._mapping) for r in rows]

    async def delete(self, org_id: str, reviewer_id: str) -> None:
        """Raises ``NotFound`` when the reviewer has no contact."""

        def remove(conn: Connection) -> int:
            gone = conn.execute(
                delete(notify_contacts).where(
                    notify_contacts.c.org_id == org_id,
                    notify_contacts.c.reviewer_id == reviewer_id,
                )
            )
            return int(gone.rowcount)

        if await self._store.run(remove) == 0:
            raise NotFound("contact", reviewer_id)

    async def reviewer_of_slack_user(self, org_id: str, slack_user_id: str) -> str | None:
        """The reviewer ``slack_user_id`` is in ``org_id``, or None (not linked)."""
        query = select(notify_contacts.c.reviewer_id).where(
            notify_contacts.c.org_id == org_id, notify_contacts.c.slack_user_id == slack_user_id
        )
        row = await self._store.run(lambda c: c.execute(query).first(), readonly=True)
        return str(row.reviewer_id) if row is not None else None
