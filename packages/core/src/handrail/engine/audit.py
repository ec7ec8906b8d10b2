"""The audit log: reading it, exporting it, and checking its hash chain."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

from ..audit import AuditEntry, ChainReport, ChainVerifier
from ..errors import ValidationError
from ..models import Principal, Role
from ._kernel import Kernel

AUDIT_PAGE = 1_000


class AuditMixin(Kernel):
    """The organisation's audit log."""

    async def audit_entries(
        self, principal: Principal, *, after: int = 0, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """The organisation's audit log from ``seq`` ``after`` on, oldest first (admins)."""
        self._require(principal, Role.ADMIN, "read the audit log")
        if not 1 <= limit <= AUDIT_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {AUDIT_PAGE}")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.audit_entries(principal.org_id, max(after, 0), limit)

    async def export_audit(
        self, principal: Principal, *, after: int = 0
    ) -> AsyncIterator[AuditEntry]:
        """Every entry of the organisation's audit log after ``after``, page by page."""
        self._require(principal, Role.ADMIN, "export the audit log")
        return self._audit_pages(principal.org_id, after)

    async def _audit_pages(self, org_id: str, after: int = 0) -> AsyncIterator[AuditEntry]:
        while True:
            async with self.store.transaction(readonly=True) as tx:
                page = await tx.audit_entries(org_id, after, AUDIT_PAGE)
            for entry in page:
                yield entry
            if len(page) < AUDIT_PAGE:
                return
            after = page[-1].seq

    async def verify_audit(self, principal: Principal) -> ChainReport:
        """Recompute the organisation's audit chain and report the first broken link."""
        self._require(principal, Role.ADMIN, "verify the audit log")
        return await self.verify_chain(principal.org_id)

    async def verify_chain(self, org_id: str) -> ChainReport:
        """Recompute ``org_id``'s audit chain (for operators: no principal needed)."""
        async with self.store.transaction(readonly=True) as tx:
            head = await tx.audit_head(org_id)
            first = await tx.audit_entries(org_id, 0, 1)
        checker = ChainVerifier(org_id)
        if head is None:  # nothing sealed yet (or the head is gone while entries remain)
            if first:
                checker.feed(first[0])
                checker.broken_at, checker.reason = 1, "entries exist but no head does"
            return checker.report(None)
        async for entry in self._audit_pages(org_id):
            if not checker.feed(entry) or entry.seq >= head.seq:
                break  # entries sealed after the head was read are checked next time
        return checker.report(head)
