"""Health, metrics and uploads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, UploadFile
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..deps import HubDep, PrincipalDep, SessionDep, UploadsDep
from ..migrate import current_revision
from ..modes import organisation
from ..problems import ApiProblem
from ..schemas import Health

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz(hub: HubDep) -> dict[str, Any]:
    """The server is up and its database answers."""
    return {
        "status": "ok",
        "database": hub.store.dialect,
        "revision": await current_revision(hub.store),
    }


class MeOut(BaseModel):
    org_id: str
    principal_id: str
    roles: list[str]
    sandbox: bool


@router.get("/v1/me", response_model=MeOut)
async def me(principal: PrincipalDep) -> MeOut:
    """Who the API key acts as: its organisation, principal, roles and mode."""
    return MeOut(
        org_id=organisation(principal.org_id),
        principal_id=principal.id,
        roles=sorted(role.value for role in principal.roles),
        sandbox=principal.sandbox,
    )


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class UploadOut(BaseModel):
    id: str
    task_id: str | None
    filename: str
    content_type: str
    size: int
    sha256: str


CHUNK = 64 * 1024


@router.post("/v1/uploads", status_code=201, response_model=UploadOut, tags=["uploads"])
async def upload(
    file: UploadFile,
    hub: HubDep,
    uploads: UploadsDep,
    principal: PrincipalDep,
    session: SessionDep,
    task_id: Annotated[str | None, Form(max_length=64)] = None,
) -> dict[str, Any]:
    """A proof or attachment: within the size and type limits, stored with its SHA-256."""
    settings = hub.settings
    kind = (file.content_type or "").split(";")[0].strip().lower()
    if kind not in settings.upload_types:
        raise ApiProblem(
            415,
            "unsupported_media_type",
            f"{kind or 'no type'} is not accepted",
            accepted=list(settings.upload_types),
        )
    if task_id is not None:
        await session.get(task_id)  # 404 for another organisation's task
    parts, size = [], 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise ApiProblem(
                413, "too_large", f"uploads are at most {settings.max_upload_bytes} bytes"
            )
        parts.append(chunk)
    made = await uploads.add(
        principal.org_id,
        b"".join(parts),
        filename=file.filename or "upload",
        content_type=kind,
        created_by=principal.id,
        task_id=task_id,
    )
    return asdict(made)


@router.get("/v1/uploads/{upload_id}", response_model=UploadOut, tags=["uploads"])
async def upload_info(
    upload_id: str, uploads: UploadsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return asdict(await uploads.get(principal.org_id, upload_id))


@router.get("/v1/uploads/{upload_id}/content", response_class=Response, tags=["uploads"])
async def upload_content(upload_id: str, uploads: UploadsDep, principal: PrincipalDep) -> Response:
    found = await uploads.get(principal.org_id, upload_id)
    data = await uploads.content(found)
    if data is None:
        raise ApiProblem(404, "not_found", f"the content of upload {upload_id!r} is missing")
    return Response(data, media_type=found.content_type, headers={"X-Content-SHA256": found.sha256})
