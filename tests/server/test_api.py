"""The native API's contract: tasks, decisions, waiting, errors."""

from __future__ import annotations

import asyncio
from typing import Any

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


async def test_tasks_are_listed_filtered_and_paged(server: Server) -> None:
    c, a = server.client, server.a
    made = []
    for name in ("one", "two", "three"):
        spec = review(name) | ({"batch_id": "turn-7"} if name != "two" else {})
        made.append((await c.post("/v1/tasks", json=spec, headers=a.requester)).json())
    schema = {"type": "object"}
    judged = await c.post(
        "/v1/tasks", json={"kind": "judgment", "output_schema": schema}, headers=a.requester
    )
    made.append(judged.json())
    await c.post(f"/v1/tasks/{made[1]['id']}/cancel", headers=a.requester)
    ids = [t["id"] for t in made]

    async def listed(query: str) -> dict[str, Any]:
        answer = await c.get(f"/v1/tasks{query}", headers=a.requester)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert [t["id"] for t in (await listed(""))["data"]] == ids
    assert [t["id"] for t in (await listed("?order=desc"))["data"]] == ids[::-1]
    assert [t["id"] for t in (await listed("?status=cancelled"))["data"]] == [ids[1]]
    both = await listed("?status=cancelled&status=posted&kind=review")
    assert [t["id"] for t in both["data"]] == ids[:3]
    assert [t["id"] for t in (await listed("?kind=judgment"))["data"]] == [ids[3]]
    assert [t["id"] for t in (await listed("?task_type=three"))["data"]] == [ids[2]]
    batch = (await listed("?batch_id=turn-7"))["data"]
    assert [(t["id"], t["batch_id"]) for t in batch] == [(ids[0], "turn-7"), (ids[2], "turn-7")]
    page = await listed("?limit=2")
    assert [t["id"] for t in page["data"]] == ids[:2]
    assert page["has_more"] is True and page["next_cursor"] == ids[1]
    rest = await listed(f"?limit=2&after={page['next_cursor']}")
    assert [t["id"] for t in rest["data"]] == ids[2:]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    # internal fields stay inside, on every route that answers with tasks
    one = (await c.get(f"/v1/tasks/{ids[0]}", headers=a.requester)).json()
    queue = (await c.get("/v1/queue", headers=a.reviewer)).json()["data"]
    for shown in (*rest["data"], one, *queue):
        assert "request_fingerprint" not in shown and "version" not in shown


async def test_cancel_with_a_reason_and_again(server: Server) -> None:
    c, a = server.client, server.a
    task = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    cancelled = await c.post(
        f"/v1/tasks/{task['id']}/cancel", json={"reason": "changed my mind"}, headers=a.requester
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    assert again.status_code == 200 and again.json() == cancelled.json()  # nothing changes
    history = (await c.get(f"/v1/tasks/{task['id']}/history", headers=a.requester)).json()
    assert [(e["event"], e["reason"]) for e in history["data"]] == [
        ("create", None),
        ("cancel", "changed my mind"),
    ]
    assert history["data"][1]["actor"] == "acme-agent"
    bad = await c.post(f"/v1/tasks/{task['id']}/cancel", json={"reason": 5}, headers=a.requester)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.reason"


async def test_task_ids_longer_than_any_id_are_refused_before_the_database(
    server: Server,
) -> None:
    c, a = server.client, server.a
    long_id = "t" * 65
    for method, path, headers in (
        ("GET", f"/v1/tasks/{long_id}", a.requester),
        ("POST", f"/v1/tasks/{long_id}/decision", {**a.reviewer, "Idempotency-Key": "k"}),
        ("POST", f"/v1/tasks/{long_id}/submissions", {**a.reviewer, "Idempotency-Key": "k"}),
    ):
        body = {"type": "approve"} if path.endswith("decision") else {"output": 1}
        answer = await c.request(method, path, json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["path"] == "path:task_id"
