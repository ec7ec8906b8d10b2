"""Uploads: proofs and attachments, their bytes in the ``BlobStore`` and their record
(name, type, size, SHA-256, who and when) in the database, scoped to one organisation.

The API (``/v1/uploads``) checks type and size as the bytes arrive; this module stores
and finds them. A blob's key is ``{org_id}-{upload_id}``: another organisation's id finds
nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from handrail.clock import Clock, utc
from handrail.errors import NotFound
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from .blobs import BlobStore
from .tables import uploads

__all__ = ["Upload", "Uploads"]


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    org_id: str
    task_id: str | None
    filename: str
    content_type: str
    size: int
    sha256: str
    created_by: str
    created_at: datetime


def _upload(m: Any) -> Upload:
    return Upload(**{**m, "created_at": utc(m["created_at"])})


class Uploads:
    def __init__(self, store: SqlStore, blobs: BlobStore, clock: Clock) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock

    async def add(
        self,
        org_id: str,
        data: bytes,
        *,
        filename: str,
        content_type: str,
        created_by: str,
        task_id: str | None = None,
    ) -> Upload:
        """Store ``data`` (the blob first: a record never points at nothing)."""
        made = Upload(
            id=new_id(),
            org_id=org_id,
            task_id=task_id,
            filename=filename[:255],
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_by=created_by,
            created_at=self._clock.now(),
        )
        await self._blobs.put(f"{org_id}-{made.id}", data)
        await self._store.run(lambda c: c.execute(insert(uploads), [asdict(made)]))
        return made

    async def get(self, org_id: str, upload_id: str) -> Upload:
        """Raises ``NotFound`` unless ``org_id`` has this upload."""
        query = select(uploads).where(uploads.c.id == upload_id, uploads.c.org_id == org_id)
        row = await self._store.run(lambda c: c.execute(query).first(), readonly=True)
        if row is None:
            raise NotFound("upload", upload_id)
        return _upload(row._mapping)

    async def content(self, upload: Upload) -> bytes | None:
        """The upload's bytes; None when its blob is missing."""
        return await self._blobs.get(f"{upload.org_id}-{upload.id}")
