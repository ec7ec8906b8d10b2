"""Worker profiles (skills, trust tier, capacity) and what the engine learned of each worker."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from .._retry import retry_conflicts
from ..errors import NotFound
from ..models import Principal, Role
from ..store import Transaction
from ..validation import parse
from ..workers import WorkerProfile, WorkerStats
from ._kernel import Kernel


class WorkersMixin(Kernel):
    """Worker profiles and stats."""

    async def put_worker(
        self, principal: Principal, profile: WorkerProfile | Mapping[str, Any]
    ) -> WorkerProfile:
        """Create or update a worker's profile in the principal's organisation (admins)."""
        self._require(principal, Role.ADMIN, "manage workers")
        data = profile.model_dump() if isinstance(profile, WorkerProfile) else dict(profile)
        data["org_id"] = principal.org_id
        wanted = parse(WorkerProfile, {k: v for k, v in data.items() if k != "version"})

        async def op(tx: Transaction) -> WorkerProfile:
            current = await tx.get_worker(principal.org_id, wanted.id)
            version = current.version + 1 if current else 1
            stored = wanted.model_copy(update={"version": version})
            await tx.put_worker(stored, expected_version=current.version if current else None)
            return stored

        async def attempt() -> WorkerProfile:
            async with self.store.transaction() as tx:
                return await op(tx)

        return await retry_conflicts(attempt)

    async def get_worker(self, principal: Principal, worker_id: str) -> WorkerProfile:
        if worker_id != principal.id:
            self._require(principal, Role.ADMIN, "see other workers")
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.get_worker(principal.org_id, worker_id)
        if found is None:
            raise NotFound("worker", worker_id)
        return found

    async def list_workers(self, principal: Principal) -> builtins.list[WorkerProfile]:
        self._require(principal, Role.ADMIN, "list workers")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.list_workers(principal.org_id)

    async def worker_stats(
        self, principal: Principal, worker_id: str
    ) -> builtins.list[WorkerStats]:
        """What the engine learned about a worker, per task type (its own, or any for
        admins)."""
        if worker_id != principal.id:
            self._require(principal, Role.ADMIN, "see other workers")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.stats_of_worker(principal.org_id, worker_id)
