"""Money moves only where the roles allow (issue 19), over HTTP on SQLite and PostgreSQL:
no identity earns from a task it created, funds or approved the estimate of; keys are not
minted for an identity holding another role; live money enters only through the funding
rail or an admin's credit; reviewers do not read the organisation's money; a revoked key
stops at once here and within 1 s in another process (two hubs on one database)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.postgres import asyncpg_dsn
from tests.server.conftest import Server, make_settings, running

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
HO = "/compat/humanops/api/v1"


def usd(amount: str) -> dict[str, str]:
    return {"currency": "USD", "amount": amount}


def paid(amount: str, **more: Any) -> dict[str, Any]:
    return {
        "kind": "judgment",
        "title": "What is it?",
        "output_schema": SCHEMA,
        "payout": usd(amount),
        **more,
    }


async def _fund(server: Server, amount: str = "50.00") -> None:
    made = await server.client.post(
        "/v1/deposits",
        json={"amount": usd(amount)},
        headers={**server.a.admin, "Idempotency-Key": "fund"},
    )
    assert made.status_code == 201, made.text


async def _post(server: Server, headers: dict[str, str], spec: dict[str, Any]) -> str:
    made = await server.client.post("/v1/tasks", json=spec, headers=headers)
    assert made.status_code == 201, made.text
    task_id: str = made.json()["id"]
    return task_id


async def _pending(server: Server, headers: dict[str, str]) -> str:
    got = await server.client.get("/v1/earnings", headers=headers)
    assert got.status_code == 200, got.text
    amount: str = got.json()["pending"]["amount"]
    return amount


async def test_an_admin_does_not_answer_its_own_paid_task(any_server: Server) -> None:
    s, c = any_server, any_server.client
    await _fund(s)
    task = await _post(s, s.a.admin, paid("1.00"))
    answer = await c.post(
        f"/v1/tasks/{task}/submissions", json={"output": {"label": "x"}}, headers=s.a.admin
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "not_eligible"
    claim = await c.post(f"/v1/tasks/{task}/claim", headers=s.a.admin)
    assert claim.status_code == 403 and claim.json()["code"] == "not_eligible"
    assert await _pending(s, s.a.admin) == "0.00"
    # someone else may: the task is fine, only the self-dealing is refused
    done = await c.post(
        f"/v1/tasks/{task}/submissions", json={"output": {"label": "x"}}, headers=s.a.reviewer
    )
    assert done.status_code == 200 and done.json()["status"] == "verified", done.text
    audit = (await c.get("/v1/audit?limit=500", headers=s.a.admin)).json()["data"]
    assert any(e["kind"].endswith("refused") and e["task_id"] == task for e in audit), audit


async def test_no_estimate_on_ones_own_task_nor_approving_ones_own(any_server: Server) -> None:
    s, c = any_server, any_server.client
    await _fund(s)
    own = await _post(s, s.a.admin, paid("1.00", require_estimate=True))
    offer = await c.post(
        f"/v1/tasks/{own}/estimate", json={"amount": usd("5.00")}, headers=s.a.admin
    )
    assert offer.status_code == 403 and offer.json()["code"] == "not_eligible", offer.text
    # on a requester's task, an admin may offer, but not approve its own offer
    theirs = await _post(s, s.a.requester, paid("1.00", require_estimate=True))
    offer = await c.post(
        f"/v1/tasks/{theirs}/estimate", json={"amount": usd("9.00")}, headers=s.a.admin
    )
    assert offer.status_code == 200, offer.text
    approve = await c.post(f"/v1/tasks/{theirs}/estimate/approve", headers=s.a.admin)
    assert approve.status_code == 403 and approve.json()["code"] == "not_eligible", approve.text
    approve = await c.post(f"/v1/tasks/{theirs}/estimate/approve", headers=s.a.requester)
    assert approve.status_code == 200, approve.text
    assert approve.json()["estimate"]["approved_by"] == "acme-agent"


async def test_no_key_for_an_identity_holding_another_role(any_server: Server) -> None:
    c, a = any_server.client, any_server.a
    minted = await c.post(
        "/v1/keys", json={"role": "reviewer", "principal": "acme-agent"}, headers=a.admin
    )
    assert minted.status_code == 422, minted.text
    assert "already holds the requester role" in minted.text
    same = await c.post(
        "/v1/keys", json={"role": "requester", "principal": "acme-agent"}, headers=a.admin
    )
    assert same.status_code == 201, same.text  # another key in the same role is fine


async def test_live_money_enters_only_by_the_rail_or_an_admin(any_server: Server) -> None:
    s, c, a = any_server, any_server.client, any_server.a
    live = await c.post(
        "/v1/deposits",
        json={"amount": usd("1000.00"), "reference": "wire-123"},
        headers={**a.requester, "Idempotency-Key": "wire-123"},
    )
    assert live.status_code == 403, live.text
    assert live.headers["content-type"].startswith("application/problem+json")
    fiat = await c.post(f"{HO}/agents/deposit", json={"amount_usd": 100}, headers=a.requester)
    usdc = await c.post(
        f"{HO}/agents/deposit/usdc",
        json={"tx_hash": "0xany", "amount_usdc": 100},
        headers=a.requester,
    )
    assert (fiat.status_code, usdc.status_code) == (403, 403), (fiat.text, usdc.text)
    balance = (await c.get("/v1/balance", headers=a.requester)).json()
    assert balance["available"]["amount"] == "0.00"
    # a test key still gets sandbox credit, and an admin records credit
    sandbox = await c.post(
        "/v1/deposits",
        json={"amount": usd("5.00")},
        headers={**a.sandbox, "Idempotency-Key": "sandbox-1"},
    )
    assert sandbox.status_code == 201, sandbox.text
    ops = await c.post(f"{HO}/agents/deposit", json={"amount_usd": 5}, headers=a.sandbox)
    assert ops.status_code == 200, ops.text
    await _fund(s, "1.00")


async def test_reviewers_do_not_read_the_organisations_money(any_server: Server) -> None:
    c, a = any_server.client, any_server.a
    await _fund(any_server, "3.00")
    balance = await c.get("/v1/balance", headers=a.reviewer)
    assert balance.status_code == 403 and balance.json()["code"] == "permission_denied"
    assert (await c.get(f"{HO}/agents/balance", headers=a.reviewer)).status_code == 403
    org = await c.get("/v1/ledger/entries?account=org", headers=a.reviewer)
    assert org.status_code == 403, org.text  # it exists: 403, never a 404
    own = await c.get("/v1/ledger/entries?account=pending", headers=a.reviewer)
    assert own.status_code == 200, own.text
    seen = await c.get("/v1/ledger/entries?account=org", headers=a.requester)
    assert seen.status_code == 200 and len(seen.json()["data"]) == 1


async def test_a_revoked_key_stops_at_once_in_its_process(any_server: Server) -> None:
    c, a = any_server.client, any_server.a
    made = await c.post("/v1/keys", json={"role": "requester"}, headers=a.admin)
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await c.get("/v1/me", headers=key)).status_code == 200  # now remembered
    assert (await c.delete(f"/v1/keys/{made.json()['id']}", headers=a.admin)).status_code == 204
    answers = [(await c.get("/v1/me", headers=key)).status_code for _ in range(20)]
    assert answers == [401] * 20


async def _two_hubs_see_a_revocation(one: Server, two: Server) -> float:
    made = await one.client.post("/v1/keys", json={"role": "requester"}, headers=one.a.admin)
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await two.client.get("/v1/me", headers=key)).status_code == 200  # remembered there
    revoked = await one.client.delete(f"/v1/keys/{made.json()['id']}", headers=one.a.admin)
    assert revoked.status_code == 204
    started, served = time.perf_counter(), 0
    while (await two.client.get("/v1/me", headers=key)).status_code == 200:
        served += 1
        assert time.perf_counter() - started < 3, "the revoked key still works elsewhere"
        await asyncio.sleep(0.01)
    took = time.perf_counter() - started
    print(f"\nrevocation seen by the other hub after {took * 1000:.0f} ms ({served} more 200s)")
    return took


async def test_a_revoked_key_stops_within_a_second_on_another_sqlite_hub(
    tmp_path: Path,
) -> None:
    """The other hub remembers a key for at most the 1 s after it read it: no request sent
    later than that second is served, however slowly the machine answers."""
    settings = make_settings(tmp_path)
    async with running(settings) as one, running(settings) as two:
        made = await one.client.post("/v1/keys", json={"role": "requester"}, headers=one.a.admin)
        key = {"Authorization": f"Bearer {made.json()['key']}"}
        assert (await two.client.get("/v1/me", headers=key)).status_code == 200
        remembered_until = time.perf_counter() + 1.0  # read by then: kept 1 s at most
        revoked = await one.client.delete(f"/v1/keys/{made.json()['id']}", headers=one.a.admin)
        assert revoked.status_code == 204
        served: list[float] = []
        while True:
            sent = time.perf_counter()
            if (await two.client.get("/v1/me", headers=key)).status_code != 200:
                break
            served.append(sent)
            assert sent < remembered_until + 2, "the revoked key still works elsewhere"
            await asyncio.sleep(0.01)
        assert all(at < remembered_until for at in served), (served, remembered_until)


@pytest.fixture
async def pg_database(postgres_url: str) -> AsyncIterator[str]:
    name = f"roles_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield re.sub(r"/[^/]*$", f"/{name}", postgres_url)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_a_revoked_key_stops_at_once_on_another_postgres_hub(
    pg_database: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database_url=pg_database)
    async with running(settings) as one, running(settings) as two:
        # NOTIFY carries it: far sooner than the second a key is remembered
        assert await _two_hubs_see_a_revocation(one, two) < 0.5
