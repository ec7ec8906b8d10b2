"""Sandbox is a world of its own (as Stripe's test mode is), over HTTP, on SQLite and
PostgreSQL: an ``hr_test_`` key sees and changes only sandbox objects and a live key only
live ones (the other mode's ids answer 404, exactly as another organisation's do);
idempotency keys, money, the queue, the event stream, webhooks and the audit chain are
each mode's own; a sandbox is funded without a deposit (its balance tops itself up from the
sandbox's mint) and nothing in it touches a live account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from handrail import Role
from handrail.errors import ValidationError
from handrail.ledger import Account
from handrail.money import Currency
from handrail_server.keys import create_key
from handrail_server.tables import webhook_outbox
from tests.postgres import fresh_database
from tests.server._live import Receiver
from tests.server.conftest import Org, Server, make_settings, review, running, sse, sse_events
from tests.server.test_tenancy import AcmeObjects as Objects
from tests.server.test_tenancy import _calls, _shape
from tests.server.web._ui import signed_in

MARKER = "live-only-5c1e"  # in every live object: never shown to a sandbox key
SANDBOX_MARKER = "sandbox-only-9d2b"  # in every sandbox object: never shown to a live key


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    async with fresh_database(url, "sandbox_t") as fresh:
        yield fresh


@pytest.fixture
async def server(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    """No background jobs: nothing moves a task but the test (the simulated reviewers and
    the webhook worker are started by the tests that want them)."""
    settings = make_settings(tmp_path, database_url=database, run_background=False)
    async with running(settings) as started:
        yield started


async def sandbox_of(server: Server, org: str = "acme") -> Org:
    """``org``'s sandbox keys, acting as the same principals as its live keys."""

    async def key(role: Role, principal: str) -> dict[str, str]:
        return await server.key(org, role, sandbox=True, principal=principal)

    requester = await key(Role.REQUESTER, f"{org}-agent")
    return Org(
        id=org,
        admin=await key(Role.ADMIN, f"{org}-admin"),
        requester=requester,
        reviewer=await key(Role.REVIEWER, f"{org}-reviewer"),
        sandbox=requester,
    )


def usd(amount: str) -> dict[str, str]:
    return {"currency": "USD", "amount": amount}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


# ---------------------------------------------------------------- ids answer 404


async def _objects(server: Server, org: Org, marker: str) -> Objects:
    """One of each object in ``org``'s keys' world (as ``test_tenancy`` makes acme's)."""
    c = server.client
    spec = review(payload={"note": marker}, title=marker)
    task = (await c.post("/v1/tasks", json=spec, headers=org.requester)).json()
    done = (await c.post("/v1/tasks", json=spec, headers=org.requester)).json()
    decided = await c.post(
        f"/v1/tasks/{done['id']}/decision", json={"type": "approve"}, headers=org.reviewer
    )
    assert decided.status_code == 200, decided.text
    upload = await c.post(
        "/v1/uploads",
        files={"file": ("proof.txt", marker.encode(), "text/plain")},
        data={"task_id": task["id"]},
        headers=org.requester,
    )
    assert upload.status_code == 201, upload.text
    endpoint = await c.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/x", "description": marker, "enabled": False},
        headers=org.admin,
    )
    assert endpoint.status_code == 201, endpoint.text
    worker = await c.put("/v1/workers/auditor", json={"skills": [marker]}, headers=org.admin)
    assert worker.status_code == 200, worker.text
    keys = (await c.get("/v1/keys", headers=org.admin)).json()
    key = next(k["id"] for k in keys if k["principal"] == f"{org.id}-agent")
    return Objects(
        task=task["id"],
        done=done["id"],
        upload=upload.json()["id"],
        endpoint=endpoint.json()["id"],
        worker="auditor",
        key=key,
    )


