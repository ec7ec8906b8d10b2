"""Governance: the organisation's policy (read, save, explain), reviewer groups, standing
approvals, and who may decide a review. A new review's policy verdict is given here too
(:func:`decide_by_policy`)."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from .._retry import retry_conflicts
from .._steps import Step
from ..authority import (
    authority_problem,
    earning_problem,
    eligible,
    standing_cover,
    system_decision,
)
from ..errors import ConcurrencyConflict, NotEligible, NotFound, ValidationError
from ..ids import new_id
from ..models import (
    Decision,
    DecisionType,
    Kind,
    Principal,
    ReasonCode,
    Role,
    RuleOutcome,
    Task,
    TaskSpec,
)
from ..policy import CompiledPolicy, Explanation, Policy, ReviewerGroup, StandingApproval, Subject
from ..store import PolicyContext, Transaction
from ..validation import parse
from ._kernel import Kernel
from ._moves import system_decides


class GovernanceMixin(Kernel):
    """Policies, reviewer groups, standing approvals, and who may decide."""

    async def _authorize(self, tx: Transaction, task: Task, reviewer: str) -> None:
        """Refuse (``NotEligible``) a reviewer the review's policy does not allow, and a
        worker who would earn from a task it created, funds or approved the estimate of."""
        if task.kind is not Kind.REVIEW:
            why = earning_problem(task, reviewer)
            if why is not None:
                raise NotEligible(reviewer, task.id, why, f"work on task {task.id}")
            return
        needs_groups = task.policy is not None and bool(task.policy.groups)
        groups = await tx.list_groups(task.org_id) if needs_groups else []
        why = authority_problem(task, reviewer, groups)
        if why is not None:
            raise NotEligible(reviewer, task.id, why)

    async def _grant_standing(
        self, tx: Transaction, task: Task, reviewer: str, decision: Decision, now: datetime
    ) -> None:
        assert task.action is not None and decision.remember is not None
        remember = decision.remember
        approval = StandingApproval(
            id=new_id(),
            org_id=task.org_id,
            tool=task.action.name,
            when=remember.when,
            args=None if remember.when else task.action.args,
            granted_by=reviewer,
            task_id=task.id,
            rule_id=task.policy.rule_id if task.policy else None,
            created_at=now,
            expires_at=now + timedelta(seconds=remember.ttl_seconds),
        )
        await tx.put_standing(approval, expected_version=None)
        await tx.append_audit(
            [
                self._note(
                    org_id=task.org_id,
                    at=now,
                    kind="standing.granted",
                    actor=reviewer,
                    task_id=task.id,
                    data={
                        "standing_approval_id": approval.id,
                        "tool": approval.tool,
                        "when": approval.when,
                        "exact_args": approval.args is not None,
                        "expires_at": approval.expires_at.isoformat(),
                    },
                )
            ]
        )

    async def get_policy(self, principal: Principal) -> Policy:
        """The organisation's policy (an empty one, version 0, before any is saved)."""
        self._require(principal, Role.ADMIN, "read the policy")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.get_policy(principal.org_id) or Policy()

    async def put_policy(
        self,
        principal: Principal,
        policy: Policy | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Policy:
        """Save a new version of the organisation's policy (admins). With
        ``expected_version``, refuse (``ConcurrencyConflict``) if another was saved since.
        New reviews are judged by it at once; reviews already posted keep their terms."""
        self._require(principal, Role.ADMIN, "change the policy")
        wanted = parse(Policy, policy)
        rules = [r.model_dump(mode="json", exclude_defaults=True) for r in wanted.rules]
        digest = hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()

        async def attempt() -> Policy:
            async with self.store.transaction() as tx:
                current = await tx.get_policy(principal.org_id)
                version = current.version if current else 0
                if expected_version is not None and expected_version != version:
                    raise ConcurrencyConflict("policy", f"{principal.org_id} v{version}")
                saved = wanted.model_copy(
                    update={
                        "version": version + 1,
                        "updated_at": self.clock.now(),
                        "updated_by": principal.id,
                    }
                )
                await tx.put_policy(principal.org_id, saved)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="policy.updated",
                            actor=principal.id,
                            data={
                                "version": saved.version,
                                "rules": len(saved.rules),
                                "sha256": digest,
                                "key_id": principal.key_id,
                            },
                        )
                    ]
                )
                return saved

        if expected_version is not None:
            return await attempt()
        return await retry_conflicts(attempt)

    async def explain_policy(
        self,
        principal: Principal,
        review: TaskSpec | Mapping[str, Any],
        *,
        policy: Policy | Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Dry run: what the policy (the saved one, or ``policy``) makes of ``review`` (a
        review task's spec), which rule matched and why, rule by rule. Nothing is saved."""
        self._require(principal, Role.ADMIN, "explain the policy")
        spec = parse(TaskSpec, review)
        if spec.action is None:
            raise ValidationError.at("$.action", "policies judge review tasks: give an action")
        if policy is not None:
            compiled = CompiledPolicy(parse(Policy, policy, "$.policy"))
        else:
            async with self.store.transaction(readonly=True) as tx:
                compiled = CompiledPolicy(await tx.get_policy(principal.org_id) or Policy())
        return compiled.evaluate(Subject.of(spec), explain=True)

    # ------------------------------------------------------------------ reviewer groups

    async def put_group(
        self,
        principal: Principal,
        name: str,
        members: Collection[str],
        description: str | None = None,
    ) -> ReviewerGroup:
        """Create or replace a reviewer group (admins)."""
        self._require(principal, Role.ADMIN, "manage reviewer groups")
        wanted = parse(
            ReviewerGroup,
            {
                "org_id": principal.org_id,
                "name": name,
                "members": list(members),
                "description": description,
            },
        )

        async def attempt() -> ReviewerGroup:
            async with self.store.transaction() as tx:
                current = {g.name: g for g in await tx.list_groups(principal.org_id)}.get(name)
                stored = wanted.model_copy(
                    update={"version": current.version + 1 if current else 1}
                )
                await tx.put_group(stored, expected_version=current.version if current else None)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="group.updated",
                            actor=principal.id,
                            data={"group": name, "members": list(stored.members)},
                        )
                    ]
                )
                return stored

        return await retry_conflicts(attempt)

    async def list_groups(self, principal: Principal) -> builtins.list[ReviewerGroup]:
        self._require(principal, Role.ADMIN, "list reviewer groups")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.list_groups(principal.org_id)

    async def delete_group(self, principal: Principal, name: str) -> None:
        """Remove a reviewer group (admins): rules naming it then find nobody in it."""
        self._require(principal, Role.ADMIN, "manage reviewer groups")

        async def attempt() -> None:
            async with self.store.transaction() as tx:
                current = {g.name: g for g in await tx.list_groups(principal.org_id)}.get(name)
                if current is None:
                    raise NotFound("reviewer group", name)
                await tx.delete_group(principal.org_id, name, expected_version=current.version)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="group.deleted",
                            actor=principal.id,
                            data={"group": name},
                        )
                    ]
                )

        await retry_conflicts(attempt)

    # ------------------------------------------------------------------ standing approvals

    async def list_standing(
        self, principal: Principal, *, active: bool = True
    ) -> builtins.list[StandingApproval]:
        """Standing approvals: an admin sees the organisation's, a reviewer its own;
        ``active`` leaves out revoked and expired ones."""
        if not principal.has(Role.ADMIN):
            self._require(principal, Role.REVIEWER, "list standing approvals")
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.list_standing(
                principal.org_id, active_at=self.clock.now() if active else None
            )
        if principal.has(Role.ADMIN):
            return found
        return [a for a in found if a.granted_by == principal.id]

    async def revoke_standing(
        self, principal: Principal, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        """Revoke a standing approval (its granter, or an admin). Revoking it again
        changes nothing."""

        async def attempt() -> StandingApproval:
            async with self.store.transaction() as tx:
                current = await tx.get_standing(principal.org_id, approval_id)
                if current is None:
                    raise NotFound("standing approval", approval_id)
                if current.granted_by != principal.id:
                    self._require(principal, Role.ADMIN, "revoke others' standing approvals")
                if current.revoked_at is not None:
                    return current
                now = self.clock.now()
                revoked = current.model_copy(
                    update={
                        "revoked_at": now,
                        "revoked_by": principal.id,
                        "version": current.version + 1,
                    }
                )
                await tx.put_standing(revoked, expected_version=current.version)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            at=now,
                            kind="standing.revoked",
                            actor=principal.id,
                            task_id=current.task_id,
                            data={"standing_approval_id": approval_id, "reason": reason},
                        )
                    ]
                )
                return revoked

        return await retry_conflicts(attempt)


