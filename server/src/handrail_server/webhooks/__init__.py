"""Webhooks: a transactional outbox, signed deliveries with retries, and an SSRF guard."""

from ._delivery import SCHEDULE, DeliveryWorker
from ._guard import UnsafeTarget, check_target
from ._outbox import EVENT_TYPES, OutboxHook, new_secret, queue_event

__all__ = [
    "EVENT_TYPES",
    "SCHEDULE",
    "DeliveryWorker",
    "OutboxHook",
    "UnsafeTarget",
    "check_target",
    "new_secret",
    "queue_event",
]
