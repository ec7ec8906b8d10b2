"""The SQL schema. The invariants the engine keeps are also constraints here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    event,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..lifecycle import Status
from ..models import AssignmentStatus, Kind, RiskTier

__all__ = [
    "answer_samples",
    "assignments",
    "audit_heads",
    "audit_log",
    "decision_tokens",
    "ledger_accounts",
    "ledger_entries",
    "ledger_holds",
    "ledger_payouts",
    "ledger_postings",
    "ledger_settlements",
    "metadata",
    "policies",
    "reviewer_groups",
    "standing_approvals",
    "task_events",
    "tasks",
    "worker_stats",
    "workers",
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
Seq = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


def _one_of(column: str, values: type[Status] | type[Kind] | type[RiskTier]) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({listed})"


tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("task_type", String(100), nullable=False),
    Column("title", String(500), nullable=False),
    Column("instructions", Text),
    Column("payload", Json, nullable=False),
    Column("risk_tier", String(16), nullable=False),
    Column("risk_rank", Integer, nullable=False),
    Column("sla_seconds", Integer, nullable=False),
    Column("payout_currency", String(8)),
    Column("payout_minor", BigInteger),
    Column("redundancy", Integer, nullable=False),
    Column("open_slots", Integer, nullable=False),
    Column("extra_slots", Integer, nullable=False),
    Column("max_answers", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("backup_at", Stamp),
    Column("gold_answer", Json),
    Column("require_estimate", Boolean, nullable=False),
    Column("idempotency_key", String(256)),
    Column("request_fingerprint", String(64)),
    Column("callback_url", Text),
    Column("meta", Json, nullable=False),
    Column("action", Json),
    Column("agent_reasoning", Text),
    Column("confidence", Float),
    Column("allowed_decisions", Json, nullable=False),
    Column("output_schema", Json),
    Column("status", String(20), nullable=False),
    Column("sandbox", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("output", Json),
    Column("verification", Json),
    Column("failure_reason", Text),
    Column("estimate", Json),
    Column("reached_at", Json, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=False),
    Column("version", Integer, nullable=False),
    Column("answer_ttl_seconds", Integer),
    Column("redact", Json),
    Column("policy", Json),
    Column("reviewer_groups", Json),  # the policy's groups, for the queue; NULL: anyone
    Column("batch_id", String(200)),
    Column("escalate_at", Stamp),  # when the rule's next reviewer group is let in
    UniqueConstraint("org_id", "idempotency_key", name="uq_tasks_org_idempotency_key"),
    CheckConstraint(_one_of("status", Status), name="status"),
    CheckConstraint(_one_of("kind", Kind), name="kind"),
    CheckConstraint(_one_of("risk_tier", RiskTier), name="risk_tier"),
    CheckConstraint("redundancy BETWEEN 1 AND 25", name="redundancy"),
    CheckConstraint(
        "open_slots >= 0 AND open_slots <= redundancy + extra_slots", name="open_slots"
    ),
    CheckConstraint("extra_slots IN (0, 1)", name="extra_slots"),
    CheckConstraint("max_answers >= redundancy AND max_answers <= 25", name="max_answers"),
    CheckConstraint("attempt >= 1 AND attempt <= max_attempts", name="attempts"),
    CheckConstraint("sla_seconds >= 1", name="sla_seconds"),
    CheckConstraint("version >= 1", name="version"),
    CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="conf"),
    CheckConstraint(
        "(payout_currency IS NULL AND payout_minor IS NULL)"
        " OR (payout_currency IN ('USD', 'SATS') AND payout_minor >= 0)",
        name="payout",
    ),
    CheckConstraint(
        "(kind = 'review' AND action IS NOT NULL AND output_schema IS NULL)"
        " OR (kind = 'judgment' AND action IS NULL AND output_schema IS NOT NULL)",
        name="kind_fields",
    ),
    CheckConstraint("expires_at > created_at", name="expires_after_created"),
    Index("ix_tasks_org_id_id", "org_id", "id"),
    Index("ix_tasks_queue", "org_id", "status", "expires_at"),
    Index("ix_tasks_due", "status", "expires_at"),
    Index("ix_tasks_backup", "status", "backup_at"),
    Index("ix_tasks_batch", "org_id", "batch_id"),
    Index("ix_tasks_escalate", "status", "escalate_at"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("worker_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("claimed_at", Stamp, nullable=False),
    Column("submitted_at", Stamp),
    Column("released_at", Stamp),
    Column("output", Json),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s.value}'" for s in AssignmentStatus) + ")", name="status"
    ),
    CheckConstraint("status != 'submitted' OR submitted_at IS NOT NULL", name="submitted_at"),
    Index("ix_assignments_worker", "worker_id", "status"),
)

task_events = Table(
    "task_events",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("task_id", String(36), ForeignKey("tasks.id"), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("at", Stamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("actor_role", String(20), nullable=False),
    Column("event", String(32), nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20), nullable=False),
    Column("reason", Text),
    Column("data", Json, nullable=False),
    Index("ix_task_events_task", "task_id", "seq"),
    Index("ix_task_events_org", "org_id", "seq"),
    sqlite_autoincrement=True,
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", String(600), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("org_id", String(200)),
    Column("owner", String(200)),
    Column("floored", Boolean, nullable=False),
    Column("balance", BigInteger, nullable=False),
    CheckConstraint("NOT floored OR balance >= 0", name="floor"),
    Index("ix_ledger_accounts_owner", "org_id", "kind", "currency", "owner"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("org_id", String(200)),
    Column("task_id", String(36)),
    Column("currency", String(8), nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("body", Json, nullable=False),
    CheckConstraint("volume >= 0", name="volume"),
    Index("ix_ledger_postings_spend", "org_id", "kind", "currency", "created_at"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    # the posting's row comes after its entries (so its insert can check they balance)
    Column(
        "posting_id",
        String(300),
        ForeignKey("ledger_postings.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(600), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", Stamp, nullable=False),
    CheckConstraint("amount != 0", name="amount"),
    Index("ix_ledger_entries_account", "account_id", "seq"),
    Index("ix_ledger_entries_posting", "posting_id"),
    sqlite_autoincrement=True,
)

ledger_holds = Table(
    "ledger_holds",
    metadata,
    Column("task_id", String(36), ForeignKey("tasks.id"), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("reward_minor", BigInteger, nullable=False),
    Column("slots", Integer, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("fee_minimum", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint(
        "reward_minor >= 0 AND fee_minor >= 0 AND slots >= 1 AND fee_bps >= 0 AND fee_minimum >= 0",
        name="terms",
    ),
    CheckConstraint("status IN ('held', 'resolved')", name="status"),
)

ledger_settlements = Table(
    "ledger_settlements",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("due_at", Stamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount"),
    CheckConstraint("status IN ('pending', 'frozen', 'settled', 'reversed')", name="status"),
    Index("ix_ledger_settlements_due", "status", "due_at"),
    Index("ix_ledger_settlements_task", "task_id"),
)

ledger_payouts = Table(
    "ledger_payouts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("key", String(256), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("rail", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", String(500)),
    Column("failure", Text),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("org_id", "worker_id", "key", name="uq_ledger_payouts_key"),
    CheckConstraint(
        "amount_minor > 0 AND fee_minor >= 0 AND fee_minor <= amount_minor", name="amounts"
    ),
    CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
    Index("ix_ledger_payouts_status", "status"),
)


workers = Table(
    "workers",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("skills", Json, nullable=False),
    Column("trust_tier", String(16), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("cost_minor", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint(_one_of("trust_tier", RiskTier), name="trust_tier"),
    CheckConstraint("capacity >= 1 AND cost_minor >= 0", name="limits"),
)

worker_stats = Table(
    "worker_stats",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("task_type", String(100), primary_key=True),
    Column("worker_id", String(200), primary_key=True),  # "*": everyone on this task type
    Column("answers", Integer, nullable=False),
    Column("gold_total", Integer, nullable=False),
    Column("gold_correct", Integer, nullable=False),
    Column("agreed", Integer, nullable=False),
    Column("disagreed", Integer, nullable=False),
    Column("durations", Json, nullable=False),
    Column("labels", Json, nullable=False),
    Column("updated_at", Stamp),
    Column("version", Integer, nullable=False),
    CheckConstraint(
        "gold_correct <= gold_total AND gold_total <= answers AND agreed + disagreed <= answers",
        name="counts",
    ),
)


answer_samples = Table(
    "answer_samples",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("org_id", String(200), nullable=False),
    Column("task_type", String(100), nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("seconds", Float),
    Column("label", Text),
    Column("at", Stamp, nullable=False),
    Index("ix_answer_samples_type", "org_id", "task_type", "seq"),
    sqlite_autoincrement=True,
)


# ---------------------------------------------------------------- policies and authority

policies = Table(
    "policies",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),  # every version kept: append-only
    Column("rules", Json, nullable=False),
    Column("updated_at", Stamp),
    Column("updated_by", String(200)),
    CheckConstraint("version >= 1", name="version"),
)

reviewer_groups = Table(
    "reviewer_groups",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("members", Json, nullable=False),
    Column("description", Text),
    Column("version", Integer, nullable=False),
)

standing_approvals = Table(
    "standing_approvals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(200), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("when_expr", Text),
    Column("args", Json),
    Column("granted_by", String(200), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("rule_id", String(100)),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=False),
    Column("revoked_at", Stamp),
    Column("revoked_by", String(200)),
    Column("version", Integer, nullable=False),
    CheckConstraint("(when_expr IS NULL) != (args IS NULL)", name="scope"),
    CheckConstraint("expires_at > created_at", name="lifetime"),
    Index("ix_standing_approvals_tool", "org_id", "tool", "expires_at"),
)

decision_tokens = Table(
    "decision_tokens",
    metadata,
    Column("id", String(36), primary_key=True),  # a token's id: spent once
    Column("org_id", String(200), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("spent_at", Stamp, nullable=False),
)

# ---------------------------------------------------------------- the audit chains

audit_log = Table(
    "audit_log",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(64), nullable=False),
    Column("task_id", String(64)),
    Column("at", Stamp, nullable=False),
    Column("body", Text, nullable=False),  # the canonical JSON the hash covers
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("seq >= 1", name="seq"),
    Index("ix_audit_log_task", "org_id", "task_id"),
)

org_config = Table(
    "org_config",
    metadata,
    # One row per organisation with a policy, a group or a standing approval: a number the
    # database's own triggers move on at every change of those (see trigger_statements), so
    # a store may keep them in memory and read just this number per new review.
    Column("org_id", String(200), primary_key=True),
    Column("version", BigInteger, nullable=False),
    CheckConstraint("version >= 1", name="version"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("org_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# ---------------------------------------------------------------- triggers

APPEND_ONLY = (
    "task_events",
    "ledger_postings",
    "ledger_entries",
    "audit_log",
    "policies",
    "decision_tokens",
)


CONFIGURATION = ("policies", "reviewer_groups", "standing_approvals")
"""The tables whose every change moves their organisation's ``org_config.version`` on."""

