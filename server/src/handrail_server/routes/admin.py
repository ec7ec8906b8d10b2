"""Administration: workers, API keys, webhook endpoints and their delivery logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select, update

from handrail import Role
from handrail.ids import new_id
from handrail.money import MAX_MINOR
from handrail.workers import WorkerProfile, WorkerStats

from .._rows import aware
from ..auth import require
from ..deps import HubDep, PrincipalDep
from ..keys import create_key, list_keys, revoke_key
from ..problems import ApiProblem
from ..schemas import KeyIn, KeyOut, WorkerId
from ..tables import webhook_endpoints
from ..webhooks import (
    EVENT_TYPES,
    UnsafeTarget,
    check_target,
    delivery_log,
    new_secret,
    queue_event,
)

router = APIRouter(prefix="/v1", tags=["admin"])


# ---------------------------------------------------------------- workers


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skills: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    trust_tier: str = "medium"
    capacity: int = Field(default=3, ge=1, le=1000)
    cost_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    active: bool = True


@router.put("/workers/{worker_id}", response_model=WorkerProfile)
async def put_worker(
    worker_id: WorkerId, body: WorkerIn, hub: HubDep, principal: PrincipalDep
) -> WorkerProfile:
    return await hub.engine.put_worker(principal, {"id": worker_id, **body.model_dump()})


@router.get("/workers", response_model=list[WorkerProfile])
async def list_workers(hub: HubDep, principal: PrincipalDep) -> list[WorkerProfile]:
    return await hub.engine.list_workers(principal)


@router.get("/workers/{worker_id}", response_model=WorkerProfile)
async def get_worker(worker_id: WorkerId, hub: HubDep, principal: PrincipalDep) -> WorkerProfile:
    return await hub.engine.get_worker(principal, worker_id)


@router.get("/workers/{worker_id}/stats", response_model=list[WorkerStats])
async def worker_stats(
    worker_id: WorkerId, hub: HubDep, principal: PrincipalDep
) -> list[WorkerStats]:
    return await hub.engine.worker_stats(principal, worker_id)


# ---------------------------------------------------------------- keys


def _key_out(info: Any, key: str | None = None) -> dict[str, Any]:
    return {
        "id": info.id,
        "org_id": info.org_id,
        "prefix": info.prefix,
        "role": info.role.value,
        "principal": info.principal,
        "sandbox": info.sandbox,
        "name": info.name,
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
        "key": key,
    }


@router.post("/keys", status_code=201, response_model=KeyOut)
async def create_api_key(body: KeyIn, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """A new key in the caller's organisation; the key itself is in this answer only."""
    require(principal, Role.ADMIN)
    now = hub.clock.now()
    made = await hub.store.run(
        lambda c: create_key(
            c,
            org_id=principal.org_id,
            role=Role(body.role),
            now=now,
            sandbox=body.sandbox,
            principal=body.principal,
            name=body.name,
        )
    )
    if made.info.sandbox and hub.settings.run_background:
        hub.ensure_sandbox(principal.org_id)
    return _key_out(made.info, made.key)


@router.get("/keys", response_model=list[KeyOut])
async def list_api_keys(hub: HubDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    return [
        _key_out(k)
        for k in await hub.store.run(lambda c: list_keys(c, principal.org_id), readonly=True)
    ]


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, hub: HubDep, principal: PrincipalDep) -> None:
    require(principal, Role.ADMIN)
    now = hub.clock.now()
    if not await hub.store.run(lambda c: revoke_key(c, key_id, now, principal.org_id)):
        raise ApiProblem(404, "not_found", f"key {key_id!r} not found")


# ---------------------------------------------------------------- webhooks


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2048)
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, min_length=8, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: Any
    secret: str | None = Field(default=None, description="only when the endpoint is created")


class TestEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint_id: str | None = None


async def _checked(hub: Any, url: str, events: list[str]) -> None:
    unknown = sorted(set(events) - {*EVENT_TYPES, "*"})
    if unknown:
        raise ApiProblem(
            422,
            "validation_error",
            f"unknown event types: {unknown}",
            errors=[{"path": "$.events", "message": f"choose from {list(EVENT_TYPES)} or '*'"}],
        )
    try:
        await check_target(url, allow_private=hub.settings.allow_private_webhooks)
    except UnsafeTarget as exc:
        raise ApiProblem(
            422, "unsafe_webhook_url", str(exc), errors=[{"path": "$.url", "message": str(exc)}]
        ) from None


