"""The reviewer's side over HTTP: the queue, claim and release, decisions (claiming an open
task in the same transaction), submissions, and estimates."""

from __future__ import annotations

from typing import Any

from handrail import Principal, Role
from tests.server.conftest import Server, review

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["cat", "dog"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def judgment(**more: Any) -> dict[str, Any]:
    return {"kind": "judgment", "title": "What is it?", "output_schema": ANSWER_SCHEMA, **more}


async def _post(server: Server, spec: dict[str, Any]) -> dict[str, Any]:
    created = await server.client.post("/v1/tasks", json=spec, headers=server.a.requester)
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def _events(server: Server, task_id: str) -> list[str]:
    history = await server.client.get(f"/v1/tasks/{task_id}/history", headers=server.a.requester)
    return [e["event"] for e in history.json()["data"]]


async def _task(server: Server, task_id: str) -> dict[str, Any]:
    answer = await server.client.get(f"/v1/tasks/{task_id}", headers=server.a.requester)
    task: dict[str, Any] = answer.json()
    return task


# ---------------------------------------------------------------- the queue


async def test_the_queue_shows_open_work_soonest_deadline_first(server: Server) -> None:
    c, a = server.client, server.a
    later = await _post(server, review("later", sla_seconds=3600))
    sooner = await _post(server, review("sooner", sla_seconds=600))
    task = await _post(server, judgment(sla_seconds=1800, risk_tier="low"))
    queue = await c.get("/v1/queue", headers=a.reviewer)
    assert queue.status_code == 200
    assert [t["id"] for t in queue.json()["data"]] == [sooner["id"], task["id"], later["id"]]
    assert queue.json()["has_more"] is False
    judgments = await c.get("/v1/queue?kind=judgment", headers=a.reviewer)
    assert [t["id"] for t in judgments.json()["data"]] == [task["id"]]
    by_type = await c.get("/v1/queue?task_type=later", headers=a.reviewer)
    assert [t["id"] for t in by_type.json()["data"]] == [later["id"]]
    low = await c.get("/v1/queue?risk_tier=low", headers=a.reviewer)
    assert [t["id"] for t in low.json()["data"]] == [task["id"]]
    limited = await c.get("/v1/queue?limit=1", headers=a.reviewer)
    assert len(limited.json()["data"]) == 1
    # a task someone took (its only slot) leaves everyone else's queue
    await c.post(f"/v1/tasks/{sooner['id']}/claim", headers=a.reviewer)
    other = await server.key("acme", Role.REVIEWER, principal="bob")
    assert sooner["id"] not in [
        t["id"] for t in (await c.get("/v1/queue", headers=other)).json()["data"]
    ]
    assert (await c.get("/v1/queue", headers=a.requester)).status_code == 403


async def test_a_worker_profile_limits_the_queue_and_the_claims(server: Server) -> None:
    c, a = server.client, server.a
    email = await _post(server, review("send_email"))
    refund = await _post(server, review("refund"))
    put = await c.put(
        "/v1/workers/acme-reviewer",
        json={"skills": ["refund"], "capacity": 1, "trust_tier": "medium"},
        headers=a.admin,
    )
    assert put.status_code == 200
    queue = (await c.get("/v1/queue", headers=a.reviewer)).json()["data"]
    assert [t["id"] for t in queue] == [refund["id"]]
    refused = await c.post(f"/v1/tasks/{email['id']}/claim", headers=a.reviewer)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert (await c.post(f"/v1/tasks/{refund['id']}/claim", headers=a.reviewer)).status_code == 200
    assert (await c.get("/v1/queue", headers=a.reviewer)).json()["data"] == []  # at capacity


# ---------------------------------------------------------------- claim, release


async def test_claim_and_release(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, review())
    claimed = await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.reviewer)
    assert claimed.status_code == 200
    body = claimed.json()
    assert body["status"] == "assigned"
    assert [(x["worker_id"], x["status"]) for x in body["assignments"]] == [
        ("acme-reviewer", "active")
    ]
    again = await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.reviewer)
    assert again.json() == body  # claiming what one holds changes nothing
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    full = await c.post(f"/v1/tasks/{task['id']}/claim", headers=bob)
    assert full.status_code == 409 and "no free slot" in full.json()["detail"]
    not_mine = await c.post(f"/v1/tasks/{task['id']}/release", headers=bob)
    assert not_mine.status_code == 403 and not_mine.json()["code"] == "not_assigned"
    released = await c.post(
        f"/v1/tasks/{task['id']}/release", json={"reason": "out of my depth"}, headers=a.reviewer
    )
    assert released.status_code == 200
    assert released.json()["status"] == "posted"
    assert released.json()["assignments"][0]["status"] == "released"
    history = (await c.get(f"/v1/tasks/{task['id']}/history", headers=a.requester)).json()
    assert history["data"][-1]["event"] == "release"
    assert history["data"][-1]["reason"] == "out of my depth"
    # the slot is free again
    assert (await c.post(f"/v1/tasks/{task['id']}/claim", headers=bob)).status_code == 200


