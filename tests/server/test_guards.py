"""Input refused at the door: NUL characters (PostgreSQL's text cannot hold them), lone
surrogates (no UTF-8 for them), NaN and infinities (not JSON), nesting too deep, bodies too
large. Each is a 4xx in each API's own format, never a database error or a 500, and
nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.server.conftest import Server, make_settings, running


async def test_nul_characters_are_a_validation_error(server: Server) -> None:
    c, admin = server.client, server.a.admin
    in_query = await c.get("/v1/payouts", params={"worker_id": "a\x00b"}, headers=admin)
    assert in_query.status_code == 422
    assert in_query.json()["errors"] == [
        {"path": "query:worker_id", "message": "must not contain NUL characters"}
    ]
    in_body = await c.put("/v1/workers/w", json={"skills": ["a\u0000"]}, headers=admin)
    assert in_body.status_code == 422 and in_body.json()["errors"][0]["path"] == "$.skills[0]"
    in_path = await c.get("/v1/tasks/a%00b", headers=admin)
    assert in_path.status_code == 422
    dialect = await c.post(
        "/compat/humanops/api/v1/operator/register", json={"name": "a\u0000"}, headers=admin
    )
    assert dialect.status_code == 400 and dialect.json()["error"].endswith("NUL characters")
    # an escaped backslash followed by "u0000" is text, not NUL
    text = await c.put(
        "/v1/workers/w",
        content=b'{"skills": ["a\\\\u0000"]}',
        headers={**admin, "content-type": "application/json"},
    )
    assert text.status_code == 200 and text.json()["skills"] == ["a\\u0000"]


async def _task_count(server: Server) -> int:
    listed = await server.client.get("/v1/tasks", headers=server.a.admin)
    assert listed.status_code == 200, listed.text
    return len(listed.json()["data"])


@pytest.mark.parametrize(
    ("raw", "path", "says"),
    [
        (
            b'{"kind":"review","action":{"name":"pay","args":{"amount":NaN}}}',
            "$.action.args.amount",
            "NaN",
        ),
        (
            b'{"kind":"review","action":{"name":"pay","args":{"n":-Infinity}}}',
            "$.action.args.n",
            "-Infinity",
        ),
        (
            b'{"kind":"review","action":{"name":"pay","args":{"to":"\\ud800x"}}}',
            "$.action.args.to",
            "surrogate",
        ),
        (b'{"kind":"review","action":{"name":"pay","args":{"\\ud800":1}}}', "$.action.args", "key"),
        (b'{"kind":"review","action":{"name":"pay\\u0000"}}', "$.action.name", "NUL"),
    ],
)
async def test_what_json_or_a_database_cannot_carry_is_422_and_writes_nothing(
    server: Server, raw: bytes, path: str, says: str
) -> None:
    raw = raw.replace(b"\\\\", b"\\")  # one JSON escape: \ud800 is a lone surrogate
    before = await _task_count(server)
    answer = await server.client.post(
        "/v1/tasks",
        content=raw,
        headers={**server.a.requester, "content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    (error,) = answer.json()["errors"]
    assert error["path"] == path and says in error["message"]
    assert await _task_count(server) == before  # and the organisation's lists still work


async def test_json_nested_too_deeply_is_422(server: Server) -> None:
    deep = b'{"kind":"review","action":{"name":"pay","args":{"x":' + b"[" * 100_000
    deep += b"]" * 100_000 + b"}}}"
    answer = await server.client.post(
        "/v1/tasks",
        content=deep,
        headers={**server.a.requester, "content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["message"] == "nested too deeply"


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, max_body_bytes=4096)) as server:
        big = {"kind": "review", "action": {"name": "pay", "args": {"note": "x" * 5000}}}
        declared = await server.client.post("/v1/tasks", json=big, headers=server.a.requester)
        assert declared.status_code == 413, declared.text
        assert declared.json()["code"] == "too_large"
        assert declared.headers["content-type"] == "application/problem+json"

        async def chunks():  # no Content-Length: the limit is found while reading
            body = json.dumps(big).encode()
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        streamed = await server.client.post(
            "/v1/tasks",
            content=chunks(),
            headers={**server.a.requester, "content-type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["code"] == "too_large"
        assert await _task_count(server) == 0
        small = {"kind": "review", "action": {"name": "pay", "args": {"note": "x" * 100}}}
        fine = await server.client.post("/v1/tasks", json=small, headers=server.a.requester)
        assert fine.status_code == 201


async def test_uploads_have_their_own_larger_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=4096, max_upload_bytes=20_000)
    async with running(settings) as server:
        files = {"file": ("a.txt", b"y" * 10_000, "text/plain")}
        ok = await server.client.post("/v1/uploads", files=files, headers=server.a.requester)
        assert ok.status_code == 201, ok.text
        files = {"file": ("b.txt", b"y" * 200_000, "text/plain")}
        over = await server.client.post("/v1/uploads", files=files, headers=server.a.requester)
        assert over.status_code == 413 and over.json()["code"] == "too_large"
