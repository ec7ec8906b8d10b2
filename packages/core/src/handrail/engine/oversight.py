"""Oversight: an admin's manual review (verify, fail) and the settling of disputes."""

from __future__ import annotations

from typing import Any

from .._jsonschema import validate_instance
from .._steps import Step, need_text
from ..authority import sealed
from ..errors import InvalidTransition, ValidationError
from ..lifecycle import Event, Status
from ..models import Decision, Kind, Principal, Role, Task
from ..store import Transaction
from ..validation import parse
from ._moves import made_with
from .governance import GovernanceMixin


class OversightMixin(GovernanceMixin):
    """Manual review and disputes (admins)."""

    async def verify(
        self, principal: Principal, task_id: str, output: Any = None, reason: str | None = None
    ) -> Task:
        """Pass a task in manual review. ``output`` picks the answer (it must fit the
        schema); without it the answers must agree."""

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.status is not Status.MANUAL_REVIEW:
                raise InvalidTransition(task.id, task.status.value, "verify")
            final = output
            if final is None:
                final = task.agreed_output()
                if final is None:
                    raise ValidationError.at("$.output", "answers differ: choose the output")
            elif task.kind is Kind.REVIEW:  # the checker decides: it must be allowed to
                await self._authorize(tx, task, principal.id)
                final = parse(Decision, final, "$.output").model_dump(mode="json")
            else:
                validate_instance(final, task.output_schema, "$.output", "output does not fit")
            if task.kind is Kind.REVIEW:
                chosen = Decision.model_validate(final)
                if chosen.reviewer_id is None:
                    chosen = chosen.model_copy(
                        update={"reviewer_id": principal.id, "decided_at": step.now}
                    )
                final = sealed(task, chosen, step.now).model_dump(mode="json")
            step.move(Event.VERIFY, output=final, reason=reason, data=made_with(principal))

        return await self._refusable(
            principal,
            task_id,
            "verify tasks",
            lambda: self._mutate(principal, task_id, Event.VERIFY, op, Role.ADMIN),
            role=Role.ADMIN,
        )

    async def fail(self, principal: Principal, task_id: str, reason: str) -> Task:
        """Fail a task in manual review."""
        self._require(principal, Role.ADMIN, "fail tasks")
        reason = need_text(reason, "$.reason")

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.status is not Status.MANUAL_REVIEW:
                raise InvalidTransition(step.task.id, step.task.status.value, "fail")
            step.move(Event.FAIL, reason=reason, failure_reason=reason)

        return await self._mutate(principal, task_id, Event.FAIL, op, Role.ADMIN)

    async def resolve_dispute(
        self, principal: Principal, task_id: str, *, uphold: bool, reason: str
    ) -> Task:
        """Settle a dispute: ``uphold`` keeps the result verified, otherwise it fails."""
        self._require(principal, Role.ADMIN, "resolve disputes")
        reason = need_text(reason, "$.reason")
        event = Event.UPHOLD if uphold else Event.OVERTURN

        async def op(step: Step, tx: Transaction) -> None:
            if uphold:
                step.move(event, reason=reason)
            else:
                step.move(event, reason=reason, failure_reason=reason)

        return await self._mutate(principal, task_id, event, op, Role.ADMIN)
