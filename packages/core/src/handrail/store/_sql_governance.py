"""The store's SQL for policies and authority: versioned policies, reviewer groups, standing
approvals and decision tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select

from ..errors import ConcurrencyConflict
from ..policy import Policy, ReviewerGroup, StandingApproval
from ._protocol import PolicyContext
from ._sql_ledger import _put
from ._sql_rows import group_from, group_row, policy_from, standing_from, standing_row
from ._sql_tables import (
    decision_tokens,
    org_config,
    policies,
    reviewer_groups,
    standing_approvals,
)

_LATEST_POLICY = (
    select(policies)
    .where(policies.c.org_id == bindparam("org_id"))
    .order_by(policies.c.version.desc())
    .limit(1)
)


def get_policy(conn: Connection, org_id: str) -> Policy | None:
    row = conn.execute(_LATEST_POLICY, {"org_id": org_id}).first()
    return policy_from(row) if row is not None else None


def put_policy(conn: Connection, org_id: str, policy: Policy) -> None:
    current = get_policy(conn, org_id)
    if policy.version != (current.version + 1 if current else 1):
        raise ConcurrencyConflict("policy", org_id)
    row = {
        "org_id": org_id,
        "version": policy.version,
        "rules": [r.model_dump(mode="json") for r in policy.rules],
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by,
    }
    _put(conn, policies, ("org_id", "version"), row, None, "policy")


_GROUPS = (
    select(reviewer_groups)
    .where(reviewer_groups.c.org_id == bindparam("org_id"))
    .order_by(reviewer_groups.c.name)
)
_LIVE_STANDING = (
    select(standing_approvals)
    .where(
        standing_approvals.c.org_id == bindparam("org_id"),
        standing_approvals.c.tool == bindparam("tool"),
        standing_approvals.c.revoked_at.is_(None),
        standing_approvals.c.expires_at > bindparam("now"),
    )
    .order_by(standing_approvals.c.id)
)


def list_groups(conn: Connection, org_id: str) -> list[ReviewerGroup]:
    return [group_from(r) for r in conn.execute(_GROUPS, {"org_id": org_id}).all()]


def put_group(conn: Connection, group: ReviewerGroup, expected_version: int | None) -> None:
    keys = ("org_id", "name")
    _put(conn, reviewer_groups, keys, group_row(group), expected_version, "reviewer group")


def delete_group(conn: Connection, org_id: str, name: str, expected_version: int) -> None:
    gone = conn.execute(
        delete(reviewer_groups).where(
            reviewer_groups.c.org_id == org_id,
            reviewer_groups.c.name == name,
            reviewer_groups.c.version == expected_version,
        )
    )
    if gone.rowcount != 1:
        raise ConcurrencyConflict("reviewer group", f"{org_id}/{name}")


def get_standing(conn: Connection, org_id: str, approval_id: str) -> StandingApproval | None:
    row = conn.execute(
        select(standing_approvals).where(
            standing_approvals.c.id == approval_id, standing_approvals.c.org_id == org_id
        )
    ).first()
    return standing_from(row) if row is not None else None


def list_standing(
    conn: Connection, org_id: str, tool: str | None, active_at: datetime | None
) -> list[StandingApproval]:
    query = select(standing_approvals).where(standing_approvals.c.org_id == org_id)
    if tool is not None:
        query = query.where(standing_approvals.c.tool == tool)
    if active_at is not None:
        query = query.where(
            standing_approvals.c.revoked_at.is_(None), standing_approvals.c.expires_at > active_at
        )
    rows = conn.execute(query.order_by(standing_approvals.c.id)).all()
    return [standing_from(r) for r in rows]


def put_standing(
    conn: Connection, approval: StandingApproval, expected_version: int | None
) -> None:
    row = standing_row(approval)
    _put(conn, standing_approvals, ("id",), row, expected_version, "standing approval")


@dataclass(frozen=True)
class OrgConfig:
    """An organisation's configuration as of its ``org_config.version``: its newest policy,
    its groups, and its unrevoked standing approvals by tool (expired ones are left out
    when used, by the time of the review)."""

    version: int
    policy: Policy | None
    groups: tuple[ReviewerGroup, ...]
    standing: dict[str, tuple[StandingApproval, ...]]


Configs = dict[str, OrgConfig]
"""A store's copies of organisations' configurations, by organisation."""
CONFIGS_KEPT = 1024

_CONFIG_VERSION = select(org_config.c.version).where(org_config.c.org_id == bindparam("org_id"))
_UNREVOKED = (
    select(standing_approvals)
    .where(
        standing_approvals.c.org_id == bindparam("org_id"),
        standing_approvals.c.revoked_at.is_(None),
    )
    .order_by(standing_approvals.c.id)
)
_UNCONFIGURED = OrgConfig(0, None, (), {})


def _load_config(conn: Connection, org_id: str, version: int) -> OrgConfig:
    by_tool: dict[str, list[StandingApproval]] = {}
    for row in conn.execute(_UNREVOKED, {"org_id": org_id}).all():
        approval = standing_from(row)
        by_tool.setdefault(approval.tool, []).append(approval)
    return OrgConfig(
        version,
        get_policy(conn, org_id),
        tuple(list_groups(conn, org_id)),
        {tool: tuple(found) for tool, found in by_tool.items()},
    )


Versions = dict[str, int]
"""The configuration versions one transaction has read, by organisation (0: never
configured)."""


def config_version(conn: Connection, versions: Versions, org_id: str) -> int:
    """The organisation's ``org_config.version``, read once per transaction (``versions``
    is the transaction's own): 0 for an organisation never configured."""
    held = versions.get(org_id)
    if held is None:
        found = conn.execute(_CONFIG_VERSION, {"org_id": org_id}).scalar()
        held = versions[org_id] = 0 if found is None else int(found)
    return held


def org_config_of(conn: Connection, configs: Configs, versions: Versions, org_id: str) -> OrgConfig:
    """The organisation's configuration: one statement (its version) when ``configs``
    holds that version already, else read whole and kept there. The version is read in
    the caller's transaction, so a change committed before it (a revoked standing
    approval, say) is in what this returns."""
    version = config_version(conn, versions, org_id)
    if version == 0:
        return _UNCONFIGURED
    held = configs.get(org_id)
    if held is None or held.version != version:
        held = _load_config(conn, org_id, version)
        if len(configs) >= CONFIGS_KEPT:
            configs.clear()
        configs[org_id] = held
    return held


def policy_context(
    conn: Connection,
    configs: Configs,
    versions: Versions,
    org_id: str,
    tool: str,
    now: datetime,
    known_version: int | None,
) -> PolicyContext:
    config = org_config_of(conn, configs, versions, org_id)
    version = config.policy.version if config.policy is not None else 0
    live: Sequence[StandingApproval] = config.standing.get(tool, ())
    return PolicyContext(
        version=version,
        policy=None if version in (0, known_version) else config.policy,
        groups=list(config.groups),
        standing=[a for a in live if a.active(now)],
    )


def token_spent(conn: Connection, token_id: str) -> bool:
    query = select(decision_tokens.c.id).where(decision_tokens.c.id == token_id)
    return conn.execute(query).first() is not None


def spend_token(conn: Connection, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
    row = {"id": token_id, "org_id": org_id, "task_id": task_id, "spent_at": at}
    _put(conn, decision_tokens, ("id",), row, None, "decision token")
