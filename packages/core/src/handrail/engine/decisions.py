"""Answers and decisions: submit, decide, a quorum's votes, and verification of what came in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._jsonpatch import diff
from .._jsonschema import validate_instance
from .._redact import unmask_args
from .._steps import Step, already_answered, answered, check_decision
from ..authority import members, sealed, tally
from ..errors import EditDenied, InvalidTransition, NotAssigned, ValidationError
from ..lifecycle import Event, Status
from ..models import (
    AssignmentStatus,
    Decision,
    DecisionType,
    Kind,
    Principal,
    ReviewPolicy,
    Role,
    RuleOutcome,
    StageResult,
    Task,
    Verification,
)
from ..policy import Subject
from ..store import Transaction
from ..tokens import TokenClaims
from ..validation import parse
from ._moves import SYSTEM, made_with, released
from .work import WorkMixin


class DecisionsMixin(WorkMixin):
    """Answers and decisions, votes, and their verification."""

    async def submit(self, principal: Principal, task_id: str, output: Any) -> Task:
        """Answer a judgment task. The answer must fit ``output_schema``.

        A worker that holds no slot on the task claims one in the same transaction (one
        commit: claim, submit and, with the last answer, verification), under every check
        :meth:`claim` makes (``NotEligible``, a worker profile's limits, estimate first).
        The answer is checked first: one that does not fit raises ``ValidationError`` and
        claims nothing. A task with no free slot for the worker (taken by others, answered
        by it already, or past taking) raises ``NotAssigned``. This is the rule on every
        transport: the HTTP route only calls this.

        Submitting the same answer again changes nothing. On a review task, ``output`` is
        read as a decision (see :meth:`decide`, which claims the same way).
        """

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.kind is Kind.REVIEW:
                decision = parse(Decision, output)
                await self._decide_op(step, tx, principal, decision)
                return
            if already_answered(task, principal.id, output):
                return
            validate_instance(output, task.output_schema, "$.output", "output does not fit")
            if task.active_assignment(principal.id) is None and not _open_to(task, principal.id):
                raise NotAssigned(task.id, principal.id)
            await self._take_slot(step, tx, principal.id)
            await self._answer(step, tx, principal.id, output, made_with(principal))

        return await self._refusable(
            principal,
            task_id,
            "submit answers",
            lambda: self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER),
        )

    async def decide(
        self, principal: Principal, task_id: str, decision: Decision | Mapping[str, Any]
    ) -> Task:
        """Decide a review task: claim (when the reviewer holds no slot), record the
        decision, verify.

        On a task with one slot, posted → assigned → submitted → verified happens in one
        transaction. The claim makes every check :meth:`claim` makes, and a review with
        nothing left to claim refuses as a claim does (``InvalidTransition``); a decision
        that is not allowed or does not fit claims nothing. The same decision again by the
        same reviewer changes nothing.
        """
        parsed = parse(Decision, decision)

        async def op(step: Step, tx: Transaction) -> None:
            await self._decide_op(step, tx, principal, parsed)

        return await self._refusable(
            principal,
            task_id,
            "decide reviews",
            lambda: self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER),
        )

    async def _decide_op(
        self,
        step: Step,
        tx: Transaction,
        principal: Principal,
        decision: Decision,
        token: TokenClaims | None = None,
    ) -> None:
        task = step.task
        worker = principal.id
        if task.kind is not Kind.REVIEW:
            raise ValidationError.at("$.kind", "decisions are for review tasks; submit an answer")
        # what the engine fills in is never taken from the caller
        decision = decision.model_copy(
            update={
                "reason_code": None,
                "rule_id": None,
                "standing_approval_id": None,
                "reviewers": (),
                "patch": None,
            }
        )
        check_decision(task, decision)
        await self._authorize(tx, task, worker)
        if decision.type is DecisionType.MODIFY:
            decision = await self._checked_edit(tx, task, worker, decision)
        if decision.expires_at is not None and decision.expires_at <= step.now:
            raise ValidationError.at("$.expires_at", "must be in the future")
        if decision.remember is not None:
            _check_rememberable(task)
        stamped = decision.model_copy(update={"reviewer_id": worker, "decided_at": step.now})
        done = task.assignment_of(worker)
        if done is not None and done.status is AssignmentStatus.SUBMITTED:
            if Decision.model_validate(done.output).content() == decision.content():
                return  # the same decision again: nothing to do
            raise InvalidTransition(
                task.id, task.status.value, "decide", detail=f"{worker} has already decided"
            )
        await self._take_slot(step, tx, worker)
        used = made_with(principal, token)
        output = stamped.model_dump(mode="json")
        if task.policy is not None and task.policy.quorum > 1:
            self._vote(step, worker, output, used)
        else:
            await self._answer(step, tx, worker, output, used)
        if decision.remember is not None and step.task.status is Status.VERIFIED:
            final = step.task.decision
            if final is not None and final.is_approval and final.reviewer_id == worker:
                await self._grant_standing(tx, step.task, worker, decision, step.now)

    async def _checked_edit(
        self, tx: Transaction, task: Task, reviewer: str, decision: Decision
    ) -> Decision:
        """A modify, re-checked: masked values the reviewer sent back restored, the edited
        action evaluated against the policy again (a rule that would deny it, or that asks
        for other reviewers or a larger quorum, refuses the edit), and the edit recorded as
        a JSON Patch against the proposed arguments."""
        assert task.action is not None and decision.args is not None
        action = task.action
        args = unmask_args(decision.args, action.args, task.redact)
        tool = decision.tool if decision.tool not in (None, action.name) else None
        context = await tx.policy_context(
            task.org_id,
            tool or action.name,
            self.clock.now(),
            known_version=self._known_version(task.org_id),
        )
        compiled = self._compiled_for(task.org_id, context)
        if compiled.policy.rules:
            found = compiled.evaluate(Subject.of(task, tool=tool, args=args))
            terms = task.policy or ReviewPolicy()
            if found.outcome is RuleOutcome.DENY:
                why = f"policy rule {found.rule_id} denies the edited action"
                raise EditDenied(
                    task.id, found.rule_id, why + (f": {found.message}" if found.message else "")
                )
            if found.outcome is RuleOutcome.ASK and found.rule_id != terms.rule_id:
                need = found.terms
                if need.quorum > terms.quorum:
                    why = (
                        f"the edited action falls under policy rule {found.rule_id}, which "
                        f"needs {need.quorum} approvals"
                    )
                    raise EditDenied(task.id, found.rule_id, why)
                if need.groups:
                    groups = await tx.list_groups(task.org_id)
                    if reviewer not in members(groups, need.groups):
                        why = (
                            f"the edited action falls under policy rule {found.rule_id}, "
                            f"which only members of {', '.join(need.groups)} may approve"
                        )
                        raise EditDenied(task.id, found.rule_id, why)
        return decision.model_copy(
            update={"args": args, "tool": tool, "patch": tuple(diff(action.args, args))}
        )

    def _vote(self, step: Step, worker: str, output: Any, used: dict[str, Any]) -> None:
        """Record one reviewer's vote on a quorum review and settle it when the votes do:
        approved or rejected (verified by the quorum), or, with no voter left and nothing
        settled, to manual review."""
        task = step.task
        votes = answered(task, worker, step.now, output)
        voted = task.model_copy(update={"assignments": votes})
        count = tally(voted, step.now)
        data = {"worker_id": worker, "output": output, **used}
        if count.state == "open":
            step.move(Event.SUBMIT, Status.ASSIGNED, assignments=voted.assignments, data=data)
            return
        step.move(
            Event.SUBMIT,
            Status.SUBMITTED,
            assignments=released(voted, step.now),
            data=data,
        )
        if count.decision is None:  # stuck: a person sorts it out
            stage = StageResult(
                name="quorum", verdict="uncertain", score=50, reasons=(count.summary,)
            )
            verdict = Verification(
                outcome="manual_review", score=50, stages=(stage,), reasons=(count.summary,)
            )
            step.move(
                Event.ESCALATE,
                verification=verdict,
                reason=count.summary,
                data={"score": 50, "stages": ["quorum"]},
                role=SYSTEM,
            )
            return
        final = sealed(step.task, count.decision, step.now)
        shown = final.model_dump(mode="json")
        stage = StageResult(name="quorum", verdict="pass", score=100, reasons=(count.summary,))
        step.move(
            Event.VERIFY,
            output=shown,
            verification=Verification(outcome="verified", score=100, stages=(stage,), output=shown),
            reason=count.summary,
            data={"score": 100, "stages": ["quorum"], "reviewers": list(final.reviewers)},
            role=SYSTEM,
        )

    async def _answer(
        self,
        step: Step,
        tx: Transaction,
        worker: str,
        output: Any,
        used: dict[str, Any] | None = None,
    ) -> None:
        task = step.task
        assignments = answered(task, worker, step.now, output)
        answers = sum(1 for a in assignments if a.status is AssignmentStatus.SUBMITTED)
        complete = answers >= task.redundancy
        if complete:  # anyone still working on it (a backup) is let go
            assignments = released(task.model_copy(update={"assignments": assignments}), step.now)
        step.move(
            Event.SUBMIT,
            Status.SUBMITTED if complete else Status.ASSIGNED,
            assignments=assignments,
            data={"worker_id": worker, "output": output, **(used or {})},
        )
        if complete:
            verification = await self.verifier.verify(tx, step.task)
            self._apply_verification(step, verification)

    def _apply_verification(self, step: Step, v: Verification) -> None:
        task = step.task
        if v.outcome == "repost" and task.attempt >= task.max_attempts:
            v = v.model_copy(update={"outcome": "failed"})  # no attempts left to repost into
        if v.outcome == "more_answers" and len(task.answers()) >= task.max_answers:
            v = v.model_copy(update={"outcome": "manual_review"})  # at the cap: a person decides
        data = {"score": v.score, "stages": [s.name for s in v.stages]}
        reason = "; ".join(v.reasons) or None
        if v.outcome == "verified" and task.kind is Kind.REVIEW and v.output is not None:
            final = sealed(task, Decision.model_validate(v.output), step.now)
            v = v.model_copy(update={"output": final.model_dump(mode="json")})
        if v.outcome == "verified":
            step.move(Event.VERIFY, verification=v, output=v.output, data=data, role=SYSTEM)
        elif v.outcome == "manual_review":
            step.move(Event.ESCALATE, verification=v, reason=reason, data=data, role=SYSTEM)
        elif v.outcome == "failed":
            step.move(
                Event.FAIL,
                verification=v,
                failure_reason=reason or "verification failed",
                reason=reason,
                data=data,
                role=SYSTEM,
            )
        elif v.outcome == "more_answers":  # the answers stay; one more slot opens
            step.move(
                Event.REPOST,
                verification=v,
                redundancy=step.task.redundancy + 1,
                reason=reason,
                data={**data, "more_answers": True},
                role=SYSTEM,
            )
        else:  # repost: a new attempt; the answers are set aside (they stay in the history)
            step.move(
                Event.REPOST,
                verification=v,
                assignments=released(step.task, step.now, include_answers=True),
                attempt=step.task.attempt + 1,
                reason=reason,
                data=data,
                role=SYSTEM,
            )


def _open_to(task: Task, worker: str) -> bool:
    """Whether ``worker``, holding no slot on ``task``, could claim one now: the task is
    open with a free slot, and the worker has not answered it already."""
    if task.status not in (Status.POSTED, Status.ASSIGNED) or task.open_slots <= 0:
        return False
    earlier = task.assignment_of(worker)
    return earlier is None or earlier.status is not AssignmentStatus.SUBMITTED


def _check_rememberable(task: Task) -> None:
    """A standing approval may come only from a review one reviewer decides alone, under
    a rule that allows them."""
    terms = task.policy
    if terms is not None and not terms.standing:
        raise ValidationError.at(
            "$.remember", f"policy rule {terms.rule_id} does not allow standing approvals"
        )
    if (terms is not None and terms.quorum > 1) or task.redundancy > 1:
        raise ValidationError.at(
            "$.remember", "a review that needs several reviewers cannot be remembered"
        )
