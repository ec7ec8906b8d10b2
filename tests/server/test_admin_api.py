"""Administration over HTTP: workers, API keys, webhook endpoints, health and metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.server.conftest import Server, review


def aware(stamp: str) -> datetime:
    """An ISO timestamp that names its zone (UTC), whatever the database."""
    when = datetime.fromisoformat(stamp)
    offset = when.utcoffset()
    assert offset is not None and not offset, stamp
    return when


# ---------------------------------------------------------------- workers


async def test_workers_are_created_updated_read_and_listed(server: Server) -> None:
    c, a = server.client, server.a
    made = await c.put(
        "/v1/workers/alice",
        json={"skills": ["refund"], "trust_tier": "high", "capacity": 2, "cost_minor": 50},
        headers=a.admin,
    )
    assert made.status_code == 200, made.text
    profile = made.json()
    assert profile == {
        "org_id": "acme",
        "id": "alice",
        "skills": ["refund"],
        "trust_tier": "high",
        "capacity": 2,
        "cost_minor": 50,
        "active": True,
        "version": 1,
    }
    updated = await c.put("/v1/workers/alice", json={"active": False}, headers=a.admin)
    assert updated.json()["version"] == 2 and updated.json()["active"] is False
    assert updated.json()["skills"] == []  # a PUT replaces the profile
    assert (await c.get("/v1/workers/alice", headers=a.admin)).json() == updated.json()
    await c.put("/v1/workers/bob", json={}, headers=a.admin)
    listed = (await c.get("/v1/workers", headers=a.admin)).json()
    assert sorted(w["id"] for w in listed) == ["alice", "bob"]
    stats = await c.get("/v1/workers/alice/stats", headers=a.admin)
    assert stats.status_code == 200 and stats.json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"capacity": 0},
        {"capacity": 1001},
        {"cost_minor": -1},
        {"cost_minor": 2**63},
        {"trust_tier": "godlike"},
        {"skills": [""]},
        {"nickname": "al"},
    ],
)
async def test_a_bad_worker_profile_is_422(server: Server, body: dict[str, Any]) -> None:
    answer = await server.client.put("/v1/workers/alice", json=body, headers=server.a.admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["path"].startswith("$")
    assert (await server.client.get("/v1/workers", headers=server.a.admin)).json() == []


async def test_worker_ids_longer_than_the_store_keeps_are_refused(server: Server) -> None:
    c, a = server.client, server.a
    answer = await c.put("/v1/workers/" + "w" * 201, json={}, headers=a.admin)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "path:worker_id"
    assert (await c.put("/v1/workers/" + "w" * 200, json={}, headers=a.admin)).status_code == 200


async def test_workers_see_their_own_profile_only(server: Server) -> None:
    c, a = server.client, server.a
    await c.put("/v1/workers/acme-reviewer", json={"capacity": 5}, headers=a.admin)
    await c.put("/v1/workers/bob", json={}, headers=a.admin)
    mine = await c.get("/v1/workers/acme-reviewer", headers=a.reviewer)
    assert mine.status_code == 200 and mine.json()["capacity"] == 5
    assert (await c.get("/v1/workers/acme-reviewer/stats", headers=a.reviewer)).status_code == 200
    assert (await c.get("/v1/workers/bob", headers=a.reviewer)).status_code == 403
    assert (await c.get("/v1/workers/bob/stats", headers=a.reviewer)).status_code == 403
    assert (await c.get("/v1/workers", headers=a.reviewer)).status_code == 403
    assert (
        await c.put("/v1/workers/acme-reviewer", json={}, headers=a.reviewer)
    ).status_code == 403
    missing = await c.get("/v1/workers/nobody", headers=a.admin)
    assert missing.status_code == 404 and missing.json()["resource"] == "worker"


# ---------------------------------------------------------------- keys


async def test_keys_are_created_shown_once_listed_and_revoked(server: Server) -> None:
    c, a = server.client, server.a
    made = await c.post(
        "/v1/keys",
        json={"role": "reviewer", "principal": "carol", "name": "carol's laptop"},
        headers=a.admin,
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("hr_live_") and key["prefix"] == key["key"][:12]
    assert (key["org_id"], key["role"], key["principal"], key["sandbox"]) == (
        "acme",
        "reviewer",
        "carol",
        False,
    )
    assert key["revoked_at"] is None
    aware(key["created_at"])
    carol = {"Authorization": f"Bearer {key['key']}"}
    assert (await c.get("/v1/queue", headers=carol)).status_code == 200
    listed = (await c.get("/v1/keys", headers=a.admin)).json()
    assert all(k["key"] is None for k in listed)  # never shown again
    assert key["key"] not in str(listed)
    assert {k["principal"] for k in listed} >= {"carol", "acme-admin", "acme-agent"}
    assert all(k["org_id"] == "acme" for k in listed)
    assert (await c.delete(f"/v1/keys/{key['id']}", headers=a.admin)).status_code == 204
    again = await c.delete(f"/v1/keys/{key['id']}", headers=a.admin)
    assert again.status_code == 404
    revoked = next(
        k for k in (await c.get("/v1/keys", headers=a.admin)).json() if k["id"] == key["id"]
    )
    assert aware(revoked["revoked_at"]) >= aware(revoked["created_at"])
    assert all(aware(k["created_at"]) for k in listed)
    server.hub.auth._known.clear()  # (known keys are remembered for a few seconds)
    assert (await c.get("/v1/queue", headers=carol)).status_code == 401


async def test_a_sandbox_key_posts_sandbox_tasks_answered_by_simulated_reviewers(
    server: Server,
) -> None:
    c, a = server.client, server.a
    made = await c.post("/v1/keys", json={"role": "requester", "sandbox": True}, headers=a.admin)
    assert made.json()["key"].startswith("hr_test_")
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    task = (await c.post("/v1/tasks", json=review(), headers=headers)).json()
    assert task["sandbox"] is True
    done = await c.get(f"/v1/tasks/{task['id']}/wait?timeout=20", headers=headers)
    assert done.json()["status"] == "verified"
    assert done.json()["output"]["reviewer_id"] == "sandbox"
    live = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    assert live["sandbox"] is False  # live tasks are left to people


@pytest.mark.parametrize(
    "body",
    [{"role": "root"}, {"role": "admin", "principal": ""}, {"role": "admin", "extra": 1}, {}],
)
async def test_a_bad_key_request_is_422(server: Server, body: dict[str, Any]) -> None:
    answer = await server.client.post("/v1/keys", json=body, headers=server.a.admin)
    assert answer.status_code == 422


async def test_keys_are_for_admins(server: Server) -> None:
    c, a = server.client, server.a
    for headers in (a.requester, a.reviewer, a.sandbox):
        assert (await c.get("/v1/keys", headers=headers)).status_code == 403
        made = await c.post("/v1/keys", json={"role": "admin"}, headers=headers)
        assert made.status_code == 403


# ---------------------------------------------------------------- webhook endpoints


async def test_webhook_endpoints_crud(server: Server) -> None:
    c, a = server.client, server.a
    made = await c.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "description": "ops", "enabled": False},
        headers=a.admin,
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["*"]
    assert (endpoint["description"], endpoint["enabled"]) == ("ops", False)
    shown = (await c.get(f"/v1/webhooks/{endpoint['id']}", headers=a.admin)).json()
    assert shown["secret"] is None  # shown once
    assert aware(shown["created_at"]) == aware(endpoint["created_at"])
    assert {k: v for k, v in shown.items() if k != "secret"} == {
        k: v for k, v in endpoint.items() if k != "secret"
    }
    patched = await c.patch(
        f"/v1/webhooks/{endpoint['id']}",
        json={"events": ["task.verified"], "description": "verified only"},
        headers=a.admin,
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["task.verified"]
    assert patched.json()["description"] == "verified only"
    assert patched.json()["url"] == "http://127.0.0.1:9/hook"
    moved = await c.patch(
        f"/v1/webhooks/{endpoint['id']}", json={"url": "http://127.0.0.1:10/hook"}, headers=a.admin
    )
    assert moved.json()["url"] == "http://127.0.0.1:10/hook"
    bad = await c.patch(
        f"/v1/webhooks/{endpoint['id']}", json={"events": ["nope"]}, headers=a.admin
    )
    assert bad.status_code == 422
    odd = await c.patch(f"/v1/webhooks/{endpoint['id']}", json={"secret": "x"}, headers=a.admin)
    assert odd.status_code == 422
    second = (
        await c.post("/v1/webhooks", json={"url": "http://127.0.0.1:11/x"}, headers=a.admin)
    ).json()
    listed = (await c.get("/v1/webhooks", headers=a.admin)).json()
    assert [e["id"] for e in listed] == [endpoint["id"], second["id"]]
    assert all(e["secret"] is None for e in listed)
    assert (await c.delete(f"/v1/webhooks/{second['id']}", headers=a.admin)).status_code == 204
    kept = (await c.get(f"/v1/webhooks/{second['id']}", headers=a.admin)).json()
    assert kept["enabled"] is False  # disabled, its log kept
    log = (await c.get(f"/v1/webhooks/{second['id']}/deliveries", headers=a.admin)).json()
    assert set(log) == {"events", "attempts"}
    for path in ("/v1/webhooks", f"/v1/webhooks/{endpoint['id']}"):
        assert (await c.get(path, headers=a.requester)).status_code == 403
    missing = await c.delete("/v1/webhooks/nope", headers=a.admin)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "short"},
        {"url": "http://127.0.0.1/" + "x" * 2048},
        {"url": "http://127.0.0.1/x", "events": []},
        {"url": "http://127.0.0.1/x", "events": ["task.posted", "task.nope"]},
        {"url": "http://127.0.0.1/x", "secret": "whsec_mine"},
        {},
    ],
)
async def test_a_bad_endpoint_is_422(server: Server, body: dict[str, Any]) -> None:
    answer = await server.client.post("/v1/webhooks", json=body, headers=server.a.admin)
    assert answer.status_code == 422, answer.text
    assert (await server.client.get("/v1/webhooks", headers=server.a.admin)).json() == []


# ---------------------------------------------------------------- system


async def test_health_and_metrics(server: Server) -> None:
    c = server.client
    health = await c.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["database"] == "sqlite"
    assert health.json()["revision"]
    await c.get("/v1/tasks", headers=server.a.requester)
    metrics = await c.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'handrail_http_requests_total{method="GET",route="/v1/tasks",status="200"}' in (
        metrics.text
    )
    schema = (await c.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Handrail"
    assert "/v1/tasks/{task_id}/decision" in schema["paths"]
