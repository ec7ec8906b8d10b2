"""Policies over HTTP: managing them (and a dry run), reviews decided at once, who may
decide (403 within the organisation, recorded), standing approvals, decision tokens (used
once, in time, for their task only), masking in every channel, and the audit log: read,
verified, exported, and caught when a row is changed in the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, select, text

from handrail import Role
from handrail.audit import AuditEntry, AuditHead, verify
from handrail.clock import ManualClock
from handrail_server.tables import webhook_outbox
from tests.server.conftest import Server, review

RULES: list[dict[str, Any]] = [
    {"id": "small", "tools": ["refund"], "when": "args.amount <= 100", "outcome": "allow"},
    {"id": "prod", "tools": ["delete_*"], "outcome": "deny", "message": "not here"},
    {"id": "refunds", "tools": ["refund"], "outcome": "ask", "reviewers": ["finance"],
     "redact": ["args.card"]},
]  # fmt: skip


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


async def _policy(server: Server, rules: list[dict[str, Any]] = RULES) -> dict[str, Any]:
    saved = await server.client.put("/v1/policy", json={"rules": rules}, headers=server.a.admin)
    assert saved.status_code == 200, saved.text
    body: dict[str, Any] = saved.json()
    return body


async def _group(server: Server, name: str, *members: str) -> None:
    made = await server.client.put(
        f"/v1/reviewer-groups/{name}", json={"members": list(members)}, headers=server.a.admin
    )
    assert made.status_code == 200, made.text


async def _post(server: Server, spec: dict[str, Any]) -> dict[str, Any]:
    made = await server.client.post("/v1/tasks", json=spec, headers=server.a.requester)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def refund(**args: Any) -> dict[str, Any]:
    return {"kind": "review", "action": {"name": "refund", "args": args}}


async def test_policies_are_managed_by_admins(server: Server) -> None:
    c, a = server.client, server.a
    assert (await c.get("/v1/policy", headers=a.admin)).json()["version"] == 0
    saved = await _policy(server)
    assert (saved["version"], saved["updated_by"], len(saved["rules"])) == (1, "acme-admin", 3)
    assert (await c.get("/v1/policy", headers=a.admin)).json() == saved
    for key in (a.requester, a.reviewer):
        assert (await c.get("/v1/policy", headers=key)).status_code == 403
        assert (await c.put("/v1/policy", json={"rules": []}, headers=key)).status_code == 403
    stale = await c.put("/v1/policy", json={"rules": [], "expected_version": 0}, headers=a.admin)
    assert stale.status_code == 409 and stale.json()["code"] == "concurrency_conflict"
    bad = await c.put(
        "/v1/policy",
        json={"rules": [{"id": "x", "outcome": "allow", "when": "args.a >"}]},
        headers=a.admin,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "$.rules[0].when"
    assert (await c.get("/v1/policy", headers=server.b.admin)).json()["version"] == 0


async def test_the_dry_run_explains_and_creates_nothing(server: Server) -> None:
    c, a = server.client, server.a
    await _policy(server)
    body = {"action": {"name": "refund", "args": {"amount": "ten"}}}
    found = (await c.post("/v1/policy/explain", json=body, headers=a.admin)).json()
    assert (found["outcome"], found["rule_id"]) == ("ask", "small")
    assert found["trace"] == [
        {"rule_id": "small", "matched": False, "reason": "error: cannot order 'ten' <= 100"}
    ]
    draft = {**body, "policy": {"rules": [{"id": "all", "outcome": "deny"}]}}
    tried = (await c.post("/v1/policy/explain", json=draft, headers=a.admin)).json()
    assert (tried["outcome"], tried["rule_id"]) == ("deny", "all")
    assert (await c.get("/v1/tasks", headers=a.requester)).json()["data"] == []


async def test_reviews_decided_by_policy_carry_reason_codes(server: Server) -> None:
    await _policy(server)
    allowed = await _post(server, refund(amount=40))
    assert allowed["status"] == "verified"
    assert allowed["output"]["reason_code"] == "policy_allow"
    assert allowed["output"]["reviewer_id"] == "rule:small"
    denied = await _post(server, {"kind": "review", "action": {"name": "delete_db"}})
    assert (denied["output"]["type"], denied["output"]["message"]) == ("reject", "not here")
    assert denied["output"]["reason_code"] == "policy_deny"
    nobody = await _post(server, refund(amount=500))  # no finance group yet: nobody to ask
    assert nobody["output"]["reason_code"] == "no_eligible_reviewer"
    await _group(server, "finance", "alice")
    asked = await _post(server, refund(amount=500))
    assert asked["status"] == "posted" and asked["policy"]["groups"] == ["finance"]


async def test_only_eligible_reviewers_decide(server: Server) -> None:
    c, a = server.client, server.a
    await _policy(server)
    await _group(server, "finance", "alice")
    alice = await server.key("acme", Role.REVIEWER, principal="alice")
    task = await _post(server, refund(amount=500))
    path = f"/v1/tasks/{task['id']}/decision"
    outsider = await c.post(path, json={"type": "approve"}, headers=a.reviewer)
    assert outsider.status_code == 403
    assert (outsider.json()["code"], outsider.json()["task_id"]) == ("not_eligible", task["id"])
    agent = await c.post(path, json={"type": "approve"}, headers=a.requester)
    assert agent.status_code == 403
    queue = (await c.get("/v1/queue", headers=a.reviewer)).json()["data"]
    assert task["id"] not in {t["id"] for t in queue}
    done = await c.post(path, json={"type": "approve"}, headers=alice)
    assert done.status_code == 200 and done.json()["status"] == "verified"
    # an admin's key that asked for a review cannot decide it either
    own = (await c.post("/v1/tasks", json=review(), headers=a.admin)).json()
    mine = await c.post(
        f"/v1/tasks/{own['id']}/decision", json={"type": "approve"}, headers=a.admin
    )
    assert mine.status_code == 403 and mine.json()["code"] == "not_eligible"
    entries = (await c.get("/v1/audit", params={"limit": 1000}, headers=a.admin)).json()["data"]
    refused = [e for e in entries if e["kind"] == "decision.refused"]
    assert [(e["actor"], e["data"]["code"]) for e in refused] == [
        ("acme-reviewer", "not_eligible"),
        ("acme-agent", "permission_denied"),
        ("acme-admin", "not_eligible"),
    ]
    assert all(e["data"]["key_id"] for e in refused)
    submitted = [e for e in entries if e["kind"] == "task.submit"]
    assert submitted[0]["actor"] == "alice" and submitted[0]["data"]["data"]["key_id"]


async def test_standing_approvals_over_http(server: Server) -> None:
    c, a = server.client, server.a
    await _policy(server)
    await _group(server, "finance", "alice")
    alice = await server.key("acme", Role.REVIEWER, principal="alice")
    first = await _post(server, refund(amount=500))
    remembered = {"type": "approve", "remember": {"when": "args.amount < 1000", "ttl_seconds": 60}}
    made = await c.post(f"/v1/tasks/{first['id']}/decision", json=remembered, headers=alice)
    assert made.status_code == 200, made.text
    [standing] = (await c.get("/v1/standing-approvals", headers=alice)).json()["data"]
    assert (await c.get("/v1/standing-approvals", headers=a.reviewer)).json()["data"] == []
    covered = await _post(server, refund(amount=900))
    assert covered["output"]["reason_code"] == "standing_approval"
    assert covered["output"]["standing_approval_id"] == standing["id"]
    revoke = f"/v1/standing-approvals/{standing['id']}/revoke"
    assert (await c.post(revoke, json={"reason": "x"}, headers=a.reviewer)).status_code == 403
    assert (await c.post(revoke, json={"reason": "x"}, headers=alice)).status_code == 200
    assert (await _post(server, refund(amount=900)))["status"] == "posted"


async def test_decision_tokens_decide_once_in_time_for_their_task(
    server: Server, clock: ManualClock
) -> None:
    c, a = server.client, server.a
    task = await _post(server, review())
    other = await _post(server, review())

    async def mint(**body: Any) -> dict[str, Any]:
        made = await c.post(
            f"/v1/tasks/{task['id']}/decision-tokens",
            json={"reviewer_id": "alice", **body},
            headers=a.admin,
        )
        assert made.status_code == 201, made.text
        minted: dict[str, Any] = made.json()
        return minted

    assert (
        await c.post(
            f"/v1/tasks/{task['id']}/decision-tokens",
            json={"reviewer_id": "alice"},
            headers=a.reviewer,
        )
    ).status_code == 403
    first = await mint(ttl_seconds=600)
    approve = {"token": first["token"], "decision": {"type": "approve"}}
    wrong = await c.post(f"/v1/tasks/{other['id']}/decision/by-token", json=approve)
    assert wrong.status_code == 403
    assert (wrong.json()["code"], wrong.json()["reason"]) == ("token_rejected", "wrong_task")
    late = await mint(ttl_seconds=60)
    clock.advance(61)
    expired = await c.post(
        f"/v1/tasks/{task['id']}/decision/by-token",
        json={"token": late["token"], "decision": {"type": "approve"}},
    )
    assert expired.json()["reason"] == "expired"
    done = await c.post(f"/v1/tasks/{task['id']}/decision/by-token", json=approve)  # no key
    assert done.status_code == 200, done.text
    assert done.json()["output"]["reviewer_id"] == "alice"
    again = await c.post(f"/v1/tasks/{task['id']}/decision/by-token", json=approve)
    assert again.json()["reason"] == "used"
    forged = {**approve, "token": first["token"][:-2] + "xx"}
    assert (await c.post(f"/v1/tasks/{task['id']}/decision/by-token", json=forged)).json()[
        "reason"
    ] == "invalid"
    untouched = (await c.get(f"/v1/tasks/{other['id']}", headers=a.requester)).json()
    assert untouched["status"] == "posted"


async def test_masked_fields_in_every_channel(server: Server) -> None:
    c, a = server.client, server.a
    await _policy(server)
    await _group(server, "finance", "alice")
    alice = await server.key("acme", Role.REVIEWER, principal="alice")
    hooked = await c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks"}, headers=a.admin)
    assert hooked.status_code == 201
    task = await _post(server, refund(amount=500, card="4111-1111"))
    assert task["action"]["args"]["card"] == "4111-1111"  # the requester's own view
    seen = (await c.get(f"/v1/tasks/{task['id']}", headers=alice)).json()
    assert seen["action"]["args"]["card"] == "[redacted]"
    decided = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {"amount": 400, "card": "[redacted]"}},
        headers=alice,
    )
    assert decided.status_code == 200, decided.text
    mine = (await c.get(f"/v1/tasks/{task['id']}", headers=a.requester)).json()
    assert mine["output"]["args"] == {"amount": 400, "card": "4111-1111"}

    def outbox(conn: Connection) -> list[Any]:
        return list(conn.execute(select(webhook_outbox.c.payload)).scalars())

    payloads = await server.hub.store.run(outbox, readonly=True)
    assert len(payloads) >= 3
    history = (await c.get(f"/v1/tasks/{task['id']}/history", headers=a.requester)).json()
    audit = (await c.get("/v1/audit/export", headers=a.admin)).text
    for channel in (json.dumps(payloads), json.dumps(history), audit):
        assert "4111" not in channel
    assert "[redacted]" in json.dumps(payloads)


async def test_the_audit_log_is_read_verified_exported_and_tamper_evident(
    server: Server,
) -> None:
    c, a = server.client, server.a
    for _ in range(3):
        task = await _post(server, review())
        await c.post(
            f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=a.reviewer
        )
    page = (await c.get("/v1/audit", params={"limit": 5}, headers=a.admin)).json()
    assert [e["seq"] for e in page["data"]] == [1, 2, 3, 4, 5] and page["next_cursor"] == 5
    rest = (await c.get("/v1/audit", params={"after": 5}, headers=a.admin)).json()
    assert rest["data"][0]["seq"] == 6 and rest["next_cursor"] is None
    assert (await c.get("/v1/audit", headers=a.reviewer)).status_code == 403
    assert (await c.get("/v1/audit", headers=server.b.admin)).json()["data"] == []
    report = (await c.get("/v1/audit/verify", headers=a.admin)).json()
    assert report["ok"] and report["checked"] == report["head_seq"] == 12

    exported = await c.get("/v1/audit/export", headers=a.admin)
    assert exported.headers["content-type"].startswith("application/jsonl")
    entries = [AuditEntry.model_validate_json(line) for line in exported.text.splitlines()]
    assert len(entries) == 12
    assert verify("acme", entries, AuditHead("acme", 12, entries[-1].hash)).ok

    def tamper(conn: Connection) -> None:  # behind the guards' back, as a DBA could
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(
            text("UPDATE audit_log SET body = replace(body, 'approve', 'reject') WHERE seq = 7")
        )

    await server.hub.store.run(tamper)
    broken = (await c.get("/v1/audit/verify", headers=a.admin)).json()
    assert (broken["ok"], broken["broken_at"]) == (False, 7)
    assert "contents do not match its hash" in broken["reason"]