def decide_by_policy(step: Step, found: Explanation, context: PolicyContext) -> None:
    """Decide a new review at once when the policy says so: a rule allows or denies it,
    its rule's groups hold too few eligible reviewers for the quorum, or a standing
    approval covers it. Otherwise it waits for people."""
    task, terms, rule, now = step.task, found.terms, found.rule_id, step.now
    decision: Decision | None = None
    why = ""
    if found.outcome is RuleOutcome.ALLOW:
        why = f"policy rule {rule} allows it"
        decision = system_decision(
            DecisionType.APPROVE, found.message or why, ReasonCode.POLICY_ALLOW, rule, now
        )
    elif found.outcome is RuleOutcome.DENY:
        why = f"policy rule {rule} denies it"
        decision = system_decision(
            DecisionType.REJECT, found.message or why, ReasonCode.POLICY_DENY, rule, now
        )
    else:
        allowed = eligible(task, terms, context.groups)
        if allowed is not None and len(allowed) < terms.quorum:
            why = (
                f"policy rule {rule} needs {terms.quorum} approval(s) from "
                f"{', '.join(terms.groups)}: {len(allowed)} eligible reviewer(s)"
            )
            decision = system_decision(
                DecisionType.REJECT, why, ReasonCode.NO_ELIGIBLE_REVIEWER, rule, now
            )
        elif terms.standing and terms.quorum == 1 and task.redundancy == 1:
            cover = standing_cover(task, context.standing, allowed)
            if cover is not None:
                why = f"standing approval {cover.id} by {cover.granted_by} covers it"
                decision = system_decision(
                    DecisionType.APPROVE,
                    why,
                    ReasonCode.STANDING_APPROVAL,
                    rule,
                    now,
                    reviewer_id=cover.granted_by,
                    standing_id=cover.id,
                )
    if decision is not None:
        system_decides(step, decision, why)