def _endpoint(row: Any, secret: bool = False) -> dict[str, Any]:
    m = aware(row)
    return {
        "id": m["id"],
        "url": m["url"],
        "events": m["events"],
        "description": m["description"],
        "enabled": m["enabled"],
        "created_at": m["created_at"],
        "secret": m["secret"] if secret else None,
    }


def _find(conn: Connection, org: str, endpoint_id: str) -> Any:
    row = conn.execute(
        select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.org_id == org
        )
    ).first()
    if row is None:
        raise ApiProblem(404, "not_found", f"webhook endpoint {endpoint_id!r} not found")
    return row


@router.post("/webhooks", status_code=201, response_model=EndpointOut)
async def create_endpoint(body: EndpointIn, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """A webhook endpoint; its signing secret (``whsec_…``) is in this answer only."""
    require(principal, Role.ADMIN)
    await _checked(hub, body.url, body.events)
    row = {
        "id": new_id(),
        "org_id": principal.org_id,
        "url": body.url,
        "secret": new_secret(),
        "events": body.events,
        "enabled": body.enabled,
        "description": body.description,
        "created_at": hub.clock.now(),
    }
    await hub.store.run(lambda c: c.execute(insert(webhook_endpoints), [row]))
    return {
        **{k: row[k] for k in ("id", "url", "events", "description", "enabled", "created_at")},
        "secret": row["secret"],
    }


@router.get("/webhooks", response_model=list[EndpointOut])
async def list_endpoints(hub: HubDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    query = (
        select(webhook_endpoints)
        .where(webhook_endpoints.c.org_id == principal.org_id)
        .order_by(webhook_endpoints.c.created_at)
    )
    return [
        _endpoint(r) for r in await hub.store.run(lambda c: c.execute(query).all(), readonly=True)
    ]


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(endpoint_id: str, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    return _endpoint(
        await hub.store.run(lambda c: _find(c, principal.org_id, endpoint_id), readonly=True)
    )


@router.patch("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: str, body: EndpointPatch, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    changes = body.model_dump(exclude_none=True)
    current = await hub.store.run(lambda c: _find(c, principal.org_id, endpoint_id), readonly=True)
    await _checked(hub, changes.get("url", current.url), changes.get("events", current.events))

    def apply(conn: Connection) -> Any:
        if changes:
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(**changes)
            )
        return _find(conn, principal.org_id, endpoint_id)

    return _endpoint(await hub.store.run(apply))


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: str, hub: HubDep, principal: PrincipalDep) -> None:
    """Stop sending to an endpoint: it is disabled, and its log kept."""
    require(principal, Role.ADMIN)

    def disable(conn: Connection) -> None:
        _find(conn, principal.org_id, endpoint_id)
        conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(enabled=False)
        )

    await hub.store.run(disable)


@router.get("/webhooks/{endpoint_id}/deliveries")
async def deliveries(
    endpoint_id: str,
    hub: HubDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The endpoint's queued events and every delivery attempt, newest first."""
    require(principal, Role.ADMIN)

    def read(conn: Connection) -> dict[str, Any]:
        log = delivery_log(conn, principal.org_id, endpoint_id, limit)
        if log is None:
            raise ApiProblem(404, "not_found", f"webhook endpoint {endpoint_id!r} not found")
        return {
            "events": [e | {"type": e["event_type"]} for e in log.events],
            "attempts": log.attempts,
        }

    return await hub.store.run(read, readonly=True)


@router.post("/webhooks/test", status_code=202)
async def send_test_event(
    hub: HubDep, principal: PrincipalDep, body: TestEvent | None = None
) -> dict[str, Any]:
    """Queue a ``webhook.test`` event to one endpoint, or to every enabled one."""
    require(principal, Role.ADMIN)
    now = hub.clock.now()
    target = body.endpoint_id if body else None

    def queue(conn: Connection) -> int:
        if target is not None:
            _find(conn, principal.org_id, target)
        data = {"message": "a test event from Handrail", "org_id": principal.org_id}
        return queue_event(
            conn, principal.org_id, "webhook.test", data, now, endpoint_id=target, everyone=True
        )

    queued = await hub.store.run(queue)
    hub.delivery.poke()
    return {"queued": queued}
