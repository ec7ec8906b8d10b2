"""Webhooks: an organisation's endpoints, a transactional outbox, signed deliveries with
retries, and an SSRF guard."""

from ._delivery import SCHEDULE, DeliveryWorker
from ._endpoints import Endpoint, NewEndpoint, WebhookEndpoints
from ._guard import UnsafeTarget, UnsafeWebhookUrl, check_target, check_url_input
from ._log import DeliveryLog, delivery_log
from ._outbox import EVENT_TYPES, OutboxHook, new_secret, queue_event
from ._schemes import STANDARD, Outbound, Scheme, StandardWebhooks, schemes

__all__ = [
    "EVENT_TYPES",
    "SCHEDULE",
    "STANDARD",
    "DeliveryLog",
    "DeliveryWorker",
    "Endpoint",
    "NewEndpoint",
    "Outbound",
    "OutboxHook",
    "Scheme",
    "StandardWebhooks",
    "UnsafeTarget",
    "UnsafeWebhookUrl",
    "WebhookEndpoints",
    "check_target",
    "check_url_input",
    "delivery_log",
    "new_secret",
    "queue_event",
    "schemes",
]