# Organisations configured before org_config existed get their row (idempotent).
_CONFIG_BACKFILL = (
    "INSERT INTO org_config (org_id, version) SELECT org_id, 1 FROM ("
    + " UNION ".join(f"SELECT org_id FROM {table}" for table in CONFIGURATION)
    + ") AS configured WHERE true ON CONFLICT (org_id) DO NOTHING"
)
_CONFIG_BUMP = (
    "INSERT INTO org_config (org_id, version) VALUES ({org}, 1) "
    "ON CONFLICT (org_id) DO UPDATE SET version = org_config.version + 1"
)


def config_statements(dialect: str) -> list[str]:
    """Triggers that move ``org_config.version`` on at every insert, update or delete of
    a policy, a reviewer group or a standing approval, whoever writes it, and the
    backfill of organisations configured before them (idempotent SQL)."""
    if dialect == "sqlite":
        statements = [
            f"CREATE TRIGGER IF NOT EXISTS {table}_config_{op.lower()} AFTER {op} ON {table} "
            f"BEGIN {_CONFIG_BUMP.format(org=('OLD' if op == 'DELETE' else 'NEW') + '.org_id')}"
            "; END"
            for table in CONFIGURATION
            for op in ("INSERT", "UPDATE", "DELETE")
        ]
    elif dialect == "postgresql":
        statements = [
            "CREATE OR REPLACE FUNCTION handrail_config_changed() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ DECLARE org text; BEGIN "
            "IF TG_OP = 'DELETE' THEN org := OLD.org_id; ELSE org := NEW.org_id; END IF; "
            f"{_CONFIG_BUMP.format(org='org')}; RETURN NULL; END $$"
        ]
        statements += [
            f"CREATE OR REPLACE TRIGGER {table}_config AFTER INSERT OR UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION handrail_config_changed()"
            for table in CONFIGURATION
        ]
    else:
        return []
    return [*statements, _CONFIG_BACKFILL]


