"""The dialects' own writes on PostgreSQL: per-task callbacks bound by upsert, signing
secrets, feedback, registrations; with the callbacks delivered and tenancy checked."""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url

from handrail import Role
from tests.postgres import asyncpg_dsn
from tests.server._live import Receiver
from tests.server.conftest import Server, make_settings, running

pytestmark = pytest.mark.postgres
SCHEMA = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}


@pytest.fixture
async def server(postgres_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    name = f"compat_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        try:
            async with running(make_settings(tmp_path, database_url=url)) as started:
                yield started
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def delivered(server: Server, receiver: Receiver, count: int) -> list[Any]:
    for _ in range(2000):
        await server.hub.delivery.deliver_due()
        if len(got := receiver.snapshot()) >= count:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(receiver.snapshot())} of {count} deliveries arrived")


async def test_the_dialects_on_postgres(server: Server, receiver: Receiver) -> None:
    c, a = server.client, server.a
    hr = "/compat/humanrail/v1"
    body = {
        "idempotencyKey": "pg-1",
        "taskType": "check",
        "payload": {},
        "outputSchema": SCHEMA,
        "payout": {"currency": "USD", "maxAmount": 0},
        "callbackUrl": receiver.url,
    }
    first = await c.post(f"{hr}/tasks", json=body, headers=a.sandbox)
    again = await c.post(f"{hr}/tasks", json=body, headers=a.sandbox)
    assert (first.status_code, again.status_code) == (201, 200)
    other = await c.post(
        f"{hr}/tasks", json={**body, "callbackUrl": f"{receiver.url}?other"}, headers=a.sandbox
    )
    assert other.status_code == 409  # the key names another request
    play = await server.key("acme", Role.ADMIN, sandbox=True)  # the sandbox's own secret
    secret = (await c.get(f"{hr}/webhooks/secret", headers=play)).json()["secret"]
    assert (await c.get(f"{hr}/webhooks/secret", headers=play)).json()["secret"] == secret
    rotated = (await c.post(f"{hr}/webhooks/secret/rotate", headers=play)).json()["secret"]
    assert rotated != secret
    events = await delivered(server, receiver, 4)  # the simulated reviewer answers it
    assert sorted(json.loads(e.body)["type"] for e in events) == [
        "task.assigned",
        "task.posted",
        "task.submitted",
        "task.verified",
    ]
    for event in events:  # signed with the secret the task was made under
        stamp, mac = event.headers["x-escalation-signature"].removeprefix("t=").split(",v1=")
        signed = f"{stamp}.{event.body.decode()}".encode()
        assert mac == hmac.new(secret.encode(), signed, "sha256").hexdigest()

    hc = "/compat/humancheck"
    review = (
        await c.post(
            f"{hc}/reviews",
            json={"task_type": "pay", "proposed_action": "pay"},
            headers=a.requester,
        )
    ).json()
    decided = await c.post(
        f"{hc}/reviews/{review['id']}/decide", json={"decision_type": "approve"}, headers=a.reviewer
    )
    assert decided.status_code == 200
    rated = await c.post(
        f"{hc}/reviews/{review['id']}/feedback", json={"rating": 4}, headers=a.requester
    )
    assert rated.status_code == 201
    stranger = await c.post(
        f"{hc}/reviews/{review['id']}/feedback", json={"rating": 1}, headers=server.b.requester
    )
    assert stranger.status_code == 404

    ho = "/compat/humanops/api/v1"
    agent = (
        await c.post(f"{ho}/agents/register", json={"name": "pg-agent", "email": "p@example.com"})
    ).json()
    key = {"X-API-Key": agent["api_key"]}
    deposit = {"tx_hash": "0xpg", "amount_usdc": 20, "chain": "base"}
    for _ in range(2):
        assert (
            await c.post(f"{ho}/agents/deposit/usdc", json=deposit, headers=key)
        ).status_code == 200
    balance = (await c.get(f"{ho}/agents/balance", headers=key)).json()
    assert balance["deposit_balance"] == 20  # one transfer, credited once
    hook = "the agent's own callback secret"
    task = {
        "title": "Check the sign",
        "description": "Photograph it",
        "location": {"address": "1 Main St"},
        "reward_usd": 12,
        "deadline": server.hub.clock.now().isoformat(),
        "proof_requirements": ["a photo"],
        "task_type": "PHOTO",
        "callback_url": receiver.url,
        "callback_secret": hook,
    }
    too_soon = await c.post(f"{ho}/tasks", json=task, headers=key)
    assert too_soon.status_code == 400 and "deadline" in too_soon.json()["error"]
    task["deadline"] = (server.hub.clock.now() + timedelta(hours=3)).isoformat()
    made = await c.post(f"{ho}/tasks", json=task, headers=key)
    assert made.status_code == 201 and made.json()["sandbox"] is True
    got = await delivered(server, receiver, 5)  # four HumanRail events, then this one
    (verified,) = [e for e in got if json.loads(e.body).get("event") == "task.verified"]
    assert json.loads(verified.body)["task_id"] == made.json()["task_id"]
    assert (
        verified.headers["x-humanops-signature"]
        == hmac.new(hook.encode(), verified.body, "sha256").hexdigest()
    )
