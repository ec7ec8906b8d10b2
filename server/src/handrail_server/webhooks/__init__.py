"""Webhooks: a transactional outbox, signed deliveries with retries, and an SSRF guard."""

from ._delivery import SCHEDULE, DeliveryWorker
from ._guard import UnsafeTarget, check_target
from ._log import DeliveryLog, delivery_log
from ._outbox import EVENT_TYPES, OutboxHook, new_secret, queue_event
from ._schemes import STANDARD, Outbound, Scheme, StandardWebhooks, schemes

__all__ = [
    "EVENT_TYPES",
    "SCHEDULE",
    "STANDARD",
    "DeliveryLog",
    "DeliveryWorker",
    "Outbound",
    "OutboxHook",
    "Scheme",
    "StandardWebhooks",
    "UnsafeTarget",
    "check_target",
    "delivery_log",
    "new_secret",
    "queue_event",
    "schemes",
]
