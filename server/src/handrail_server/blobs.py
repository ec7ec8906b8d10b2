"""Where uploaded files live: a ``BlobStore`` protocol and a local-directory store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

__all__ = ["BlobStore", "LocalBlobStore"]


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...


class LocalBlobStore:
    """Files under one directory, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        safe = key.replace("/", "_").replace("\\\\", "_")
        return self.root / safe[:2] / safe

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".part")
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temp.replace(path)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return await asyncio.to_thread(lambda: path.read_bytes() if path.exists() else None)
