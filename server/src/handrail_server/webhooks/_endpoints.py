"""An organisation's webhook endpoints: made, listed, changed, disabled, tested.

What the API (``/v1/webhooks``) does with endpoints, apart from HTTP: the routes parse,
call this and serialise. An endpoint is checked (known event types, a URL the SSRF guard
allows) before it is written, and again on every change of its URL or events. Its signing
secret is shown once, when it is made; "deleting" one disables it and keeps its log.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from handrail.clock import Clock, utc
from handrail.errors import NotFound, ValidationError, ValidationIssue
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from ..tables import webhook_endpoints
from ._guard import check_url_input
from ._log import DeliveryLog, delivery_log
from ._outbox import EVENT_TYPES, new_secret, queue_event

__all__ = ["Endpoint", "NewEndpoint", "WebhookEndpoints"]

_CHANGEABLE = ("url", "events", "description", "enabled")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as its organisation sees it: never its secret."""

    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str
    """The signing secret (``whsec_…``): shown once, when the endpoint is made."""


def _endpoint(m: Any) -> Endpoint:
    return Endpoint(
        id=m["id"],
        url=m["url"],
        events=list(m["events"]),
        description=m["description"],
        enabled=m["enabled"],
        created_at=utc(m["created_at"]),  # SQLite gives naive datetimes back
    )


def _find(conn: Connection, org_id: str, endpoint_id: str) -> Endpoint:
    row = conn.execute(
        select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.org_id == org_id
        )
    ).first()
    if row is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return _endpoint(row._mapping)


class WebhookEndpoints:
    """The endpoints of any organisation, each call scoped to one (``org_id``).

    ``allow_private`` lets URLs reach private addresses (tests, private networks);
    ``poke`` wakes the delivery worker when a test event is queued."""

    def __init__(
        self,
        store: SqlStore,
        clock: Clock,
        *,
        allow_private: bool = False,
        poke: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._allow_private = allow_private
        self._poke = poke

    async def check(self, url: str, events: Sequence[str]) -> None:
        """Raise ``ValidationError`` for an unknown event type, ``UnsafeWebhookUrl`` for a
        URL the SSRF guard refuses (``$.events``, ``$.url``: the API's field names)."""
        unknown = sorted(set(events) - {*EVENT_TYPES, "*"})
        if unknown:
            issue = ValidationIssue("$.events", f"choose from {list(EVENT_TYPES)} or '*'")
            raise ValidationError([issue], summary=f"unknown event types: {unknown}")
        await check_url_input(url, "$.url", allow_private=self._allow_private)

    async def create(
        self,
        org_id: str,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        enabled: bool = True,
    ) -> NewEndpoint:
        await self.check(url, events)
        secret = new_secret()
        row: dict[str, Any] = {
            "id": new_id(),
            "org_id": org_id,
            "url": url,
            "secret": secret,
            "events": list(events),
            "enabled": enabled,
            "description": description,
            "created_at": self._clock.now(),
        }
        await self._store.run(lambda c: c.execute(insert(webhook_endpoints), [row]))
        return NewEndpoint(endpoint=_endpoint(row), secret=secret)

    async def list(self, org_id: str) -> builtins.list[Endpoint]:
        query = (
            select(webhook_endpoints)
            .where(webhook_endpoints.c.org_id == org_id)
            .order_by(webhook_endpoints.c.created_at)
        )
        rows = await self._store.run(lambda c: c.execute(query).all(), readonly=True)
        return [_endpoint(r._mapping) for r in rows]

    async def get(self, org_id: str, endpoint_id: str) -> Endpoint:
        """Raises ``NotFound`` unless ``org_id`` has this endpoint."""
        return await self._store.run(lambda c: _find(c, org_id, endpoint_id), readonly=True)

    async def update(self, org_id: str, endpoint_id: str, **changes: Any) -> Endpoint:
        """Change ``url``, ``events``, ``description`` or ``enabled`` (those given, not
        None); the endpoint as it then is."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if unknown := set(changes) - set(_CHANGEABLE):
            raise TypeError(f"an endpoint has no {sorted(unknown)} to change")
        current = await self.get(org_id, endpoint_id)
        await self.check(changes.get("url", current.url), changes.get("events", current.events))

        def apply(conn: Connection) -> Endpoint:
            if changes:
                conn.execute(
                    update(webhook_endpoints)
                    .where(
                        webhook_endpoints.c.id == endpoint_id,
                        webhook_endpoints.c.org_id == org_id,
                    )
                    .values(**changes)
                )
            return _find(conn, org_id, endpoint_id)

        return await self._store.run(apply)

    async def disable(self, org_id: str, endpoint_id: str) -> None:
        """Stop sending to the endpoint; its log stays."""

        def disable(conn: Connection) -> None:
            _find(conn, org_id, endpoint_id)
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(enabled=False)
            )

        await self._store.run(disable)

    async def deliveries(self, org_id: str, endpoint_id: str, limit: int) -> DeliveryLog:
        """The endpoint's newest queued events and delivery attempts."""

        def read(conn: Connection) -> DeliveryLog:
            log = delivery_log(conn, org_id, endpoint_id, limit)
            if log is None:
                raise NotFound("webhook endpoint", endpoint_id)
            return log

        return await self._store.run(read, readonly=True)

    async def send_test(self, org_id: str, endpoint_id: str | None = None) -> int:
        """Queue a ``webhook.test`` event to one endpoint, or to every enabled one; how many
        were queued."""
        now = self._clock.now()

        def queue(conn: Connection) -> int:
            if endpoint_id is not None:
                _find(conn, org_id, endpoint_id)
            data = {"message": "a test event from Handrail", "org_id": org_id}
            return queue_event(
                conn, org_id, "webhook.test", data, now, endpoint_id=endpoint_id, everyone=True
            )

        queued = await self._store.run(queue)
        self._poke()
        return queued