async def _snapshot(server: Server, org: Org, objects: Objects) -> list[Any]:
    c = server.client
    return [
        (await c.get(f"/v1/tasks/{objects.task}", headers=org.requester)).json(),
        (await c.get(f"/v1/tasks/{objects.done}/history", headers=org.requester)).json(),
        (await c.get(f"/v1/uploads/{objects.upload}", headers=org.requester)).json(),
        (await c.get(f"/v1/webhooks/{objects.endpoint}", headers=org.admin)).json(),
        (await c.get(f"/v1/workers/{objects.worker}", headers=org.admin)).json(),
        (await c.get("/v1/audit/verify", headers=org.admin)).json(),
    ]


@pytest.mark.parametrize("owner", ["live", "sandbox"])
async def test_the_other_modes_ids_answer_404_everywhere(server: Server, owner: str) -> None:
    """Every endpoint that takes an id: the other mode's key gets 404 (never 403, never the
    object, never a change), the very answer a made-up id gets. Read, wait, cancel, decide,
    claim, upload, webhooks, workers."""
    c = server.client
    sandbox = await sandbox_of(server)
    mine, other = (server.a, sandbox) if owner == "live" else (sandbox, server.a)
    objects = await _objects(server, mine, MARKER if owner == "live" else SANDBOX_MARKER)
    before = await _snapshot(server, mine, objects)
    calls = _calls(objects, other)
    if owner == "sandbox":  # keys are the organisation's: its live admin manages both modes'
        calls = [call for call in calls if not call[1].startswith("/v1/keys/")]
    for method, path, headers, extra in calls:
        answer = await asyncio.wait_for(c.request(method, path, headers=headers, **extra), 10)
        where = f"{method} {path}"
        assert answer.status_code == 404, f"{where}: {answer.status_code} {answer.text}"
        assert answer.json()["code"] == "not_found", where
        assert MARKER not in answer.text and SANDBOX_MARKER not in answer.text, where
        made_up = await c.request(
            method, path.replace(objects.task, "0" * 36), headers=headers, **extra
        )
        if objects.task in path:
            assert _shape(made_up) == _shape(answer), where
    assert await _snapshot(server, mine, objects) == before  # nothing of theirs changed
    assert (await c.get(f"/v1/tasks/{objects.task}", headers=mine.requester)).json()[
        "status"
    ] == "posted"


async def test_a_sandbox_key_cannot_cancel_a_live_task_nor_a_live_key_a_sandbox_one(
    server: Server,
) -> None:
    """The issue's first report: ``POST /v1/tasks/{live}/cancel`` with a sandbox key was
    200 and cancelled the live task."""
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    live = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    play = (await c.post("/v1/tasks", json=review(), headers=sandbox.requester)).json()
    assert (live["sandbox"], play["sandbox"]) == (False, True)
    assert play["org_id"] == "acme"  # the organisation its people know
    for task, key in ((live, sandbox.requester), (live, sandbox.admin), (play, a.requester)):
        cancelled = await c.post(f"/v1/tasks/{task['id']}/cancel", headers=key)
        assert cancelled.status_code == 404, cancelled.text
        waited = await c.get(f"/v1/tasks/{task['id']}/wait", params={"timeout": 1}, headers=key)
        assert waited.status_code == 404
    for task, key in ((live, a.requester), (play, sandbox.requester)):
        assert (await c.get(f"/v1/tasks/{task['id']}", headers=key)).json()["status"] == "posted"