def trigger_statements(dialect: str) -> list[str]:
    """The database's own guards, as idempotent SQL: history, postings and entries are
    append-only, and a posting row (written after its entries) is refused unless the
    entries sum to zero; and the configuration version (``config_statements``)."""
    return _guard_statements(dialect) + config_statements(dialect)


def _guard_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        statements = [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            for table in APPEND_ONLY
            for op in ("UPDATE", "DELETE")
        ]
        statements.append(
            "CREATE TRIGGER IF NOT EXISTS ledger_postings_balanced BEFORE INSERT ON "
            "ledger_postings WHEN (SELECT COALESCE(SUM(amount), 1) FROM ledger_entries "
            "WHERE posting_id = NEW.id) != 0 "
            "BEGIN SELECT RAISE(ABORT, 'a posting must balance'); END"
        )
        return statements
    if dialect == "postgresql":
        statements = [
            "CREATE OR REPLACE FUNCTION handrail_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; "
            "END $$",
            "CREATE OR REPLACE FUNCTION handrail_balanced() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN IF (SELECT COALESCE(SUM(amount), 1) FROM ledger_entries "
            "WHERE posting_id = NEW.id) <> 0 THEN "
            "RAISE EXCEPTION 'posting % does not balance', NEW.id; END IF; RETURN NEW; END $$",
        ]
        statements += [
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION handrail_append_only()"
            for table in APPEND_ONLY
        ]
        statements.append(
            "CREATE OR REPLACE TRIGGER ledger_postings_balanced BEFORE INSERT ON "
            "ledger_postings FOR EACH ROW EXECUTE FUNCTION handrail_balanced()"
        )
        return statements
    return []


@event.listens_for(metadata, "after_create")
def _add_triggers(target: MetaData, connection: Any, **_: Any) -> None:
    for statement in trigger_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)
