"""The server's own tables, in the same database as the engine's."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "api_keys",
    "compat_secrets",
    "feedback",
    "idempotency",
    "metadata",
    "notify_attempts",
    "notify_channels",
    "notify_contacts",
    "notify_outbox",
    "orgs",
    "uploads",
    "web_sessions",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_outbox",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Stamp = DateTime(timezone=True)

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("created_at", Stamp, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), ForeignKey("orgs.id"), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("prefix", String(24), nullable=False),
    Column("role", String(16), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("sandbox", Boolean, nullable=False),
    Column("name", String(200)),
    Column("created_at", Stamp, nullable=False),
    Column("revoked_at", Stamp),
    CheckConstraint("role IN ('admin', 'requester', 'reviewer')", name="role"),
    Index("ix_api_keys_org", "org_id"),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status_code", Integer),
    Column("body", Json),
    Column("created_at", Stamp, nullable=False),
    CheckConstraint("state IN ('in_flight', 'done')", name="state"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("events", Json, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", Text),
    Column("created_at", Stamp, nullable=False),
    # how deliveries look and are signed (see handrail_server.webhooks.Scheme)
    Column("scheme", String(32), nullable=False, server_default="standard"),
    # set: only the events of the task with this idempotency key (a per-task callback)
    Column("task_key", String(256)),
    Index("ix_webhook_endpoints_org", "org_id", "enabled"),
    Index("ix_webhook_endpoints_task", "org_id", "task_key", unique=True),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", String(36), primary_key=True),  # the webhook-id: stable across retries
    Column("org_id", String(200), nullable=False),
    Column("endpoint_id", String(36), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Stamp, nullable=False),
    Column("lease_until", Stamp),
    Column("last_error", Text),
    Column("created_at", Stamp, nullable=False),
    Column("delivered_at", Stamp),
    CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
    Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
    Index("ix_webhook_outbox_endpoint", "endpoint_id", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("outbox_id", String(36), ForeignKey("webhook_outbox.id"), nullable=False),
    Column("endpoint_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Column("at", Stamp, nullable=False),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "at"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("task_id", String(36)),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Stamp, nullable=False),
    CheckConstraint("size >= 0", name="size"),
    UniqueConstraint("org_id", "id", name="uq_uploads_org_id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("rating", Integer),
    Column("comment", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Stamp, nullable=False),
    CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
    Index("ix_feedback_task", "org_id", "task_id"),
)

compat_secrets = Table(
    "compat_secrets",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("dialect", String(32), primary_key=True),
    Column("secret", String(200), nullable=False),
    Column("created_at", Stamp, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # SHA-256 of the session id the cookie carries: a database read gives no usable session
    Column("id_hash", String(64), primary_key=True),
    Column("key_id", String(36), ForeignKey("api_keys.id"), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=False),
    Index("ix_web_sessions_key", "key_id"),
    Index("ix_web_sessions_expires", "expires_at"),
)

# ---------------------------------------------------------------- notifications

notify_channels = Table(
    "notify_channels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("events", Json, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("webhook_url", Text),  # slack: the incoming-webhook URL (a secret)
    Column("signing_secret", String(200)),  # slack: checks interaction requests
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    CheckConstraint("kind IN ('email', 'slack')", name="kind"),
    Index("ix_notify_channels_org", "org_id", "enabled"),
)

notify_contacts = Table(
    "notify_contacts",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("reviewer_id", String(200), primary_key=True),
    Column("email", String(320)),
    Column("slack_user_id", String(64)),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_notify_contacts_slack", "org_id", "slack_user_id", unique=True),
)

notify_outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("channel_id", String(36), ForeignKey("notify_channels.id"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("recipient", String(200)),  # a reviewer (email); NULL: the channel (Slack)
    Column("payload", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Stamp, nullable=False),
    Column("lease_until", Stamp),
    Column("last_error", Text),
    Column("created_at", Stamp, nullable=False),
    Column("delivered_at", Stamp),
    CheckConstraint("state IN ('pending', 'delivered', 'dead', 'skipped')", name="state"),
    Index("ix_notify_outbox_due", "state", "next_attempt_at"),
    Index("ix_notify_outbox_task", "org_id", "task_id"),
    Index("ix_notify_outbox_channel", "channel_id", "created_at"),
)

notify_attempts = Table(
    "notify_attempts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("outbox_id", String(36), ForeignKey("notify_outbox.id"), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("channel_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Column("at", Stamp, nullable=False),
    Index("ix_notify_attempts_outbox", "outbox_id", "at"),
    Index("ix_notify_attempts_org", "org_id", "at"),
)
