"""Money over HTTP: the fee schedule, deposits, balance and ledger entries, a paid task's
escrow, earnings through the hold period, and payouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from handrail import Role
from handrail.clock import ManualClock
from handrail.ledger import SandboxFundingRail
from tests.server.conftest import Server, make_settings, review, running


def usd(amount: str) -> dict[str, str]:
    return {"currency": "USD", "amount": amount}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _deposit(server: Server, amount: str, key: str = "fund") -> dict[str, Any]:
    answer = await server.client.post(
        "/v1/deposits", json={"amount": usd(amount)}, headers=keyed(server.a.admin, key)
    )
    assert answer.status_code == 201, answer.text
    posting: dict[str, Any] = answer.json()
    return posting


async def _balance(server: Server, headers: dict[str, str] | None = None) -> tuple[str, str]:
    answer = await server.client.get("/v1/balance", headers=headers or server.a.requester)
    body = answer.json()
    return body["available"]["amount"], body["held"]["amount"]


async def _earnings(server: Server, headers: dict[str, str] | None = None) -> dict[str, str]:
    answer = await server.client.get("/v1/earnings", headers=headers or server.a.reviewer)
    assert answer.status_code == 200, answer.text
    return {k: v["amount"] for k, v in answer.json().items() if isinstance(v, dict)}


async def test_the_fee_schedule(server: Server) -> None:
    answer = await server.client.get("/v1/fees", headers=server.a.requester)
    assert answer.status_code == 200
    fees = answer.json()
    assert fees["window_days"] == 30
    assert fees["rounding"].startswith("half up")
    usd_fees = fees["currencies"]["USD"]
    assert [t["percent"] for t in usd_fees["tiers"]] == [10, 8, 5]
    assert usd_fees["minimum"] == 10
    assert "SATS" in fees["currencies"]
    assert (await server.client.get("/v1/fees")).status_code == 401


async def test_deposits_by_role(server: Server) -> None:
    c, a = server.client, server.a
    posting = await _deposit(server, "20.00")
    assert posting["kind"] == "deposit" and posting["org_id"] == "acme"
    assert await _balance(server) == ("20.00", "0.00")
    # a sandbox key gets sandbox credit, in the sandbox: the live balance is untouched
    sandbox = await c.post(
        "/v1/deposits", json={"amount": usd("5.00")}, headers=keyed(a.sandbox, "sandbox-1")
    )
    assert sandbox.status_code == 201
    assert await _balance(server) == ("20.00", "0.00")
    assert await _balance(server, a.sandbox) == ("5.00", "0.00")
    # a live requester: no funding rail here, so no live money but an admin's credit
    unrailed = await c.post(
        "/v1/deposits", json={"amount": usd("5.00")}, headers=keyed(a.requester, "live-0")
    )
    assert unrailed.status_code == 403, unrailed.text
    # with a rail, it names a transfer the rail confirms
    server.hub.ledger.funding_rail = SandboxFundingRail()
    unnamed = await c.post(
        "/v1/deposits", json={"amount": usd("5.00")}, headers=keyed(a.requester, "live-1")
    )
    assert unnamed.status_code == 422 and unnamed.json()["errors"][0]["path"] == "$.reference"
    reviewer = await c.post(
        "/v1/deposits", json={"amount": usd("5.00")}, headers=keyed(a.reviewer, "r-1")
    )
    assert reviewer.status_code == 403
    for bad in ("0", "-1", "1.001", "lots"):
        refused = await c.post(
            "/v1/deposits", json={"amount": usd(bad)}, headers=keyed(a.admin, f"bad-{bad}")
        )
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0]["path"].startswith("$.amount"), bad
    floats = await c.post(
        "/v1/deposits",
        json={"amount": {"currency": "USD", "amount": 1.5}},
        headers=keyed(a.admin, "float"),
    )
    assert floats.status_code == 422
    assert await _balance(server) == ("20.00", "0.00")


async def test_a_paid_task_holds_its_price_and_pays_when_verified(server: Server) -> None:
    c, a = server.client, server.a
    await _deposit(server, "20.00")
    task = await c.post("/v1/tasks", json=review(payout=usd("5.00")), headers=a.requester)
    assert task.status_code == 201
    # 5.00 reward + 10% fee (0.50) held
    assert await _balance(server) == ("14.50", "5.50")
    decided = await c.post(
        f"/v1/tasks/{task.json()['id']}/decision", json={"type": "approve"}, headers=a.reviewer
    )
    assert decided.status_code == 200
    assert await _balance(server) == ("14.50", "0.00")
    assert await _earnings(server) == {"pending": "5.00", "available": "0.00", "total": "5.00"}
    # the organisation's entries, oldest first, a page at a time
    page = await c.get("/v1/ledger/entries?limit=1", headers=a.requester)
    assert page.status_code == 200
    first = page.json()
    assert first["has_more"] is True and len(first["data"]) == 1
    assert first["data"][0]["kind"] == "deposit" and first["data"][0]["amount"] == 2000
    rest = await c.get(
        "/v1/ledger/entries", params={"after": first["next_cursor"]}, headers=a.requester
    )
    # (the resolve posting has no org entry: the escrow held exactly the reward and fee)
    assert [(e["kind"], e["amount"]) for e in rest.json()["data"]] == [("hold", -550)]
    assert rest.json()["has_more"] is False
    # the reviewer sees its own earnings account, not the organisation's
    pending = await c.get("/v1/ledger/entries?account=pending", headers=a.reviewer)
    assert [(e["kind"], e["amount"]) for e in pending.json()["data"]] == [("resolve", 500)]
    org = await c.get("/v1/ledger/entries", headers=a.reviewer)
    assert org.status_code == 403  # a reviewer does not see the organisation's account


async def test_a_cancelled_paid_task_gives_everything_back(server: Server) -> None:
    c, a = server.client, server.a
    await _deposit(server, "10.00")
    task = (await c.post("/v1/tasks", json=review(payout=usd("2.00")), headers=a.requester)).json()
    assert await _balance(server) == ("7.80", "2.20")
    cancelled = await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    assert cancelled.status_code == 200
    assert await _balance(server) == ("10.00", "0.00")


async def test_earnings_of_others_are_for_admins(server: Server) -> None:
    c, a = server.client, server.a
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    denied = await c.get("/v1/earnings", params={"worker_id": "acme-reviewer"}, headers=bob)
    assert denied.status_code == 403
    allowed = await c.get("/v1/earnings", params={"worker_id": "bob"}, headers=a.admin)
    assert allowed.status_code == 200 and allowed.json()["worker_id"] == "bob"
    listed = await c.get("/v1/payouts", params={"worker_id": "acme-reviewer"}, headers=bob)
    assert listed.status_code == 403


# ---------------------------------------------------------------- payouts


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def earned(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Server]:
    """acme's reviewer with 8.00 of settled earnings: two paid tasks verified, then the
    seven-day hold period moved past on a manual clock."""
    async with running(make_settings(tmp_path, run_background=False), clock) as server:
        c, a = server.client, server.a
        await _deposit(server, "50.00")
        for _ in range(2):
            task = await c.post("/v1/tasks", json=review(payout=usd("4.00")), headers=a.requester)
            await c.post(
                f"/v1/tasks/{task.json()['id']}/decision",
                json={"type": "approve"},
                headers=a.reviewer,
            )
        assert (await _earnings(server))["pending"] == "8.00"
        clock.advance(days=6)
        assert await server.hub.ledger.settle_due() == []  # still in the dispute window
        clock.advance(days=1, seconds=1)
        assert len(await server.hub.ledger.settle_due()) == 2
        yield server


async def test_payouts_need_settled_earnings_and_a_key(earned: Server) -> None:
    c, a = earned.client, earned.a
    assert await _earnings(earned) == {"pending": "0.00", "available": "8.00", "total": "8.00"}
    no_key = await c.post("/v1/payouts", json={"amount": usd("5.00")}, headers=a.reviewer)
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_required"
    requester = await c.post(
        "/v1/payouts", json={"amount": usd("5.00")}, headers=keyed(a.requester, "p")
    )
    assert requester.status_code == 403
    tiny = await c.post("/v1/payouts", json={"amount": usd("0.50")}, headers=keyed(a.reviewer, "t"))
    assert tiny.status_code == 422 and tiny.json()["errors"][0]["path"] == "$.amount"
    too_much = await c.post(
        "/v1/payouts", json={"amount": usd("9.00")}, headers=keyed(a.reviewer, "m")
    )
    assert too_much.status_code == 402
    assert too_much.json()["code"] == "insufficient_funds"
    paid = await c.post("/v1/payouts", json={"amount": usd("5.00")}, headers=keyed(a.reviewer, "p"))
    assert paid.status_code == 201, paid.text
    record = paid.json()
    assert record["worker_id"] == "acme-reviewer"
    assert record["amount"] == usd("5.00") and record["status"] == "sent"
    replay = await c.post(
        "/v1/payouts", json={"amount": usd("5.00")}, headers=keyed(a.reviewer, "p")
    )
    assert replay.headers["idempotency-replayed"] == "true" and replay.json() == record
    assert await _earnings(earned) == {"pending": "0.00", "available": "3.00", "total": "8.00"}
    listed = await c.get("/v1/payouts", headers=a.reviewer)
    assert [p["id"] for p in listed.json()["data"]] == [record["id"]]
    by_admin = await c.get("/v1/payouts", params={"worker_id": "acme-reviewer"}, headers=a.admin)
    assert [p["id"] for p in by_admin.json()["data"]] == [record["id"]]
    available = await c.get("/v1/ledger/entries?account=available", headers=a.reviewer)
    assert [e["kind"] for e in available.json()["data"]] == ["settle", "settle", "payout"]


async def test_a_dispute_after_settlement_is_refused(earned: Server) -> None:
    c, a = earned.client, earned.a
    verified = (await c.get("/v1/tasks?status=verified", headers=a.requester)).json()["data"]
    late = await c.post(
        f"/v1/tasks/{verified[0]['id']}/dispute", json={"reason": "wrong"}, headers=a.requester
    )
    assert late.status_code == 409
    assert "settled" in late.json()["detail"]
