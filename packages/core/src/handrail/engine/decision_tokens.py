"""Decision tokens: single-use links (in an email or a chat message) that let one reviewer
decide one review, minted by admins and redeemed under every rule a decision obeys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .._steps import Step, enum_value
from ..errors import NotFound, TokenRejected, ValidationError
from ..lifecycle import Event
from ..models import Decision, DecisionType, Kind, Principal, Role, Task
from ..store import Transaction
from ..tokens import DecisionTokens, TokenClaims
from ..validation import parse
from .decisions import DecisionsMixin


class DecisionTokensMixin(DecisionsMixin):
    """Minting and redeeming decision tokens."""

    def _token_signer(self) -> DecisionTokens:
        if self.tokens is None:
            raise TokenRejected("unavailable", "this engine has no decision-token secret")
        return self.tokens

    async def mint_decision_token(
        self,
        principal: Principal,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        """A single-use token that lets ``reviewer_id`` decide review ``task_id`` (and only
        as ``decision``, when given) until ``ttl_seconds`` from now: what an email or chat
        link carries (admins, or the server's notification worker). The reviewer must be allowed to
        decide the review now; redeeming checks again."""
        self._require(principal, Role.ADMIN, "mint decision tokens")
        signer = self._token_signer()
        if not 1 <= ttl_seconds <= 30 * 24 * 3600:
            raise ValidationError.at("$.ttl_seconds", "must be between 1 second and 30 days")
        kind = enum_value(DecisionType, decision, "$.decision") if decision else None
        async with self.store.transaction() as tx:
            task = await tx.get_task(principal.org_id, task_id)
            if task is None:
                raise NotFound("task", task_id)
            if task.kind is not Kind.REVIEW:
                raise ValidationError.at("$.task_id", "decision tokens are for review tasks")
            if kind is not None and kind not in task.allowed_decisions:
                raise ValidationError.at("$.decision", f"the task does not allow {kind.value}")
            await self._authorize(tx, task, reviewer_id)
            now = self.clock.now()
            token, claims = signer.mint(
                org_id=task.org_id,
                task_id=task.id,
                reviewer_id=reviewer_id,
                expires_at=now + timedelta(seconds=ttl_seconds),
                decision=kind,
            )
            await tx.append_audit(
                [
                    self._note(
                        org_id=task.org_id,
                        at=now,
                        kind="token.minted",
                        actor=principal.id,
                        task_id=task.id,
                        data={
                            "token_id": claims.id,
                            "reviewer_id": reviewer_id,
                            "decision": kind.value if kind else None,
                            "expires_at": claims.expires_at.isoformat(),
                        },
                    )
                ]
            )
        return token, claims

    async def redeem_decision_token(
        self,
        token: str,
        decision: Decision | Mapping[str, Any],
        *,
        task_id: str | None = None,
    ) -> Task:
        """Decide a review with a decision token: as the reviewer it names, under every
        rule a decision by that reviewer obeys. ``task_id`` (the task the link was for)
        must match the token's. The token is spent with the decision; one that is forged,
        expired, spent, for another task or another decision raises ``TokenRejected`` and
        changes nothing."""
        signer = self._token_signer()
        claims = signer.read(token, self.clock.now())
        reviewer = Principal(
            org_id=claims.org_id, id=claims.reviewer_id, roles=frozenset({Role.REVIEWER})
        )
        parsed = parse(Decision, decision)

        async def op(step: Step, tx: Transaction) -> None:
            if await tx.token_spent(claims.id):
                raise TokenRejected("used", "this decision token was used already")
            await tx.spend_token(claims.org_id, claims.id, claims.task_id, step.now)
            await self._decide_op(step, tx, reviewer, parsed, claims)

        async def run() -> Task:
            if task_id is not None and task_id != claims.task_id:
                raise TokenRejected("wrong_task", "this decision token is for another task")
            if claims.decision is not None and parsed.type is not claims.decision:
                raise TokenRejected(
                    "wrong_decision", f"this decision token can only {claims.decision.value}"
                )
            return await self._mutate(reviewer, claims.task_id, Event.SUBMIT, op, Role.REVIEWER)

        return await self._refusable(reviewer, claims.task_id, "decide by token", run)
