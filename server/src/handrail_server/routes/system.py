"""Health, metrics and uploads."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, UploadFile
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import insert, select

from handrail.ids import new_id

from ..deps import HubDep, PrincipalDep
from ..migrate import current_revision
from ..problems import ApiProblem
from ..schemas import Health
from ..tables import uploads

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz(hub: HubDep) -> dict[str, Any]:
    """The server is up and its database answers."""
    return {
        "status": "ok",
        "database": hub.store.dialect,
        "revision": await current_revision(hub.store),
    }


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
    principal: PrincipalDep,
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
        await hub.engine.get(principal, task_id)  # 404 for another organisation's task
    digest, parts, size = hashlib.sha256(), [], 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise ApiProblem(
                413, "too_large", f"uploads are at most {settings.max_upload_bytes} bytes"
            )
        digest.update(chunk)
        parts.append(chunk)
    upload_id = new_id()
    row = {
        "id": upload_id,
        "org_id": principal.org_id,
        "task_id": task_id,
        "filename": (file.filename or "upload")[:255],
        "content_type": kind,
        "size": size,
        "sha256": digest.hexdigest(),
        "created_by": principal.id,
        "created_at": hub.clock.now(),
    }
    await hub.blobs.put(f"{principal.org_id}-{upload_id}", b"".join(parts))
    await hub.store.run(lambda c: c.execute(insert(uploads), [row]))
    return row


async def _find(hub: Any, org: str, upload_id: str) -> Any:
    query = select(uploads).where(uploads.c.id == upload_id, uploads.c.org_id == org)
    row = await hub.store.run(lambda c: c.execute(query).first(), readonly=True)
    if row is None:
        raise ApiProblem(404, "not_found", f"upload {upload_id!r} not found")
    return row


@router.get("/v1/uploads/{upload_id}", response_model=UploadOut, tags=["uploads"])
async def upload_info(upload_id: str, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    return dict((await _find(hub, principal.org_id, upload_id))._mapping)


@router.get("/v1/uploads/{upload_id}/content", response_class=Response, tags=["uploads"])
async def upload_content(upload_id: str, hub: HubDep, principal: PrincipalDep) -> Response:
    row = await _find(hub, principal.org_id, upload_id)
    data = await hub.blobs.get(f"{principal.org_id}-{upload_id}")
    if data is None:
        raise ApiProblem(404, "not_found", f"the content of upload {upload_id!r} is missing")
    return Response(data, media_type=row.content_type, headers={"X-Content-SHA256": row.sha256})
