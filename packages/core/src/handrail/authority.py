"""Who may decide, what a quorum decides, and the decisions the system makes: the store-free
pieces of the engine's policy enforcement."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .lifecycle import BACKUP_AT
from .models import (
    Decision,
    DecisionType,
    ReasonCode,
    ReviewPolicy,
    StageResult,
    Task,
    Verification,
)
from .policy import Explanation, ReviewerGroup, StandingApproval

__all__ = [
    "Tally",
    "authority_problem",
    "earning_problem",
    "eligible",
    "groups_of",
    "members",
    "policy_verification",
    "sealed",
    "standing_cover",
    "system_decision",
    "tally",
    "widened",
    "with_terms",
]


def members(groups: Sequence[ReviewerGroup], names: Collection[str]) -> set[str]:
    """Everyone in any of the groups ``names`` (unknown names contribute nobody)."""
    return {m for g in groups if g.name in names for m in g.members}


def groups_of(groups: Sequence[ReviewerGroup], reviewer: str) -> list[str]:
    """The names of the groups ``reviewer`` belongs to."""
    return [g.name for g in groups if reviewer in g.members]


def eligible(task: Task, terms: ReviewPolicy, groups: Sequence[ReviewerGroup]) -> set[str] | None:
    """Who may decide ``task``: its rule's groups' members less its requester; None when
    any reviewer of the organisation may (no groups named)."""
    if not terms.groups:
        return None
    return members(groups, terms.groups) - {task.created_by}


def earning_problem(task: Task, worker: str) -> str | None:
    """Why ``worker`` may not work on (and so earn from) ``task``: nobody earns from a task
    it created (its creator funds it: the hold is made when it posts it), nor from one
    whose estimate it approved. None: it may."""
    if worker == task.created_by:
        return "no one works on a task it created (and funds)"
    if task.estimate is not None and task.estimate.approved_by == worker:
        return "no one works on a task whose estimate it approved"
    return None


def authority_problem(task: Task, reviewer: str, groups: Sequence[ReviewerGroup]) -> str | None:
    """Why ``reviewer`` may not decide review ``task`` (None: it may)."""
    if reviewer == task.created_by:
        return "a requester cannot decide its own review"
    terms = task.policy
    if terms is not None and terms.groups and reviewer not in members(groups, terms.groups):
        named = ", ".join(terms.groups)
        return f"the policy lets only members of {named} decide it"
    return None


def with_terms(task: Task, found: Explanation) -> Task:
    """A new review as the policy shapes it: its rule's snapshot, a deadline no later than
    the rule's timeout (a single attempt then), the rule's fields masked, and one slot per
    possible voter when a quorum is wanted."""
    terms = found.terms
    update: dict[str, Any] = {"policy": terms}
    if found.redact:
        update["redact"] = tuple(dict.fromkeys((*task.redact, *found.redact)))
    timeout = found.timeout_seconds
    if timeout is not None:
        sla = min(task.sla_seconds, timeout)
        update |= {
            "sla_seconds": sla,
            "max_attempts": 1,
            "attempt": 1,
            "expires_at": task.created_at + timedelta(seconds=sla),
            "backup_at": task.created_at + timedelta(seconds=sla * BACKUP_AT),
        }
    if terms.quorum > 1:
        update |= {"redundancy": terms.slots, "max_answers": terms.slots}
    if terms.escalate_to and terms.escalate_after_seconds is not None:
        update["escalate_at"] = task.created_at + timedelta(seconds=terms.escalate_after_seconds)
    return task.model_copy(update=update)  # typed values, and a posted task's invariants hold


def widened(terms: ReviewPolicy) -> ReviewPolicy:
    """The review's terms with the next group of ``escalate_to`` let in."""
    group, *rest = terms.escalate_to
    return terms.model_copy(update={"groups": (*terms.groups, group), "escalate_to": tuple(rest)})