async def test_lists_show_only_the_keys_own_mode(server: Server) -> None:
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    await c.post("/v1/deposits", json={"amount": usd("50.00")}, headers=keyed(a.admin, "d"))
    paid = review(payout=usd("1.00"), title=MARKER)
    assert (await c.post("/v1/tasks", json=paid, headers=a.requester)).status_code == 201
    live = await _objects(server, a, MARKER)
    play = await _objects(server, sandbox, SANDBOX_MARKER)
    paths = [
        ("/v1/tasks", "requester"),
        ("/v1/tasks?order=desc&limit=500", "admin"),
        ("/v1/queue", "reviewer"),
        ("/v1/queue", "admin"),
        ("/v1/webhooks", "admin"),
        ("/v1/workers", "admin"),
        ("/v1/ledger/entries", "requester"),
        ("/v1/audit", "admin"),
        ("/v1/balance", "requester"),
    ]
    for path, role in paths:
        theirs = await c.get(path, headers=getattr(sandbox, role))
        assert theirs.status_code == 200, theirs.text
        assert MARKER not in theirs.text and live.task not in theirs.text, path
        ours = await c.get(path, headers=getattr(a, role))
        assert SANDBOX_MARKER not in ours.text and play.task not in ours.text, path
    listed = (await c.get("/v1/tasks", headers=sandbox.requester)).json()["data"]
    assert {t["id"] for t in listed} == {play.task, play.done}
    assert all(t["sandbox"] for t in listed)


# ---------------------------------------------------------------- idempotency


async def test_an_idempotency_key_is_not_shared_across_modes(server: Server) -> None:
    """The issue's second report: a sandbox key replaying a live key's ``Idempotency-Key``
    got the live task back (``Idempotency-Replayed: true``)."""
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    live = await c.post("/v1/tasks", json=review(), headers=keyed(a.requester, "k-1"))
    play = await c.post("/v1/tasks", json=review(), headers=keyed(sandbox.requester, "k-1"))
    assert (live.status_code, play.status_code) == (201, 201), play.text
    assert "idempotency-replayed" not in play.headers
    assert play.json()["id"] != live.json()["id"] and play.json()["sandbox"] is True
    again = await c.post("/v1/tasks", json=review(), headers=keyed(sandbox.requester, "k-1"))
    assert again.headers.get("idempotency-replayed") == "true"
    assert again.json()["id"] == play.json()["id"]  # each mode replays its own

    # the key in the body, too: one task per key per mode
    spec = review(idempotency_key="order-12345")
    first = (await c.post("/v1/tasks", json=spec, headers=a.requester)).json()
    second = (await c.post("/v1/tasks", json=spec, headers=sandbox.requester)).json()
    assert first["id"] != second["id"] and (first["sandbox"], second["sandbox"]) == (False, True)

    # and deposits: the same key with another amount is another mode's deposit, no conflict
    paid = await c.post("/v1/deposits", json={"amount": usd("7.00")}, headers=keyed(a.admin, "d"))
    play_paid = await c.post(
        "/v1/deposits", json={"amount": usd("3.00")}, headers=keyed(sandbox.requester, "d")
    )
    assert (paid.status_code, play_paid.status_code) == (201, 201), play_paid.text


# ---------------------------------------------------------------- money


async def _balance(server: Server, headers: dict[str, str]) -> tuple[str, str]:
    got = (await server.client.get("/v1/balance", headers=headers)).json()
    return got["available"]["amount"], got["held"]["amount"]


async def test_sandbox_deposits_and_holds_never_touch_the_live_balance(server: Server) -> None:
    """The issue's third report: a sandbox deposit of 500.00 raised the live balance from
    1,241.70 to 1,741.70, and a paid sandbox task was held from the live balance."""
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    funded = await c.post(
        "/v1/deposits", json={"amount": usd("1241.70")}, headers=keyed(a.admin, "live-1")
    )
    assert funded.status_code == 201
    play = await c.post(
        "/v1/deposits", json={"amount": usd("500.00")}, headers=keyed(sandbox.requester, "sb-1")
    )
    assert play.status_code == 201, play.text
    assert await _balance(server, a.requester) == ("1241.70", "0.00")
    assert await _balance(server, sandbox.requester) == ("500.00", "0.00")

    paid = review(payout=usd("5.00"))
    task = await c.post("/v1/tasks", json=paid, headers=sandbox.requester)
    assert task.status_code == 201, task.text
    assert await _balance(server, sandbox.requester) == ("494.50", "5.50")  # 10% fee
    assert await _balance(server, a.requester) == ("1241.70", "0.00")
    cancelled = await c.post(f"/v1/tasks/{task.json()['id']}/cancel", headers=sandbox.requester)
    assert cancelled.status_code == 200
    assert await _balance(server, sandbox.requester) == ("500.00", "0.00")
    assert await _balance(server, a.requester) == ("1241.70", "0.00")

    live_entries = (await c.get("/v1/ledger/entries", headers=a.requester)).json()["data"]
    assert [e["kind"] for e in live_entries] == ["deposit"]
    assert all(v == 0 for v in (await server.hub.ledger.totals()).values())  # still balanced
    # the sandbox's money came from its own mint, not from the live world's funding
    mint = Account.mint("acme~sandbox", Currency.USD)
    async with server.hub.store.transaction(readonly=True) as tx:
        assert (await tx.balances([mint.id]))[mint.id] == -50_000
        funding = Account.funding(Currency.USD)
        assert (await tx.balances([funding.id]))[funding.id] == -124_170


