"""Sandbox and live: two worlds of one organisation, as Stripe's test and live modes.

A key acts in its organisation's *world*: a live key in the organisation itself (its id),
an ``hr_test_`` key in the organisation's sandbox, whose tenant id is the organisation's id
with :data:`SANDBOX_SUFFIX`. The engine, store, ledger, idempotency records, webhooks and
their outbox, the audit chain, the queue, server-sent events and uploads all key their
rows by that tenant id, so the walls between organisations stand between the two modes
too: a sandbox key sees and changes only sandbox objects, a live key only live ones, and
the other mode's ids answer 404. An organisation's id may not contain ``~`` (checked where
organisations are made), so no live organisation's id is another's sandbox.
"""

from __future__ import annotations

from handrail.errors import ValidationError

__all__ = [
    "MAX_ORG_ID",
    "SANDBOX_SUFFIX",
    "check_org_id",
    "is_sandbox_world",
    "organisation",
    "world",
]

SANDBOX_SUFFIX = "~sandbox"
MAX_ORG_ID = 200 - len(SANDBOX_SUFFIX)
"""Tenant ids are at most 200 characters: the organisation's id leaves room for the
suffix."""


def check_org_id(org_id: str) -> str:
    """``org_id`` if it may name an organisation, else ``ValidationError``."""
    if not org_id.strip():
        raise ValidationError.at("$.org_id", "must not be blank")
    if "~" in org_id:
        raise ValidationError.at("$.org_id", "'~' is reserved (a sandbox is 'org~sandbox')")
    if len(org_id) > MAX_ORG_ID:
        raise ValidationError.at("$.org_id", f"at most {MAX_ORG_ID} characters")
    return org_id


def world(org_id: str, sandbox: bool) -> str:
    """The tenant id an organisation's key acts in: the organisation, or its sandbox."""
    return f"{org_id}{SANDBOX_SUFFIX}" if sandbox else org_id


def is_sandbox_world(tenant_id: str) -> bool:
    return tenant_id.endswith(SANDBOX_SUFFIX)


def organisation(tenant_id: str) -> str:
    """The organisation a tenant id belongs to (what its people know it as)."""
    return tenant_id.removesuffix(SANDBOX_SUFFIX)