async def test_a_worker_never_sees_how_a_task_was_posted(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, review(idempotency_key="agent-key-1"))
    seen = (await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.reviewer)).json()
    assert seen["created_by"] == "requester" and seen["idempotency_key"] is None
    assert task["created_by"] == "acme-agent" and task["idempotency_key"] == "agent-key-1"


# ---------------------------------------------------------------- decisions


async def test_a_decision_claims_an_open_task_in_the_same_transaction(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, review())
    decided = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "approve", "message": "looks right"},
        headers=a.reviewer,
    )
    assert decided.status_code == 200
    body = decided.json()
    assert body["status"] == "verified"
    assert body["output"]["type"] == "approve" and body["output"]["reviewer_id"] == "acme-reviewer"
    history = (await c.get(f"/v1/tasks/{task['id']}/history", headers=a.requester)).json()["data"]
    assert [e["event"] for e in history] == ["create", "claim", "submit", "verify"]
    assert len({e["at"] for e in history[1:]}) == 1  # one transaction, one instant


async def test_a_refused_decision_leaves_no_claim_behind(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(
        server,
        review(
            allowed_decisions=["approve", "reject"],
            action={
                "name": "refund",
                "args": {"amount": 10},
                "args_schema": {"type": "object", "properties": {"amount": {"maximum": 50}}},
            },
        ),
    )
    not_allowed = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {"amount": 5}},
        headers=a.reviewer,
    )
    assert not_allowed.status_code == 422
    assert not_allowed.json()["code"] == "decision_not_allowed"
    assert not_allowed.json()["allowed"] == ["approve", "reject"]
    assert (await _task(server, task["id"]))["status"] == "posted"
    assert await _events(server, task["id"]) == ["create"]


async def test_modified_args_are_checked_against_the_tools_schema(server: Server) -> None:
    c, a = server.client, server.a
    action = {
        "name": "refund",
        "args": {"amount": 10},
        "args_schema": {"type": "object", "properties": {"amount": {"maximum": 50}}},
    }
    task = await _post(server, review(action=action))
    too_much = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {"amount": 500}},
        headers=a.reviewer,
    )
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["path"] == "$.args.amount"
    assert await _events(server, task["id"]) == ["create"]
    fine = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {"amount": 40}, "message": "less"},
        headers=a.reviewer,
    )
    assert fine.status_code == 200
    assert fine.json()["output"]["args"] == {"amount": 40}


async def test_the_same_decision_again_changes_nothing(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, review())
    path = f"/v1/tasks/{task['id']}/decision"
    first = await c.post(path, json={"type": "approve"}, headers=a.reviewer)
    again = await c.post(path, json={"type": "approve"}, headers=a.reviewer)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await _events(server, task["id"]) == ["create", "claim", "submit", "verify"]


# ---------------------------------------------------------------- submissions


async def test_a_submission_claims_an_open_judgment_and_verifies_it(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, judgment())
    submitted = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "cat"}}, headers=a.reviewer
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "verified"
    assert submitted.json()["output"] == {"label": "cat"}
    assert await _events(server, task["id"]) == ["create", "claim", "submit", "verify"]
    # the same answer again changes nothing
    again = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "cat"}}, headers=a.reviewer
    )
    assert again.status_code == 200, again.text
    assert again.json() == submitted.json()
    assert await _events(server, task["id"]) == ["create", "claim", "submit", "verify"]


