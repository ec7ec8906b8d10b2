"""Policies, reviewer groups and standing approvals (the engine enforces them all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from handrail import Kind, TaskSpec
from handrail.policy import Explanation, Policy, ReviewerGroup, StandingApproval

from ..deps import PrincipalDep, SessionDep
from ..schemas import ExplainIn, GroupIn, GroupName, PolicyIn, Reason, StandingList, TaskId

router = APIRouter(prefix="/v1", tags=["policies"])


@router.get("/policy", response_model=Policy)
async def get_policy(session: SessionDep) -> Policy:
    """The organisation's policy (admins): its rules in order, and its version."""
    return await session.get_policy()


@router.put("/policy", response_model=Policy)
async def put_policy(body: PolicyIn, session: SessionDep) -> Policy:
    """Save a new version of the policy (admins). New reviews are judged by it at once.
    With ``expected_version``, another save since then makes this one 409."""
    return await session.put_policy({"rules": body.rules}, expected_version=body.expected_version)


@router.post("/policy/explain", response_model=Explanation)
async def explain_policy(body: ExplainIn, session: SessionDep) -> Explanation:
    """Dry run (admins): which rule a review would match, and why, rule by rule. Nothing is
    created. ``policy`` tries a draft instead of the saved policy."""
    spec = TaskSpec(
        kind=Kind.REVIEW,
        action=body.action,
        task_type=body.task_type,
        risk_tier=body.risk_tier,
        payload=body.payload,
        metadata=body.metadata,
        confidence=body.confidence,
    )
    draft = {"rules": body.policy.rules} if body.policy is not None else None
    return await session.explain_policy(spec, policy=draft)


@router.get("/reviewer-groups", response_model=list[ReviewerGroup])
async def list_groups(session: SessionDep) -> list[ReviewerGroup]:
    return await session.list_groups()


@router.put("/reviewer-groups/{name}", response_model=ReviewerGroup)
async def put_group(
    name: GroupName, body: GroupIn, session: SessionDep, principal: PrincipalDep
) -> ReviewerGroup:
    """Create or replace a reviewer group (admins): its members are principal ids."""
    return await session.put_group(name, body.members, body.description)


@router.delete("/reviewer-groups/{name}", status_code=204)
async def delete_group(name: GroupName, session: SessionDep) -> None:
    await session.delete_group(name)


@router.get("/standing-approvals", response_model=StandingList)
async def list_standing(
    session: SessionDep,
    active: Annotated[bool, Query(description="leave out revoked and expired ones")] = True,
) -> dict[str, Any]:
    """Standing approvals: the organisation's (admins) or the caller's own (reviewers)."""
    return {"data": await session.list_standing(active=active)}


@router.post("/standing-approvals/{approval_id}/revoke", response_model=StandingApproval)
async def revoke_standing(
    approval_id: TaskId,
    session: SessionDep,
    body: Annotated[Reason | None, Body()] = None,
) -> StandingApproval:
    """Revoke a standing approval (its granter, or an admin): it decides nothing more."""
    return await session.revoke_standing(approval_id, body.reason if body else None)
