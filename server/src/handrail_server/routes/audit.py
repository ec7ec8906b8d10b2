"""The organisation's audit log: read it, verify its hash chain, export it as JSON Lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from handrail.audit import AuditEntry, ChainReport

from ..deps import HubDep, PrincipalDep, SessionDep
from ..schemas import AuditList

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditList)
async def audit_entries(
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dict[str, Any]:
    """Entries, oldest first, each with its hash and the previous entry's (admins)."""
    entries = await session.audit_entries(after=after, limit=limit)
    more = len(entries) == limit
    return {"data": entries, "next_cursor": entries[-1].seq if more else None}


@router.get("/verify", response_model=ChainReport)
async def verify(session: SessionDep) -> ChainReport:
    """Recompute the chain (admins): ``ok``, or the first broken link and why."""
    return await session.verify_audit()


async def _lines(entries: AsyncIterator[AuditEntry]) -> AsyncIterator[str]:
    async for entry in entries:
        yield entry.line() + "\n"


@router.get("/export", response_class=StreamingResponse)
async def export(
    hub: HubDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> StreamingResponse:
    """The whole log as JSON Lines (admins), one entry per line, oldest first: what
    ``handrail audit verify --file`` checks offline."""
    entries = await hub.engine.export_audit(principal, after=after)
    return StreamingResponse(
        _lines(entries),
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="audit-{principal.org_id}.jsonl"'},
    )
