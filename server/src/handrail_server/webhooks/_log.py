"""An endpoint's delivery log, as the API (``GET /v1/webhooks/{id}/deliveries``) and the
admin pages show it: the events queued for it and every delivery attempt, newest first.
Never the signing secret, nor the events' payloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .._rows import aware
from ..tables import webhook_deliveries, webhook_endpoints, webhook_outbox

__all__ = ["DeliveryLog", "delivery_log"]

_ENDPOINT = [c for c in webhook_endpoints.c if c.name != "secret"]
_EVENT = [c for c in webhook_outbox.c if c.name not in ("payload", "lease_until")]


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    endpoint: dict[str, Any]
    events: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    more: bool
    """There are more events or attempts than ``limit``."""


def delivery_log(conn: Connection, org_id: str, endpoint_id: str, limit: int) -> DeliveryLog | None:
    """``limit`` of the endpoint's newest events and attempts; None when ``org_id`` has no
    such endpoint."""
    found = conn.execute(
        select(*_ENDPOINT).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.org_id == org_id
        )
    ).first()
    if found is None:
        return None
    events = conn.execute(
        select(*_EVENT)
        .where(webhook_outbox.c.endpoint_id == endpoint_id)
        .order_by(webhook_outbox.c.created_at.desc())
        .limit(limit + 1)
    ).all()
    attempts = conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id)
        .order_by(webhook_deliveries.c.at.desc())
        .limit(limit + 1)
    ).all()
    return DeliveryLog(
        endpoint=aware(found),
        events=[aware(r) for r in events[:limit]],
        attempts=[aware(r) for r in attempts[:limit]],
        more=len(events) > limit or len(attempts) > limit,
    )
