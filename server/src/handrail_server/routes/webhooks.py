"""Webhook endpoints of the caller's organisation (admins), their delivery logs, and test
events. What an endpoint is and how it is checked lives in ``handrail_server.webhooks``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from handrail import Role

from ..auth import require
from ..deps import EndpointsDep, PrincipalDep
from ..webhooks import Endpoint

router = APIRouter(prefix="/v1", tags=["webhooks"])


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


def _out(endpoint: Endpoint, secret: str | None = None) -> dict[str, Any]:
    return {**asdict(endpoint), "secret": secret}


@router.post("/webhooks", status_code=201, response_model=EndpointOut)
async def create_endpoint(
    body: EndpointIn, endpoints: EndpointsDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A webhook endpoint; its signing secret (``whsec_…``) is in this answer only."""
    require(principal, Role.ADMIN)
    made = await endpoints.create(
        principal.org_id,
        body.url,
        body.events,
        description=body.description,
        enabled=body.enabled,
    )
    return _out(made.endpoint, made.secret)


@router.get("/webhooks", response_model=list[EndpointOut])
async def list_endpoints(endpoints: EndpointsDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    return [_out(e) for e in await endpoints.list(principal.org_id)]


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(
    endpoint_id: str, endpoints: EndpointsDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    return _out(await endpoints.get(principal.org_id, endpoint_id))


@router.patch("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: str, body: EndpointPatch, endpoints: EndpointsDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    changes = body.model_dump(exclude_none=True)
    return _out(await endpoints.update(principal.org_id, endpoint_id, **changes))


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_endpoint(
    endpoint_id: str, endpoints: EndpointsDep, principal: PrincipalDep
) -> None:
    """Stop sending to an endpoint: it is disabled, and its log kept."""
    require(principal, Role.ADMIN)
    await endpoints.disable(principal.org_id, endpoint_id)


@router.get("/webhooks/{endpoint_id}/deliveries")
async def deliveries(
    endpoint_id: str,
    endpoints: EndpointsDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The endpoint's queued events and every delivery attempt, newest first."""
    require(principal, Role.ADMIN)
    log = await endpoints.deliveries(principal.org_id, endpoint_id, limit)
    return {
        "events": [e | {"type": e["event_type"]} for e in log.events],
        "attempts": log.attempts,
    }


@router.post("/webhooks/test", status_code=202)
async def send_test_event(
    endpoints: EndpointsDep, principal: PrincipalDep, body: TestEvent | None = None
) -> dict[str, Any]:
    """Queue a ``webhook.test`` event to one endpoint, or to every enabled one."""
    require(principal, Role.ADMIN)
    target = body.endpoint_id if body else None
    return {"queued": await endpoints.send_test(principal.org_id, target)}