async def test_a_sandbox_is_funded_without_a_deposit(server: Server) -> None:
    """No deposit step: a sandbox hold its balance cannot cover is topped up first by the
    hold's amount, minted in the sandbox (one balanced ``top_up`` posting); a live key of
    the same organisation is never topped up."""
    c = server.client
    fresh = await server.key("fresh", Role.REQUESTER, sandbox=True, principal="bot")
    paid = review(payout=usd("0.50"))
    first = await c.post("/v1/tasks", json=paid, headers=fresh)
    assert first.status_code == 201, first.text
    assert first.json()["sandbox"] is True
    assert await _balance(server, fresh) == ("0.00", "0.60")  # reward + the $0.10 minimum fee
    entries = (await c.get("/v1/ledger/entries", headers=fresh)).json()["data"]
    assert [(e["kind"], e["amount"]) for e in entries] == [("top_up", 60), ("hold", -60)]

    cancelled = await c.post(f"/v1/tasks/{first.json()['id']}/cancel", headers=fresh)
    assert cancelled.status_code == 200
    assert await _balance(server, fresh) == ("0.60", "0.00")
    second = await c.post("/v1/tasks", json=paid, headers=fresh)  # covered: no top-up
    assert second.status_code == 201
    entries = (await c.get("/v1/ledger/entries", headers=fresh)).json()["data"]
    assert [e["kind"] for e in entries] == ["top_up", "hold", "resolve", "hold"]

    live = await server.key("fresh", Role.REQUESTER, principal="bot")
    refused = await c.post("/v1/tasks", json=paid, headers=live)
    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "insufficient_funds"
    assert await _balance(server, live) == ("0.00", "0.00")
    assert all(v == 0 for v in (await server.hub.ledger.totals()).values())


# ---------------------------------------------------------------- the HumanRail quick start


QUICKSTART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["eligible", "reason_code"],
    "properties": {
        "eligible": {"type": "boolean"},
        "reason_code": {
            "type": "string",
            "enum": ["approved", "denied_policy", "denied_timeframe"],
        },
        "notes": {"type": "string"},
    },
}


