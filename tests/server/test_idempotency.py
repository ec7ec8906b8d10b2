"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header): a replay gets the stored
response and creates nothing twice; the same key with another body is 422; a duplicate
while the first is in flight is 409; stored errors replay too; retryable failures are not
stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from handrail import StoreError, TaskSpec
from handrail_server.idempotency import fingerprint
from handrail_server.tables import idempotency, webhook_outbox
from tests.server.conftest import Server, review

SAFETY = 20


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _tasks(server: Server, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = await server.client.get("/v1/tasks", headers=headers)
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def test_a_replay_returns_the_stored_response_and_creates_nothing(server: Server) -> None:
    c, a = server.client, server.a
    first = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "order-1"))
    assert first.status_code == 201
    assert "idempotency-replayed" not in first.headers
    assert first.json()["idempotency_key"] == "order-1"  # the engine's own key too
    again = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, '"order-1"'))
    assert again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    assert [t["id"] for t in await _tasks(server, a.requester)] == [first.json()["id"]]
    history = await c.get(f"/v1/tasks/{first.json()['id']}/history", headers=a.requester)
    assert [e["event"] for e in history.json()["data"]] == ["create"]


async def test_the_same_key_with_another_body_is_422(server: Server) -> None:
    c, a = server.client, server.a
    first = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "k"))
    assert first.status_code == 201
    other = await c.post("/v1/tasks", json=review("delete_user"), headers=keyed(a.requester, "k"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(await _tasks(server, a.requester)) == 1


async def test_a_duplicate_while_the_first_is_in_flight_is_409(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, a = server.client, server.a
    inside, release = asyncio.Event(), asyncio.Event()
    create = server.hub.engine.create

    async def slow_create(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        await release.wait()
        return await create(*args, **kwargs)

    monkeypatch.setattr(server.hub.engine, "create", slow_create)
    first = asyncio.create_task(
        c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "twin"))
    )
    await asyncio.wait_for(inside.wait(), SAFETY)
    twin = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "twin"))
    assert twin.status_code == 409
    assert twin.json()["code"] == "idempotency_in_flight"
    assert twin.headers["retry-after"] == "1"
    release.set()
    done = await asyncio.wait_for(first, SAFETY)
    assert done.status_code == 201
    monkeypatch.setattr(server.hub.engine, "create", create)
    replay = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "twin"))
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json()["id"] == done.json()["id"]
    assert len(await _tasks(server, a.requester)) == 1


async def _in_flight(server: Server, key: str, body: Any, age: timedelta) -> None:
    row = {
        "org_id": "acme",
        "key": key,
        "route": "POST /v1/tasks",
        "fingerprint": fingerprint(body),
        "state": "in_flight",
        "created_at": server.hub.clock.now() - age,
    }
    await server.hub.store.run(lambda conn: conn.execute(insert(idempotency), [row]))


async def test_an_in_flight_row_refuses_retries_until_it_is_stale(server: Server) -> None:
    c, a = server.client, server.a
    spec = review()
    parsed = TaskSpec.model_validate(spec).model_dump(mode="json")  # what is fingerprinted
    await _in_flight(server, "running", parsed, timedelta(seconds=1))
    busy = await c.post("/v1/tasks", json=spec, headers=keyed(a.requester, "running"))
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_flight"
    # another body under an in-flight key is still a misuse of the key
    other = await c.post("/v1/tasks", json=review("x"), headers=keyed(a.requester, "running"))
    assert other.status_code == 422
    # a request left in flight for over a minute (its process died) is taken over
    await _in_flight(server, "abandoned", parsed, timedelta(minutes=5))
    taken = await c.post("/v1/tasks", json=spec, headers=keyed(a.requester, "abandoned"))
    assert taken.status_code == 201 and "idempotency-replayed" not in taken.headers
    replay = await c.post("/v1/tasks", json=spec, headers=keyed(a.requester, "abandoned"))
    assert replay.headers["idempotency-replayed"] == "true"
    assert len(await _tasks(server, a.requester)) == 1


