"""Worker profiles (skills, trust tier, capacity, cost) and their stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from handrail.money import MAX_MINOR
from handrail.workers import WorkerProfile, WorkerStats

from ..deps import SessionDep
from ..schemas import WorkerId

router = APIRouter(prefix="/v1", tags=["workers"])


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skills: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    trust_tier: str = "medium"
    capacity: int = Field(default=3, ge=1, le=1000)
    cost_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    active: bool = True


@router.put("/workers/{worker_id}", response_model=WorkerProfile)
async def put_worker(worker_id: WorkerId, body: WorkerIn, session: SessionDep) -> WorkerProfile:
    return await session.put_worker({"id": worker_id, **body.model_dump()})


@router.get("/workers", response_model=list[WorkerProfile])
async def list_workers(session: SessionDep) -> list[WorkerProfile]:
    return await session.list_workers()


@router.get("/workers/{worker_id}", response_model=WorkerProfile)
async def get_worker(worker_id: WorkerId, session: SessionDep) -> WorkerProfile:
    return await session.get_worker(worker_id)


@router.get("/workers/{worker_id}/stats", response_model=list[WorkerStats])
async def worker_stats(worker_id: WorkerId, session: SessionDep) -> list[WorkerStats]:
    return await session.worker_stats(worker_id)
