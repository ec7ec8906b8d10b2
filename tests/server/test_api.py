"""The native API's contract: tasks, decisions, waiting, errors."""

from __future__ import annotations

import asyncio

from tests.server.conftest import Server, review


async def test_a_review_round_trip(server: Server) -> None:
    c, a = server.client, server.a
    created = await c.post("/v1/tasks", json=review(), headers=a.requester)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["status"] == "posted" and "request_fingerprint" not in task
    waiting = asyncio.create_task(
        c.get(f"/v1/tasks/{task['id']}/wait?timeout=10", headers=a.requester)
    )
    await asyncio.sleep(0.05)
    decided = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {"to": "ops@example.com"}, "message": "to ops"},
        headers=a.reviewer,
    )
    assert decided.status_code == 200, decided.text
    done = (await waiting).json()
    assert done["status"] == "verified"
    assert done["output"]["args"] == {"to": "ops@example.com"}
    assert done["output"]["reviewer_id"] == "acme-reviewer"


async def test_errors_are_problem_details(server: Server) -> None:
    c, a = server.client, server.a
    missing = await c.get("/v1/tasks/nope", headers=a.requester)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    body = missing.json()
    assert (body["status"], body["code"], body["instance"]) == (404, "not_found", "/v1/tasks/nope")
    assert body["request_id"] == missing.headers["x-request-id"]
    bad = await c.post(
        "/v1/tasks",
        json={"kind": "review", "action": {"name": ""}, "risk_tier": "x"},
        headers=a.requester,
    )
    assert bad.status_code == 422
    assert [e["path"] for e in bad.json()["errors"]] == ["$.risk_tier", "$.action.name"]
    anonymous = await c.get("/v1/tasks")
    assert (anonymous.status_code, anonymous.headers["www-authenticate"]) == (401, "Bearer")