async def test_a_refused_answer_leaves_no_claim_behind(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, judgment())
    bad = await c.post(
        f"/v1/tasks/{task['id']}/submissions",
        json={"output": {"label": "horse"}},
        headers=a.reviewer,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "$.output.label"
    now = await _task(server, task["id"])
    assert (now["status"], now["assignments"]) == ("posted", [])
    assert await _events(server, task["id"]) == ["create"]
    queue = (await c.get("/v1/queue", headers=a.reviewer)).json()["data"]
    assert [t["id"] for t in queue] == [task["id"]]  # still open to everyone


async def test_a_submission_without_a_claim_is_one_transaction(server: Server) -> None:
    """The route only calls ``Engine.submit``: the claim is the engine's, in the same
    commit; a task someone else holds is not the submitter's to answer (403)."""
    c, a = server.client, server.a
    task = await _post(server, judgment())
    done = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "cat"}}, headers=a.reviewer
    )
    assert done.status_code == 200 and done.json()["status"] == "verified"
    requester = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}))
    assert (await server.hub.engine.get(requester, task["id"])).version == 2
    held = await _post(server, judgment())
    assert (await c.post(f"/v1/tasks/{held['id']}/claim", headers=a.reviewer)).status_code == 200
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    late = await c.post(
        f"/v1/tasks/{held['id']}/submissions", json={"output": {"label": "cat"}}, headers=bob
    )
    assert late.status_code == 403 and late.json()["code"] == "not_assigned"


async def test_a_submission_on_a_claimed_judgment(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, judgment(redundancy=2, max_answers=2))
    assert (await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.reviewer)).status_code == 200
    first = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "dog"}}, headers=a.reviewer
    )
    assert first.status_code == 200
    assert first.json()["status"] == "assigned"  # waiting for a second answer
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    second = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "cat"}}, headers=bob
    )
    assert second.status_code == 200
    assert second.json()["status"] == "manual_review"  # they disagree, at the cap
    # a repeat by the first reviewer changes nothing
    again = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "dog"}}, headers=a.reviewer
    )
    assert again.status_code == 200 and again.json()["status"] == "manual_review"


async def test_a_submission_on_a_review_is_a_decision(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, review())
    submitted = await c.post(
        f"/v1/tasks/{task['id']}/submissions",
        json={"output": {"type": "reject", "message": "not today"}},
        headers=a.reviewer,
    )
    assert submitted.status_code == 200
    assert submitted.json()["output"]["type"] == "reject"
    assert submitted.json()["status"] == "verified"


# ---------------------------------------------------------------- estimates


async def test_an_estimate_offered_then_approved(server: Server) -> None:
    c, a = server.client, server.a
    await c.post(
        "/v1/deposits",
        json={"amount": {"currency": "USD", "amount": "100.00"}},
        headers={**a.admin, "Idempotency-Key": "fund"},
    )
    task = await _post(
        server, judgment(require_estimate=True, payout={"currency": "USD", "amount": "2.00"})
    )
    early = await c.post(f"/v1/tasks/{task['id']}/claim", headers=a.reviewer)
    assert early.status_code == 409 and "estimate" in early.json()["detail"]
    offer = await c.post(
        f"/v1/tasks/{task['id']}/estimate",
        json={"amount": {"currency": "USD", "amount": "3.50"}, "eta_seconds": 600, "note": "ok"},
        headers=a.reviewer,
    )
    assert offer.status_code == 200, offer.text
    assert offer.json()["status"] == "estimate_pending"
    assert offer.json()["estimate"]["amount"] == {"currency": "USD", "amount": "3.50"}
    wrong_currency = await c.post(
        f"/v1/tasks/{task['id']}/estimate",
        json={"amount": {"currency": "SATS", "amount": "100"}},
        headers=a.reviewer,
    )
    assert wrong_currency.status_code in (409, 422)
    held = (await c.get("/v1/balance", headers=a.requester)).json()["held"]
    approved = await c.post(f"/v1/tasks/{task['id']}/estimate/approve", headers=a.requester)
    assert approved.status_code == 200
    body = approved.json()
    assert body["status"] == "assigned"
    assert body["payout"] == {"currency": "USD", "amount": "3.50"}
    assert [x["worker_id"] for x in body["assignments"]] == ["acme-reviewer"]
    now_held = (await c.get("/v1/balance", headers=a.requester)).json()["held"]
    assert float(now_held["amount"]) > float(held["amount"])  # the escrow grew to the price
    done = await c.post(
        f"/v1/tasks/{task['id']}/submissions", json={"output": {"label": "dog"}}, headers=a.reviewer
    )
    assert done.json()["status"] == "verified"


