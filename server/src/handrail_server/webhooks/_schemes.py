"""Schemes: how an endpoint's deliveries look and how they are signed.

Each webhook endpoint names its scheme. The scheme renders an event into the body that
endpoint receives (or skips events it has no name for) when the event is queued, and signs
the body when it is sent. ``standard`` is Standard Webhooks; the peers' dialects add their
own (``handrail_server.compat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from standardwebhooks import Webhook

from handrail import Task

__all__ = ["STANDARD", "Outbound", "Scheme", "StandardWebhooks", "schemes"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """An event about to be queued for one endpoint."""

    id: str
    """The delivery's id (``webhook-id``): stable across retries."""
    type: str
    """``task.verified``, ``webhook.test``..."""
    at: datetime
    data: Any
    """The event's data as the Handrail API shows it (a task, or a test message)."""
    task: Task | None = None
    """The task the event is about, if any."""


class Scheme(Protocol):
    name: str

    def payload(self, event: Outbound) -> dict[str, Any] | None:
        """The JSON body for ``event``, or None when this scheme does not send it."""
        ...

    def headers(self, secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        """The headers that identify and sign ``body`` (sent as is)."""
        ...


class StandardWebhooks:
    """Standard Webhooks 1.0: ``webhook-id``, ``webhook-timestamp`` and
    ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""

    name = "standard"

    def payload(self, event: Outbound) -> dict[str, Any] | None:
        return {"type": event.type, "timestamp": event.at.isoformat(), "data": event.data}

    def headers(self, secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, sent_at, body),
        }


STANDARD: Scheme = StandardWebhooks()


def schemes(*more: Scheme) -> Mapping[str, Scheme]:
    """The standard scheme and ``more``, by name."""
    return {scheme.name: scheme for scheme in (STANDARD, *more)}
