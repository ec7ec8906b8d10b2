"""A memory transaction's audit chains: records are sealed onto each organisation's chain at
commit; reads see committed entries."""

from __future__ import annotations

from collections.abc import Sequence

from .._model_base import detached
from ..audit import AuditEntry, AuditHead, AuditRecord
from ._memory_base import _TransactionBase


class _MemoryAudit(_TransactionBase):
    """The audit chains, for :class:`~handrail.store.MemoryStore`'s transactions."""

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        self._writable()
        self._audit.extend(detached(r) for r in records)

    async def audit_entries(self, org_id: str, after: int, limit: int) -> list[AuditEntry]:
        with self._store._lock:
            chain = self._store._audit.get(org_id, [])
            found = chain[max(after, 0) : max(after, 0) + limit]  # seq n sits at index n - 1
        return [detached(e) for e in found]

    async def audit_head(self, org_id: str) -> AuditHead | None:
        with self._store._lock:
            return self._store._heads.get(org_id)

    async def audit_orgs(self) -> list[str]:
        with self._store._lock:
            return sorted(self._store._heads)