def sealed(task: Task, decision: Decision, now: datetime) -> Decision:
    """A final decision as recorded: its rule, and the shortest shelf life among the
    task's, its rule's and the reviewer's own (an approval only)."""
    terms = task.policy
    update: dict[str, Any] = {}
    if terms is not None and decision.rule_id is None and terms.rule_id is not None:
        update["rule_id"] = terms.rule_id
    if decision.type in (DecisionType.APPROVE, DecisionType.MODIFY):
        lives = [task.answer_ttl_seconds, terms.answer_ttl_seconds if terms else None]
        ends = [now + timedelta(seconds=s) for s in lives if s is not None]
        if decision.expires_at is not None:
            ends.append(decision.expires_at)
        if ends:
            update["expires_at"] = min(ends)
    else:
        update["expires_at"] = None
    update["remember"] = None
    return decision.model_copy(update=update) if update else decision


def system_decision(
    kind: DecisionType,
    message: str,
    code: ReasonCode,
    rule_id: str | None,
    now: datetime,
    *,
    reviewer_id: str | None = None,
    standing_id: str | None = None,
) -> Decision:
    """A decision the system makes, with its reason code and the rule (or reviewer, for a
    standing approval) as decider."""
    return Decision(
        type=kind,
        message=message,
        reviewer_id=reviewer_id or (f"rule:{rule_id}" if rule_id else "system"),
        decided_at=now,
        reason_code=code,
        rule_id=rule_id,
        standing_approval_id=standing_id,
    )


def policy_verification(decision: Decision, why: str) -> Verification:
    """What a decision the system made stands on, as the task's verification."""
    stage = StageResult(name="policy", verdict="pass", score=100, reasons=(why,))
    return Verification(
        outcome="verified", score=100, stages=(stage,), output=decision.model_dump(mode="json")
    )


def standing_cover(
    task: Task, approvals: Sequence[StandingApproval], allowed: set[str] | None
) -> StandingApproval | None:
    """The oldest standing approval that covers ``task``'s action, granted by someone who
    may decide it (in ``allowed``, None: anyone) and is not its requester."""
    assert task.action is not None
    for approval in approvals:
        granter = approval.granted_by
        if granter == task.created_by or (allowed is not None and granter not in allowed):
            continue
        if approval.covers(task.action.name, task.action.args):
            return approval
    return None


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a quorum stands: ``approved`` or ``rejected`` (with the decision that stands),
    ``open`` (more votes may settle it) or ``stuck`` (no more voters, nothing settled)."""

    state: Literal["approved", "rejected", "open", "stuck"]
    decision: Decision | None
    summary: str


def tally(task: Task, now: datetime) -> Tally:
    """Count a quorum review's decisions: any reject (or respond) ends it as rejected
    unless the rule waives the veto (then the first side to reach the quorum wins);
    approvals count together only when they approve the same action (approve as proposed,
    or modify with the same tool and arguments)."""
    terms = task.policy
    need = terms.quorum if terms is not None else 1
    veto = terms.veto if terms is not None else True
    votes = sorted((a for a in task.answers()), key=lambda a: (a.submitted_at or now, a.worker_id))
    decisions = [Decision.model_validate(a.output) for a in votes]
    noes = [d for d in decisions if d.type in (DecisionType.REJECT, DecisionType.RESPOND)]
    if noes and (veto or len(noes) >= need):
        first = noes[0]
        signers = tuple(d.reviewer_id or "?" for d in (noes[:1] if veto else noes))
        why = "vetoed by " + signers[0] if veto else f"{len(noes)} of {need} rejected"
        return Tally("rejected", first.model_copy(update={"reviewers": signers}), why)
    groups: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.type in (DecisionType.APPROVE, DecisionType.MODIFY):
            groups.setdefault(d.action_key(), []).append(d)
    for same in groups.values():
        if len(same) >= need:
            first, last = same[0], same[-1]
            signers = tuple(d.reviewer_id or "?" for d in same)
            final = first.model_copy(
                update={"reviewer_id": last.reviewer_id, "decided_at": now, "reviewers": signers}
            )
            return Tally("approved", final, f"{len(same)} of {need} approved")
    if task.open_slots > 0:
        return Tally("open", None, f"{len(decisions)} vote(s), {need} approvals needed")
    return Tally("stuck", None, f"the approvals disagree; none reached {need}")
