"""HumanOps' callbacks: which events, in what body, signed how."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from ...webhooks import Outbound
from ._common import (
    DIALECT,
    guardian_of,
    status_of,
    when,
)

# ---------------------------------------------------------------- callbacks

_EVENTS = {
    "task.verified": "task.verified",
    "task.manual_review": "task.manual_review",
    "task.failed": "task.disputed",
    "task.disputed": "task.disputed",
}


class HumanOpsScheme:
    """Callbacks as HumanOps sends them: ``{"event", "task_id", "status",
    "guardian_result", "timestamp"}`` (and ``event_id``, the same on every retry), signed
    ``X-HumanOps-Signature: <hex HMAC-SHA256 of the body>`` when the task gave a
    ``callback_secret``."""

    name = DIALECT

    def payload(self, event: Outbound) -> dict[str, Any] | None:
        kind = _EVENTS.get(event.type)
        if event.task is None or kind is None:
            return None
        return {
            "event": kind,
            "event_id": event.id,
            "task_id": event.task.id,
            "status": status_of(event.task),
            "guardian_result": guardian_of(event.task),
            "timestamp": when(event.at),
        }

    def headers(self, secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        if not secret:
            return {}
        mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        return {"X-HumanOps-Signature": mac}


SCHEME = HumanOpsScheme()