async def test_an_estimate_rejected_reopens_the_task(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server, judgment(require_estimate=True))
    await c.post(f"/v1/tasks/{task['id']}/estimate", json={"eta_seconds": 60}, headers=a.reviewer)
    rejected = await c.post(
        f"/v1/tasks/{task['id']}/estimate/reject", json={"reason": "too slow"}, headers=a.requester
    )
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["estimate"]) == ("posted", None)
    no_estimate = await c.post(f"/v1/tasks/{task['id']}/estimate/approve", headers=a.requester)
    assert no_estimate.status_code == 409
    plain = await _post(server, judgment())
    unwanted = await c.post(
        f"/v1/tasks/{plain['id']}/estimate", json={"eta_seconds": 60}, headers=a.reviewer
    )
    assert unwanted.status_code == 409 and "no estimate wanted" in unwanted.json()["detail"]
    bad = await c.post(
        f"/v1/tasks/{task['id']}/estimate", json={"eta_seconds": 0}, headers=a.reviewer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.eta_seconds"


# ---------------------------------------------------------------- manual review, disputes


async def test_manual_review_verify_and_fail_and_disputes(server: Server) -> None:
    c, a = server.client, server.a
    bob = await server.key("acme", Role.REVIEWER, principal="bob")

    async def disagreeing() -> str:
        task = await _post(server, judgment(redundancy=2, max_answers=2))
        for headers, label in ((a.reviewer, "cat"), (bob, "dog")):
            await c.post(
                f"/v1/tasks/{task['id']}/submissions",
                json={"output": {"label": label}},
                headers=headers,
            )
        assert (await _task(server, task["id"]))["status"] == "manual_review"
        return str(task["id"])

    first = await disagreeing()
    refused = await c.post(f"/v1/tasks/{first}/verify", json={}, headers=a.requester)
    assert refused.status_code == 403
    undecided = await c.post(f"/v1/tasks/{first}/verify", json={}, headers=a.admin)
    assert undecided.status_code == 422  # the answers differ: the admin must choose
    misfit = await c.post(
        f"/v1/tasks/{first}/verify", json={"output": {"label": "owl"}}, headers=a.admin
    )
    assert misfit.status_code == 422
    verified = await c.post(
        f"/v1/tasks/{first}/verify",
        json={"output": {"label": "cat"}, "reason": "a cat"},
        headers=a.admin,
    )
    assert verified.status_code == 200
    assert (verified.json()["status"], verified.json()["output"]) == ("verified", {"label": "cat"})

    disputed = await c.post(
        f"/v1/tasks/{first}/dispute", json={"reason": "it was a dog"}, headers=a.requester
    )
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    blank = await c.post(f"/v1/tasks/{first}/dispute", json={"reason": ""}, headers=a.requester)
    assert blank.status_code == 422
    upheld = await c.post(
        f"/v1/tasks/{first}/resolve-dispute",
        json={"uphold": True, "reason": "the photo shows a cat"},
        headers=a.admin,
    )
    assert upheld.status_code == 200 and upheld.json()["status"] == "verified"

    second = await disagreeing()
    failed = await c.post(
        f"/v1/tasks/{second}/fail", json={"reason": "unreadable"}, headers=a.admin
    )
    assert failed.status_code == 200
    assert (failed.json()["status"], failed.json()["failure_reason"]) == ("failed", "unreadable")
    again = await c.post(f"/v1/tasks/{second}/fail", json={"reason": "x"}, headers=a.admin)
    assert again.status_code == 409