async def test_the_humanrail_quick_start_with_a_fresh_test_key(server: Server) -> None:
    """HumanRail's quick start (seed 000) as its Python SDK sends it, with a fresh sandbox
    key and no deposit step: create (``payout: {maxAmount: 0.50}``), then poll until
    verified; the ``task.verified`` callback arrives (at a receiver on loopback, in place
    of ``https://myapp.com/webhooks/humanrail``). It used to fail: ``account
    org_available:USD:… holds 0 USD (minor units); 60 needed``."""
    c = server.client
    key = (await server.key("quickstart", Role.REQUESTER, sandbox=True))["Authorization"]
    receiver = Receiver()
    receiver.start()
    try:
        headers = {  # what humanrail 0.1.0's client sends
            "Authorization": key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "escalation-engine-sdk-python/0.1.0",
            "Idempotency-Key": "order-12345-refund-check",
        }
        body = {
            "idempotencyKey": "order-12345-refund-check",
            "taskType": "refund_eligibility",
            "riskTier": "medium",
            "slaSeconds": 300,
            "payload": {
                "orderId": "order-12345",
                "orderTotal": 89.99,
                "reason": "Item arrived damaged",
            },
            "outputSchema": QUICKSTART_SCHEMA,
            "payout": {"currency": "USD", "maxAmount": 0.50},
            "callbackUrl": receiver.url,
        }
        made = await c.post("/compat/humanrail/v1/tasks", json=body, headers=headers)
        assert made.status_code == 201, made.text
        task = made.json()
        assert task["status"] == "posted"

        server.hub.ensure_sandbox("quickstart~sandbox")  # the simulated workers
        for _ in range(2000):
            got = await c.get(f"/compat/humanrail/v1/tasks/{task['id']}", headers=headers)
            assert got.status_code == 200, got.text
            if got.json()["status"] in ("verified", "failed", "expired", "cancelled"):
                break
            await asyncio.sleep(0.01)
        assert got.json()["status"] == "verified", got.text
        assert set(got.json()["output"]) >= {"eligible", "reason_code"}

        for _ in range(2000):
            await server.hub.delivery.deliver_due()
            if any(e.get("type") == "task.verified" for e in _events(receiver)):
                break
            await asyncio.sleep(0.01)
        assert any(e.get("type") == "task.verified" for e in _events(receiver))
    finally:
        receiver.stop()
    # the money was the sandbox's: the organisation's live book is untouched
    async with server.hub.store.transaction(readonly=True) as tx:
        live = Account.org("quickstart", Currency.USD)
        assert (await tx.balances([live.id]))[live.id] == 0
    assert all(v == 0 for v in (await server.hub.ledger.totals()).values())


def _events(receiver: Receiver) -> list[dict[str, Any]]:
    found = [json.loads(r.body) for r in receiver.snapshot()]
    return [event for event in found if isinstance(event, dict)]


# ---------------------------------------------------------------- queue, streams, webhooks, audit


async def test_the_queue_and_the_event_stream_are_each_modes_own(server: Server) -> None:
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    async with (
        sse(server, "/v1/events", headers=a.requester, params={"after": 0}) as live_stream,
        sse(server, "/v1/events", headers=sandbox.requester, params={"after": 0}) as play_stream,
    ):
        play = (await c.post("/v1/tasks", json=review(), headers=sandbox.requester)).json()
        live = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
        live_first = await asyncio.wait_for(anext(aiter(sse_events(live_stream))), 20)
        play_first = await asyncio.wait_for(anext(aiter(sse_events(play_stream))), 20)
    assert (live_first.data["task_id"], live_first.event) == (live["id"], "create")
    assert (play_first.data["task_id"], play_first.event) == (play["id"], "create")

    live_queue = (await c.get("/v1/queue", headers=a.reviewer)).json()["data"]
    play_queue = (await c.get("/v1/queue", headers=sandbox.reviewer)).json()["data"]
    assert [t["id"] for t in live_queue] == [live["id"]]
    assert [t["id"] for t in play_queue] == [play["id"]]
    # a sandbox reviewer claims and decides sandbox work only
    claimed = await c.post(f"/v1/tasks/{live['id']}/claim", headers=sandbox.reviewer)
    assert claimed.status_code == 404
    decided = await c.post(
        f"/v1/tasks/{play['id']}/decision", json={"type": "approve"}, headers=sandbox.reviewer
    )
    assert decided.status_code == 200 and decided.json()["status"] == "verified"


