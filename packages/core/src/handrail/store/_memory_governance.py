"""A memory transaction's policies and authority: versioned policies, reviewer groups,
standing approvals and decision tokens spent once."""

from __future__ import annotations

from datetime import datetime

from ..errors import ConcurrencyConflict
from ..policy import Policy, ReviewerGroup, StandingApproval
from ._memory_base import _TransactionBase
from ._memory_tables import _key
from ._protocol import PolicyContext


class _MemoryGovernance(_TransactionBase):
    """Policies, authority, for :class:`~handrail.store.MemoryStore`'s transactions."""

    def _latest_policy(self, org_id: str) -> Policy | None:  # call under the store's lock
        mine = [p for o, p in zip(self._policy_orgs, self._policies, strict=True) if o == org_id]
        if mine:
            return mine[-1]
        saved = self._store._policies.get(org_id)
        return saved[-1] if saved else None

    async def get_policy(self, org_id: str) -> Policy | None:
        with self._store._lock:
            return self._latest_policy(org_id)

    async def put_policy(self, org_id: str, policy: Policy) -> None:
        self._writable()
        with self._store._lock:
            current = self._latest_policy(org_id)
        if policy.version != (current.version + 1 if current else 1):
            raise ConcurrencyConflict("policy", org_id)
        self._policy_orgs.append(org_id)
        self._policies.append(policy)

    async def policy_context(
        self, org_id: str, tool: str, now: datetime, *, known_version: int | None = None
    ) -> PolicyContext:
        with self._store._lock:  # one consistent reading
            policy = self._latest_policy(org_id)
            groups = self._org_groups(org_id)
            standing = self._live_standing(org_id, tool, now)
        version = policy.version if policy is not None else 0
        return PolicyContext(
            version=version,
            policy=None if version == known_version else policy,
            groups=groups,
            standing=standing,
        )

    def _org_groups(self, org_id: str) -> list[ReviewerGroup]:  # call under the store's lock
        found = [g for g in self._groups.records() if g.org_id == org_id]
        return sorted(found, key=lambda g: g.name)

    def _live_standing(  # call under the store's lock
        self, org_id: str, tool: str | None, active_at: datetime | None
    ) -> list[StandingApproval]:
        found = [
            a
            for a in self._standing.records()
            if a.org_id == org_id
            and (tool is None or a.tool == tool)
            and (active_at is None or a.active(active_at))
        ]
        return sorted(found, key=lambda a: a.id)

    async def list_groups(self, org_id: str) -> list[ReviewerGroup]:
        with self._store._lock:
            return self._org_groups(org_id)

    async def put_group(self, group: ReviewerGroup, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._groups.put(_key(group.org_id, group.name), group, expected_version)

    async def delete_group(self, org_id: str, name: str, *, expected_version: int) -> None:
        self._writable()
        with self._store._lock:
            self._groups.delete(_key(org_id, name), expected_version)

    async def get_standing(self, org_id: str, approval_id: str) -> StandingApproval | None:
        with self._store._lock:
            found = self._standing.get(approval_id, self._store._standing.rows.get(approval_id))
        return found if found is not None and found.org_id == org_id else None

    async def list_standing(
        self, org_id: str, *, tool: str | None = None, active_at: datetime | None = None
    ) -> list[StandingApproval]:
        with self._store._lock:
            return self._live_standing(org_id, tool, active_at)

    async def put_standing(
        self, approval: StandingApproval, *, expected_version: int | None
    ) -> None:
        self._writable()
        with self._store._lock:
            self._standing.put(approval.id, approval, expected_version)

    async def token_spent(self, token_id: str) -> bool:
        with self._store._lock:
            return token_id in self._tokens or token_id in self._store._tokens

    async def spend_token(self, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
        self._writable()
        if await self.token_spent(token_id):
            raise ConcurrencyConflict("decision token", token_id)
        self._tokens[token_id] = (org_id, task_id, at)
