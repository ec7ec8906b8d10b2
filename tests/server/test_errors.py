"""Errors: RFC 9457 problem details for every status, validation errors with paths, rate
limits with ``Retry-After``, and ``X-Request-Id`` on every response."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from handrail import Role, StoreError
from handrail.clock import ManualClock
from tests.server.conftest import Server, make_settings, review, running

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check that ``response`` is a complete problem document and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["type"] == f"https://handrail.dev/problems/{body['code']}"
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if code is not None:
        assert body["code"] == code
    return body


async def _post(server: Server, **more: Any) -> dict[str, Any]:
    created = await server.client.post("/v1/tasks", json=review(**more), headers=server.a.requester)
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


# ---------------------------------------------------------------- 401, 403


async def test_401_without_a_key_or_with_a_bad_one(server: Server) -> None:
    c = server.client
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer hr_live_not-a-real-key"},
        {"Authorization": "Bearer sk_something_else"},
        {"X-API-Key": "hr_test_nope"},
    ):
        answer = await c.get("/v1/tasks", headers=headers)
        body = problem(answer, 401, "unauthenticated")
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "hr_" not in body["detail"] or "Bearer" in body["detail"]


async def test_x_api_key_works_like_a_bearer_token(server: Server) -> None:
    token = server.a.requester["Authorization"].removeprefix("Bearer ")
    answer = await server.client.get("/v1/tasks", headers={"X-API-Key": token})
    assert answer.status_code == 200


async def test_a_revoked_key_stops_working(server: Server) -> None:
    c, a = server.client, server.a
    extra = await server.key("acme", Role.REQUESTER, principal="temp")
    assert (await c.get("/v1/tasks", headers=extra)).status_code == 200
    key_id = next(
        k["id"]
        for k in (await c.get("/v1/keys", headers=a.admin)).json()
        if k["principal"] == "temp"
    )
    assert (await c.delete(f"/v1/keys/{key_id}", headers=a.admin)).status_code == 204
    server.hub.auth._known.clear()  # known keys are remembered for a few seconds (by design)
    problem(await c.get("/v1/tasks", headers=extra), 401, "unauthenticated")


async def test_403_for_the_wrong_role(server: Server) -> None:
    c, a = server.client, server.a
    problem(await c.post("/v1/tasks", json=review(), headers=a.reviewer), 403, "permission_denied")
    problem(await c.get("/v1/queue", headers=a.requester), 403, "permission_denied")
    problem(await c.get("/v1/keys", headers=a.requester), 403, "permission_denied")
    task = await _post(server)
    denied = await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.requester)
    assert problem(denied, 403, "permission_denied")["principal"] == "acme-agent"


# ---------------------------------------------------------------- 402, 404, 405, 409, 410


async def test_402_when_the_organisation_cannot_pay_and_nothing_is_created(server: Server) -> None:
    c, a = server.client, server.a
    paid = review(payout={"currency": "USD", "amount": "5.00"})
    body = problem(
        await c.post("/v1/tasks", json=paid, headers=a.requester), 402, "insufficient_funds"
    )
    assert body["currency"] == "USD" and body["available"] == 0 and body["needed"] > 0
    assert (await c.get("/v1/tasks", headers=a.requester)).json()["data"] == []
    balance = (await c.get("/v1/balance", headers=a.requester)).json()
    assert balance["available"]["amount"] == "0.00" and balance["held"]["amount"] == "0.00"


async def test_404_for_unknown_objects_and_routes(server: Server) -> None:
    c, a = server.client, server.a
    body = problem(await c.get("/v1/tasks/nope", headers=a.requester), 404, "not_found")
    assert (body["resource"], body["id"]) == ("task", "nope")
    problem(await c.get("/v1/nowhere", headers=a.requester), 404, "not_found")
    problem(await c.get("/v1/uploads/nope", headers=a.requester), 404, "not_found")
    problem(await c.get("/v1/webhooks/nope", headers=a.admin), 404, "not_found")
    problem(await c.delete("/v1/keys/nope", headers=a.admin), 404, "not_found")


async def test_405_names_the_allowed_methods(server: Server) -> None:
    answer = await server.client.delete("/v1/tasks", headers=server.a.requester)
    problem(answer, 405, "method_not_allowed")
    assert "POST" in answer.headers["allow"]


async def test_409_for_a_move_the_task_cannot_make(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server)
    await c.post(f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=a.reviewer)
    body = problem(
        await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester),
        409,
        "invalid_transition",
    )
    assert (body["task_id"], body["from_status"]) == (task["id"], "verified")
    again = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "reject", "message": "no"},
        headers=a.reviewer,
    )
    problem(again, 409, "invalid_transition")


async def test_410_when_acting_on_an_expired_task(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running(make_settings(tmp_path), clock) as server:
        c, a = server.client, server.a
        task = await _post(server, sla_seconds=60)
        clock.advance(61)
        # the deadline passed: the task expires now, whatever was asked, and says so
        late = await c.post(
            f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=a.reviewer
        )
        refused = problem(late, 410, "task_expired")
        assert refused["from_status"] == "expired" and "claim" not in refused["detail"]
        for path, headers in (
            ("claim", a.reviewer),
            ("decision", a.reviewer),
            ("cancel", a.requester),
        ):
            body = {"type": "approve"} if path == "decision" else None
            answer = await c.post(f"/v1/tasks/{task['id']}/{path}", json=body, headers=headers)
            assert problem(answer, 410, "task_expired")["from_status"] == "expired"
        now = (await c.get(f"/v1/tasks/{task['id']}", headers=a.requester)).json()
        assert now["status"] == "expired"


# ---------------------------------------------------------------- 400, 422


async def test_422_validation_errors_name_each_field(server: Server) -> None:
    c, a = server.client, server.a
    bad = await c.post(
        "/v1/tasks",
        json={
            "kind": "review",
            "action": {"name": "x", "args": {}},
            "sla_seconds": 0,
            "payout": {"currency": "EUR", "amount": "1"},
        },
        headers=a.requester,
    )
    paths = {e["path"] for e in problem(bad, 422, "validation_error")["errors"]}
    assert {"$.sla_seconds", "$.payout"} <= paths
    query = await c.get("/v1/tasks?limit=0&status=bogus", headers=a.requester)
    errors = problem(query, 422, "validation_error")["errors"]
    assert [e["path"] for e in errors] == ["query:status[0]", "query:limit"]
    assert all(e["message"] for e in errors)
    judgment = await c.post(
        "/v1/tasks",
        json={"kind": "judgment", "output_schema": {"type": "nonsense"}},
        headers=a.requester,
    )
    assert problem(judgment, 422, "validation_error")["errors"][0]["path"].startswith(
        "$.output_schema"
    )
    task = await _post(server)
    decision = await c.post(
        f"/v1/tasks/{task['id']}/decision", json={"type": "maybe"}, headers=a.reviewer
    )
    assert problem(decision, 422)["errors"][0]["path"] == "$.type"


async def test_422_for_a_body_that_is_not_json(server: Server) -> None:
    answer = await server.client.post(
        "/v1/tasks",
        content=b'{"kind": "review", ',
        headers={**server.a.requester, "content-type": "application/json"},
    )
    errors = problem(answer, 422, "validation_error")["errors"]
    assert errors[0]["path"] == "$" and "not valid JSON" in errors[0]["message"]


async def test_400_for_a_malformed_idempotency_key(server: Server) -> None:
    for key in ("x" * 257, '""'):
        answer = await server.client.post(
            "/v1/tasks", json=review(), headers={**server.a.requester, "Idempotency-Key": key}
        )
        problem(answer, 400, "bad_idempotency_key")
    assert (await server.client.get("/v1/tasks", headers=server.a.requester)).json()["data"] == []


# ---------------------------------------------------------------- 429


async def test_429_with_retry_after_per_key(tmp_path: Path) -> None:
    # a tiny limit: bursts of 3, then one request every 10 seconds
    tiny = make_settings(tmp_path, rate_limit_per_second=0.1, rate_limit_burst=3)
    async with running(tiny) as server:
        await _rate_limited(server)


async def _rate_limited(server: Server) -> None:
    c, a = server.client, server.a
    for _ in range(3):
        assert (await c.get("/v1/tasks", headers=a.requester)).status_code == 200
    limited = await c.get("/v1/tasks", headers=a.requester)
    body = problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 10
    assert 0 < body["retry_after"] <= 10
    # a write is refused too, before it does anything
    refused = await c.post("/v1/tasks", json=review(), headers=a.requester)
    problem(refused, 429, "rate_limited")
    # other keys have buckets of their own
    assert (await c.get("/v1/tasks", headers=a.admin)).json()["data"] == []
    assert (await c.get("/v1/tasks", headers=server.b.requester)).status_code == 200


# ---------------------------------------------------------------- 500, 503


async def _broken_client(server: Server) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://handrail.test")


async def test_500_is_a_problem_with_a_request_id_and_no_traceback(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server.hub.engine, "get", broken)
    async with await _broken_client(server) as c:
        answer = await c.get(
            "/v1/tasks/x", headers={**server.a.requester, "X-Request-Id": "trace-500"}
        )
    body = problem(answer, 500, "internal_error")
    assert answer.headers["x-request-id"] == body["request_id"] == "trace-500"
    assert "secret internals" not in answer.text


async def test_503_when_the_database_is_unavailable(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the database is unavailable")

    monkeypatch.setattr(server.hub.engine, "get", down)
    answer = await server.client.get("/v1/tasks/x", headers=server.a.requester)
    problem(answer, 503, "store_error")
    assert answer.headers["retry-after"] == "1"


# ---------------------------------------------------------------- X-Request-Id

_GENERATED = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def test_every_response_carries_a_request_id(server: Server) -> None:
    c, a = server.client, server.a
    seen = set()
    for answer in (
        await c.get("/healthz"),
        await c.get("/metrics"),
        await c.get("/openapi.json"),
        await c.get("/v1/tasks", headers=a.requester),
        await c.post("/v1/tasks", json=review(), headers=a.requester),
        await c.get("/v1/tasks"),
        await c.get("/v1/tasks/nope", headers=a.requester),
        await c.post("/v1/tasks", json={}, headers=a.requester),
        await c.delete("/v1/tasks", headers=a.requester),
    ):
        rid = answer.headers["x-request-id"]
        assert _GENERATED.match(rid), rid
        seen.add(rid)
    assert len(seen) == 9  # a new one each time


async def test_the_callers_request_id_is_echoed_when_sane(server: Server) -> None:
    c, a = server.client, server.a
    for given in ("abc-123", "req_01HZ:retry.2", "x" * 100):
        ok = await c.get("/v1/tasks", headers={**a.requester, "X-Request-Id": given})
        assert ok.headers["x-request-id"] == given
        missing = await c.get("/v1/tasks/nope", headers={**a.requester, "X-Request-Id": given})
        assert missing.headers["x-request-id"] == missing.json()["request_id"] == given
    for insane in ("x" * 101, "has space", "semi;colon", "<script>", "é"):
        answer = await c.get(
            "/v1/tasks", headers={**a.requester, "X-Request-Id": insane.encode("latin-1")}
        )
        assert _GENERATED.match(answer.headers["x-request-id"]), insane
    answer = await c.get("/v1/tasks", headers=[*a.requester.items(), ("X-Request-Id", "")])
    assert _GENERATED.match(answer.headers["x-request-id"])
