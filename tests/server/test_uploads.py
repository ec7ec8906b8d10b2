"""Uploads: size and type limits, the SHA-256 in the answer and on download, and another
organisation's upload is 404."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.server.conftest import Server, make_settings, review, running


async def _upload(server: Server, data: bytes, kind: str, **form: Any) -> Any:
    return await server.client.post(
        "/v1/uploads",
        files={"file": ("proof.bin", data, kind)},
        data=form,
        headers=server.a.requester,
    )


async def test_an_upload_round_trip_with_its_sha256(server: Server) -> None:
    c, a = server.client, server.a
    data = b"receipt #1: 12.50 USD\n" * 5000  # more than one read chunk
    made = await _upload(server, data, "text/plain; charset=utf-8")
    assert made.status_code == 201, made.text
    info = made.json()
    digest = hashlib.sha256(data).hexdigest()
    assert info["sha256"] == digest
    assert (info["size"], info["content_type"], info["filename"]) == (
        len(data),
        "text/plain",
        "proof.bin",
    )
    assert info["task_id"] is None
    assert set(info) == {"id", "task_id", "filename", "content_type", "size", "sha256"}
    again = await c.get(f"/v1/uploads/{info['id']}", headers=a.reviewer)
    assert again.status_code == 200 and again.json() == info
    content = await c.get(f"/v1/uploads/{info['id']}/content", headers=a.admin)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["x-content-sha256"] == digest
    assert content.headers["content-type"].startswith("text/plain")


async def test_an_upload_attached_to_a_task(server: Server) -> None:
    task = await server.client.post("/v1/tasks", json=review(), headers=server.a.requester)
    made = await _upload(server, b"%PDF-1.7", "application/pdf", task_id=task.json()["id"])
    assert made.status_code == 201
    assert made.json()["task_id"] == task.json()["id"]
    missing = await _upload(server, b"%PDF-1.7", "application/pdf", task_id="no-such-task")
    assert missing.status_code == 404 and missing.json()["resource"] == "task"


async def test_415_for_a_type_not_accepted(server: Server) -> None:
    for kind in ("application/x-msdownload", "text/html", "image/svg+xml"):
        refused = await _upload(server, b"MZ\x90\x00", kind)
        assert refused.status_code == 415, kind
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["code"] == "unsupported_media_type"
        assert "image/png" in body["accepted"]
        assert body["request_id"] == refused.headers["x-request-id"]


async def test_422_without_a_file(server: Server) -> None:
    answer = await server.client.post(
        "/v1/uploads", data={"task_id": "x"}, headers=server.a.requester
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "$.file"
    assert (await server.client.post("/v1/uploads", files={"file": ("a", b"a")})).status_code == 401


async def test_413_for_an_upload_too_large_and_nothing_is_kept(tmp_path: Path) -> None:
    small = make_settings(tmp_path, max_upload_bytes=1024)
    async with running(small) as server:
        fits = await _upload(server, b"x" * 1024, "text/plain")
        assert fits.status_code == 201
        too_big = await _upload(server, b"x" * 1025, "text/plain")
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert too_big.json()["code"] == "too_large"
        assert "1024" in too_big.json()["detail"]
        stored = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
        assert len(stored) == 1  # only the one that fit


async def test_another_organisations_upload_is_404(server: Server) -> None:
    c, b = server.client, server.b
    made = (await _upload(server, b"secret", "text/plain")).json()
    for path in (f"/v1/uploads/{made['id']}", f"/v1/uploads/{made['id']}/content"):
        answer = await c.get(path, headers=b.admin)
        assert answer.status_code == 404
        assert "secret" not in answer.text and made["sha256"] not in answer.text
        assert "x-content-sha256" not in answer.headers
