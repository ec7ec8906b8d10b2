"""Tasks and events to and from SQL rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..audit import AuditEntry
from ..clock import utc
from ..ledger._model import EntryRecord, Hold, PayoutRecord, Settlement
from ..models import RISK_RANK, Task, TaskEvent
from ..money import Money
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import WorkerProfile, WorkerStats

__all__ = [
    "assignment_rows",
    "audit_from",
    "entry_from",
    "event_from",
    "event_row",
    "group_from",
    "group_row",
    "hold_from",
    "hold_row",
    "payout_from",
    "payout_row",
    "policy_from",
    "settlement_from",
    "settlement_row",
    "standing_from",
    "standing_row",
    "stats_from",
    "stats_row",
    "task_from",
    "task_row",
    "worker_from",
    "worker_row",
]


def task_row(task: Task) -> dict[str, Any]:
    j = task.model_dump(
        mode="json",
        include={
            "payload",
            "metadata",
            "action",
            "allowed_decisions",
            "output_schema",
            "output",
            "verification",
            "estimate",
            "reached_at",
            "gold_answer",
            "policy",
        },
    )
    return {
        "id": task.id,
        "org_id": task.org_id,
        "kind": task.kind.value,
        "task_type": task.task_type,
        "title": task.title,
        "instructions": task.instructions,
        "payload": j["payload"],
        "risk_tier": task.risk_tier.value,
        "risk_rank": RISK_RANK[task.risk_tier],
        "sla_seconds": task.sla_seconds,
        "payout_currency": task.payout.currency.value if task.payout else None,
        "payout_minor": task.payout.minor if task.payout else None,
        "redundancy": task.redundancy,
        "open_slots": max(task.open_slots, 0),
        "extra_slots": task.extra_slots,
        "max_answers": task.max_answers,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "backup_at": task.backup_at,
        "escalate_at": task.escalate_at,
        "gold_answer": j["gold_answer"],
        "require_estimate": task.require_estimate,
        "idempotency_key": task.idempotency_key,
        "request_fingerprint": task.request_fingerprint,
        "callback_url": task.callback_url,
        "meta": j["metadata"],
        "batch_id": task.batch_id,
        "action": j["action"],
        "agent_reasoning": task.agent_reasoning,
        "confidence": task.confidence,
        "allowed_decisions": j["allowed_decisions"],
        "output_schema": j["output_schema"],
        "status": task.status.value,
        "sandbox": task.sandbox,
        "created_by": task.created_by,
        "output": j["output"],
        "verification": j["verification"],
        "failure_reason": task.failure_reason,
        "estimate": j["estimate"],
        "reached_at": j["reached_at"],
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "expires_at": task.expires_at,
        "version": task.version,
        "answer_ttl_seconds": task.answer_ttl_seconds,
        "redact": list(task.redact) or None,
        "policy": j["policy"],
        "reviewer_groups": list(task.policy.groups) if task.policy and task.policy.groups else None,
    }


def assignment_rows(task: Task) -> list[dict[str, Any]]:
    return [
        {
            "task_id": task.id,
            "position": i,
            "worker_id": a.worker_id,
            "status": a.status.value,
            "claimed_at": a.claimed_at,
            "submitted_at": a.submitted_at,
            "released_at": a.released_at,
            "output": a.output,
        }
        for i, a in enumerate(task.assignments)
    ]


def _maybe_utc(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def task_from(row: Any, held: Sequence[Any]) -> Task:
    m = row._mapping
    payout = (
        {"currency": m["payout_currency"], "minor": m["payout_minor"]}
        if m["payout_currency"] is not None
        else None
    )
    return Task.model_validate(
        {
            "id": m["id"],
            "org_id": m["org_id"],
            "kind": m["kind"],
            "task_type": m["task_type"],
            "title": m["title"],
            "instructions": m["instructions"],
            "payload": m["payload"],
            "risk_tier": m["risk_tier"],
            "sla_seconds": m["sla_seconds"],
            "payout": payout,
            "redundancy": m["redundancy"],
            "extra_slots": m["extra_slots"],
            "max_answers": m["max_answers"],
            "attempt": m["attempt"],
            "max_attempts": m["max_attempts"],
            "backup_at": _maybe_utc(m["backup_at"]),
            "escalate_at": _maybe_utc(m["escalate_at"]),
            "gold_answer": m["gold_answer"],
            "require_estimate": m["require_estimate"],
            "idempotency_key": m["idempotency_key"],
            "request_fingerprint": m["request_fingerprint"],
            "callback_url": m["callback_url"],
            "metadata": m["meta"],
            "batch_id": m["batch_id"],
            "action": m["action"],
            "agent_reasoning": m["agent_reasoning"],
            "confidence": m["confidence"],
            "allowed_decisions": m["allowed_decisions"],
            "output_schema": m["output_schema"],
            "status": m["status"],
            "sandbox": m["sandbox"],
            "created_by": m["created_by"],
            "output": m["output"],
            "verification": m["verification"],
            "failure_reason": m["failure_reason"],
            "estimate": m["estimate"],
            "reached_at": m["reached_at"],
            "created_at": utc(m["created_at"]),
            "updated_at": utc(m["updated_at"]),
            "expires_at": utc(m["expires_at"]),
            "version": m["version"],
            "answer_ttl_seconds": m["answer_ttl_seconds"],
            "redact": m["redact"] or (),
            "policy": m["policy"],
            "assignments": [
                {
                    "worker_id": a.worker_id,
                    "status": a.status,
                    "claimed_at": utc(a.claimed_at),
                    "submitted_at": _maybe_utc(a.submitted_at),
                    "released_at": _maybe_utc(a.released_at),
                    "output": a.output,
                }
                for a in held
            ],
        }
    )


def event_row(e: TaskEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "task_id": e.task_id,
        "org_id": e.org_id,
        "at": e.at,
        "actor": e.actor,
        "actor_role": e.actor_role,
        "event": e.event.value,
        "from_status": e.from_status.value if e.from_status else None,
        "to_status": e.to_status.value,
        "reason": e.reason,
        "data": e.data,
    }


def event_from(row: Any) -> TaskEvent:
    m = dict(row._mapping)
    m["at"] = utc(m["at"])
    return TaskEvent.model_validate(m)


def policy_from(row: Any) -> Policy:
    m = row._mapping
    return Policy.model_validate(
        {
            "rules": m["rules"],
            "version": m["version"],
            "updated_at": _maybe_utc(m["updated_at"]),
            "updated_by": m["updated_by"],
        }
    )


def group_row(group: ReviewerGroup) -> dict[str, Any]:
    return {
        "org_id": group.org_id,
        "name": group.name,
        "members": list(group.members),
        "description": group.description,
        "version": group.version,
    }


def group_from(row: Any) -> ReviewerGroup:
    return ReviewerGroup.model_validate(dict(row._mapping))


def standing_row(a: StandingApproval) -> dict[str, Any]:
    return {
        "id": a.id,
        "org_id": a.org_id,
        "tool": a.tool,
        "when_expr": a.when,
        "args": a.args,
        "granted_by": a.granted_by,
        "task_id": a.task_id,
        "rule_id": a.rule_id,
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "revoked_at": a.revoked_at,
        "revoked_by": a.revoked_by,
        "version": a.version,
    }


def standing_from(row: Any) -> StandingApproval:
    m = dict(row._mapping)
    m["when"] = m.pop("when_expr")
    for stamp in ("created_at", "expires_at", "revoked_at"):
        m[stamp] = _maybe_utc(m[stamp])
    return StandingApproval.model_validate(m)


def audit_from(row: Any) -> AuditEntry:
    """An entry as its hashed body says it (the row's own ``seq`` places it)."""
    m = row._mapping
    body = json.loads(m["body"])
    return AuditEntry.model_validate(
        {**body, "seq": m["seq"], "prev_hash": m["prev_hash"], "hash": m["hash"]}
    )


# ---------------------------------------------------------------- ledger records


def hold_row(h: Hold) -> dict[str, Any]:
    return {
        "task_id": h.task_id,
        "org_id": h.org_id,
        "currency": h.reward.currency.value,
        "reward_minor": h.reward.minor,
        "slots": h.slots,
        "fee_minor": h.fee.minor,
        "fee_bps": h.fee_bps,
        "fee_minimum": h.fee_minimum,
        "status": h.status.value,
        "version": h.version,
    }


def hold_from(row: Any) -> Hold:
    m = row._mapping
    return Hold(
        task_id=m["task_id"],
        org_id=m["org_id"],
        reward=Money(currency=m["currency"], minor=m["reward_minor"]),
        slots=m["slots"],
        fee=Money(currency=m["currency"], minor=m["fee_minor"]),
        fee_bps=m["fee_bps"],
        fee_minimum=m["fee_minimum"],
        status=m["status"],
        version=m["version"],
    )


def settlement_row(s: Settlement) -> dict[str, Any]:
    return {
        "id": s.id,
        "org_id": s.org_id,
        "worker_id": s.worker_id,
        "task_id": s.task_id,
        "currency": s.amount.currency.value,
        "amount_minor": s.amount.minor,
        "due_at": s.due_at,
        "status": s.status.value,
        "version": s.version,
    }


def settlement_from(row: Any) -> Settlement:
    m = row._mapping
    return Settlement(
        id=m["id"],
        org_id=m["org_id"],
        worker_id=m["worker_id"],
        task_id=m["task_id"],
        amount=Money(currency=m["currency"], minor=m["amount_minor"]),
        due_at=utc(m["due_at"]),
        status=m["status"],
        version=m["version"],
    )


def payout_row(p: PayoutRecord) -> dict[str, Any]:
    return {
        "id": p.id,
        "org_id": p.org_id,
        "worker_id": p.worker_id,
        "key": p.key,
        "currency": p.amount.currency.value,
        "amount_minor": p.amount.minor,
        "fee_minor": p.fee.minor,
        "rail": p.rail,
        "status": p.status.value,
        "reference": p.reference,
        "failure": p.failure,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "version": p.version,
    }


def payout_from(row: Any) -> PayoutRecord:
    m = row._mapping
    return PayoutRecord(
        id=m["id"],
        org_id=m["org_id"],
        worker_id=m["worker_id"],
        key=m["key"],
        amount=Money(currency=m["currency"], minor=m["amount_minor"]),
        fee=Money(currency=m["currency"], minor=m["fee_minor"]),
        rail=m["rail"],
        status=m["status"],
        reference=m["reference"],
        failure=m["failure"],
        created_at=utc(m["created_at"]),
        updated_at=utc(m["updated_at"]),
        version=m["version"],
    )


def entry_from(row: Any) -> EntryRecord:
    m = row._mapping
    return EntryRecord(
        seq=m["seq"],
        posting_id=m["posting_id"],
        kind=m["kind"],
        account_id=m["account_id"],
        amount=m["amount"],
        created_at=utc(m["created_at"]),
    )


def worker_row(w: WorkerProfile) -> dict[str, Any]:
    return {
        "org_id": w.org_id,
        "id": w.id,
        "skills": sorted(w.skills),
        "trust_tier": w.trust_tier.value,
        "capacity": w.capacity,
        "cost_minor": w.cost_minor,
        "active": w.active,
        "version": w.version,
    }


def worker_from(row: Any) -> WorkerProfile:
    return WorkerProfile.model_validate(dict(row._mapping))


def stats_row(s: WorkerStats) -> dict[str, Any]:
    return {
        "org_id": s.org_id,
        "task_type": s.task_type,
        "worker_id": s.worker_id,
        "answers": s.answers,
        "gold_total": s.gold_total,
        "gold_correct": s.gold_correct,
        "agreed": s.agreed,
        "disagreed": s.disagreed,
        "durations": list(s.durations),
        "labels": s.labels,
        "updated_at": s.updated_at,
        "version": s.version,
    }


def stats_from(row: Any) -> WorkerStats:
    m = dict(row._mapping)
    m["updated_at"] = _maybe_utc(m["updated_at"])
    return WorkerStats.model_validate(m)