async def test_stored_errors_replay_too(server: Server) -> None:
    c, a = server.client, server.a
    paid = review(payout={"currency": "USD", "amount": "5.00"})
    broke = await c.post("/v1/tasks", json=paid, headers=keyed(a.requester, "pay-1"))
    assert broke.status_code == 402
    deposit = await c.post(
        "/v1/deposits",
        json={"amount": {"currency": "USD", "amount": "100.00"}},
        headers=keyed(a.admin, "dep-1"),
    )
    assert deposit.status_code == 201
    replay = await c.post("/v1/tasks", json=paid, headers=keyed(a.requester, "pay-1"))
    assert replay.status_code == 402  # the stored answer, not a new attempt
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.headers["content-type"] == "application/problem+json"
    body = replay.json()
    assert body["code"] == "insufficient_funds"
    assert body["request_id"] == replay.headers["x-request-id"] != broke.headers["x-request-id"]
    assert body["instance"] == "/v1/tasks"
    assert await _tasks(server, a.requester) == []
    # a new key is a new request, and now there is money
    fresh = await c.post("/v1/tasks", json=paid, headers=keyed(a.requester, "pay-2"))
    assert fresh.status_code == 201


@pytest.mark.parametrize("failure", [StoreError("database down"), RuntimeError("crash")])
async def test_retryable_failures_are_not_stored(
    server: Server, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    a = server.a
    create = server.hub.engine.create

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(server.hub.engine, "create", failing)
    transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as c:
        failed = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "retry"))
        assert failed.status_code in (500, 503)
        monkeypatch.setattr(server.hub.engine, "create", create)
        retried = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "retry"))
    assert retried.status_code == 201
    assert "idempotency-replayed" not in retried.headers


async def test_a_key_is_the_callers_organisations_only(server: Server) -> None:
    c, a, b = server.client, server.a, server.b
    mine = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "shared"))
    theirs = await c.post("/v1/tasks", json=review(), headers=keyed(b.requester, "shared"))
    assert theirs.status_code == 201
    assert "idempotency-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["org_id"] == "rival"


async def test_without_a_key_each_request_creates(server: Server) -> None:
    c, a = server.client, server.a
    for _ in range(2):
        assert (await c.post("/v1/tasks", json=review(), headers=a.requester)).status_code == 201
    assert len(await _tasks(server, a.requester)) == 2


async def test_a_lost_idempotency_record_still_cannot_create_twice(server: Server) -> None:
    """The header key is the task's own key too: even with the HTTP record gone (a crash
    between the task's commit and the record's), the retry finds the same task."""
    c, a = server.client, server.a
    first = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "crash"))
    await server.hub.store.run(lambda conn: conn.execute(idempotency.delete()))
    again = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "crash"))
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(await _tasks(server, a.requester)) == 1


async def test_decisions_replay_and_refuse_another_decision_under_the_same_key(
    server: Server,
) -> None:
    c, a = server.client, server.a
    endpoint = await c.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "enabled": True}, headers=a.admin
    )
    assert endpoint.status_code == 201
    task = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    path = f"/v1/tasks/{task['id']}/decision"
    approve = {"type": "approve", "message": "fine"}

    async def outbox() -> int:
        query = select(func.count()).select_from(webhook_outbox)
        return int(await server.hub.store.run(lambda conn: conn.execute(query).scalar_one()))

    decided = await c.post(path, json=approve, headers=keyed(a.reviewer, "d-1"))
    assert decided.status_code == 200
    queued = await outbox()
    replay = await c.post(path, json=approve, headers=keyed(a.reviewer, "d-1"))
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == decided.json()
    assert await outbox() == queued  # no second round of webhook events
    other = await c.post(
        path, json={"type": "reject", "message": "no"}, headers=keyed(a.reviewer, "d-1")
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    history = await c.get(f"/v1/tasks/{task['id']}/history", headers=a.requester)
    assert [e["event"] for e in history.json()["data"]].count("submit") == 1


async def test_deposits_need_a_key_and_credit_once(server: Server) -> None:
    c, a = server.client, server.a
    body = {"amount": {"currency": "USD", "amount": "12.34"}, "reference": "wire-1"}
    missing = await c.post("/v1/deposits", json=body, headers=a.admin)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"
    first = await c.post("/v1/deposits", json=body, headers=keyed(a.admin, "dep"))
    again = await c.post("/v1/deposits", json=body, headers=keyed(a.admin, "dep"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    balance = (await c.get("/v1/balance", headers=a.requester)).json()
    assert balance["available"] == {"currency": "USD", "amount": "12.34"}
    other = await c.post(
        "/v1/deposits",
        json={**body, "amount": {"currency": "USD", "amount": "1.00"}},
        headers=keyed(a.admin, "dep"),
    )
    assert other.status_code == 422