async def test_webhooks_and_the_audit_chain_are_each_modes_own(server: Server) -> None:
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    for org, path in ((a, "live"), (sandbox, "sandbox")):
        made = await c.post(
            "/v1/webhooks", json={"url": f"http://127.0.0.1:9/{path}"}, headers=org.admin
        )
        assert made.status_code == 201, made.text
    play = (await c.post("/v1/tasks", json=review(), headers=sandbox.requester)).json()
    live = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    rows = await server.hub.store.run(
        lambda conn: conn.execute(select(webhook_outbox.c.org_id, webhook_outbox.c.payload)).all(),
        readonly=True,
    )
    by_org = {org: [str(body) for o, body in rows if o == org] for org, _ in rows}
    assert set(by_org) == {"acme", "acme~sandbox"}
    assert all(live["id"] in body and play["id"] not in body for body in by_org["acme"])
    assert all(play["id"] in body for body in by_org["acme~sandbox"])
    shown = next(p for o, p in rows if o == "acme~sandbox")
    shown = json.loads(shown) if isinstance(shown, str) else shown
    assert "acme~sandbox" not in json.dumps(shown)  # the organisation its people know

    live_audit = (await c.get("/v1/audit", headers=a.admin)).text
    play_audit = (await c.get("/v1/audit", headers=sandbox.admin)).text
    assert live["id"] in live_audit and play["id"] not in live_audit
    assert play["id"] in play_audit and live["id"] not in play_audit
    for org in (a, sandbox):
        verified = (await c.get("/v1/audit/verify", headers=org.admin)).json()
        assert verified["ok"] is True, verified


# ---------------------------------------------------------------- keys and names


async def test_a_sandbox_admin_manages_sandbox_keys_only(server: Server) -> None:
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    live_made = await c.post("/v1/keys", json={"role": "requester"}, headers=sandbox.admin)
    assert live_made.status_code == 403, live_made.text
    made = await c.post(
        "/v1/keys", json={"role": "reviewer", "sandbox": True}, headers=sandbox.admin
    )
    assert made.status_code == 201 and made.json()["key"].startswith("hr_test_")
    assert made.json()["org_id"] == "acme"
    listed = (await c.get("/v1/keys", headers=sandbox.admin)).json()
    assert listed and all(k["sandbox"] for k in listed)
    live_key = next(
        k for k in (await c.get("/v1/keys", headers=a.admin)).json() if not k["sandbox"]
    )
    gone = await c.delete(f"/v1/keys/{live_key['id']}", headers=sandbox.admin)
    assert gone.status_code == 404
    me = (await c.get("/v1/me", headers=sandbox.requester)).json()
    assert (me["org_id"], me["sandbox"]) == ("acme", True)


async def test_configuration_is_each_modes_own(server: Server) -> None:
    """Reviewer groups (and so the policy that names them) are the mode's own."""
    c, a = server.client, server.a
    sandbox = await sandbox_of(server)
    made = await c.put("/v1/reviewer-groups/ops", json={"members": ["x"]}, headers=a.admin)
    assert made.status_code == 200, made.text
    theirs = (await c.get("/v1/reviewer-groups", headers=sandbox.admin)).json()
    assert "ops" not in str(theirs)
    assert "ops" in (await c.get("/v1/reviewer-groups", headers=a.admin)).text


async def test_no_organisation_id_can_be_another_ones_sandbox(server: Server) -> None:
    now = server.hub.clock.now()
    for bad in ("acme~sandbox", "a~b", "x" * 193):
        with pytest.raises(ValidationError):
            await server.hub.store.run(
                lambda c, bad=bad: create_key(c, org_id=bad, role=Role.ADMIN, now=now)
            )


async def test_the_web_ui_shows_sandbox_mode(server: Server) -> None:
    sandbox = await sandbox_of(server)
    transport = httpx.ASGITransport(app=server.app)
    for headers, badge in ((sandbox.reviewer, True), (server.a.reviewer, False)):
        async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as ui:
            await signed_in(ui, headers)
            page = await ui.get("/queue")
            assert page.status_code == 200, page.text
            assert ('id="mode-badge"' in page.text) is badge
            assert ('data-mode="sandbox"' in page.text) is badge
            assert "acme~sandbox" not in page.text
