"""API keys of the caller's organisation (admins): made, listed, revoked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from handrail import Role

from ..auth import require
from ..deps import HubDep, KeysDep, PrincipalDep
from ..keys import KeyInfo
from ..modes import organisation, world
from ..problems import ApiProblem
from ..schemas import KeyIn, KeyOut

router = APIRouter(prefix="/v1", tags=["keys"])


def _key_out(info: KeyInfo, key: str | None = None) -> dict[str, Any]:
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
async def create_api_key(
    body: KeyIn, hub: HubDep, keys: KeysDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A new key in the caller's organisation; the key itself is in this answer only. A
    sandbox admin makes sandbox keys only."""
    require(principal, Role.ADMIN)
    if principal.sandbox and not body.sandbox:
        raise ApiProblem(403, "forbidden", "a sandbox key makes sandbox keys only")
    org = organisation(principal.org_id)
    made = await keys.create(
        org,
        Role(body.role),
        sandbox=body.sandbox,
        principal=body.principal,
        name=body.name,
    )
    if made.info.sandbox and hub.settings.run_background:
        hub.ensure_sandbox(world(org, True))  # simulated reviewers answer its tasks
    return _key_out(made.info, made.key)


@router.get("/keys", response_model=list[KeyOut])
async def list_api_keys(keys: KeysDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    found = await keys.list(organisation(principal.org_id), sandbox_only=principal.sandbox)
    return [_key_out(k) for k in found]


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, keys: KeysDep, principal: PrincipalDep) -> None:
    require(principal, Role.ADMIN)
    await keys.revoke(organisation(principal.org_id), key_id, sandbox_only=principal.sandbox)
