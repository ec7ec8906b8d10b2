"""Humancheck's dialect: seed 003's examples, run as written but for the base URL, against
a server process; then deciding (reviewers only), 408, filters, feedback, errors and
tenancy.

The examples' own requests carry a placeholder key (``Bearer your-api-key-here``) or none
at all, so the base URL carries the key (``http://humancheck:KEY@host/...``): httpx sends
it as HTTP Basic credentials on every request, the examples' header-less calls included.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handrail import Role
from tests.server._live import bearer
from tests.server.compat.conftest import Live
from tests.server.conftest import Server

PREFIX = "/compat/humancheck"
paid: list[tuple[Any, ...]] = []


def process_payment(*args: Any) -> None:
    paid.append(("payment", *args))


def process_payment_from_action(action: str) -> None:
    paid.append(("modified", action))


@pytest.fixture(autouse=True)
def _no_payments_yet() -> Iterator[None]:
    paid.clear()
    yield
    paid.clear()


def base(live: Live, key: str) -> str:
    """The examples' https://api.humancheck.dev, here: the key rides in the URL."""
    return f"http://humancheck:{key}@{live.url.removeprefix('http://')}{PREFIX}"


# ---------------------------------------------------------------- seed 003, as written


async def blocking_request(client: httpx.AsyncClient, BASE: str) -> None:
    response = await client.post(
        f"{BASE}/reviews",
        headers={
            "Authorization": "Bearer your-api-key-here",
            "Content-Type": "application/json",
        },
        json={
            "task_type": "payment",
            "proposed_action": "Process payment of $5,000",
            "agent_reasoning": "High-value payment",
            "confidence_score": 0.85,
            "urgency": "high",
            "blocking": True,  # Wait for decision
        },
    )
    review = response.json()
    # Decision is included in the response
    if review.get("decision"):
        decision = review["decision"]
        if decision["decision_type"] == "approve":
            process_payment()


async def get_review_details(client: httpx.AsyncClient, BASE: str, review_id: str) -> Any:
    response = await client.get(
        f"{BASE}/reviews/{review_id}", headers={"Authorization": "Bearer your-api-key-here"}
    )
    review = response.json()
    print(f"Status: {review['status']}")
    print(f"Task Type: {review['task_type']}")
    print(f"Proposed Action: {review['proposed_action']}")
    return review


async def list_reviews(client: httpx.AsyncClient, BASE: str) -> list[Any]:
    # List all reviews
    response = await client.get(
        f"{BASE}/reviews", headers={"Authorization": "Bearer your-api-key-here"}
    )
    reviews = response.json()
    # Filter by status
    response = await client.get(f"{BASE}/reviews", params={"status": "pending"})
    pending = response.json()
    # Filter by task type
    response = await client.get(f"{BASE}/reviews", params={"task_type": "payment"})
    payments = response.json()
    # Pagination
    response = await client.get(f"{BASE}/reviews", params={"page": 1, "page_size": 20})
    first_page = response.json()
    return [reviews, pending, payments, first_page]


async def check_for_decision(client: httpx.AsyncClient, BASE: str, review_id: str) -> Any:
    response = await client.get(
        f"{BASE}/reviews/{review_id}/decision",
        headers={"Authorization": "Bearer your-api-key-here"},
    )
    decision = response.json()
    if decision:
        print(f"Decision: {decision['decision_type']}")
        if decision["decision_type"] == "approve":
            print("✅ Approved")
        elif decision["decision_type"] == "reject":
            print(f"❌ Rejected: {decision.get('notes')}")
        elif decision["decision_type"] == "modify":
            print(f"✏️ Modified: {decision['modified_action']}")
    else:
        print("⏳ Still pending")
    return decision


async def wait_for_decision(
    BASE: str, review_id: str, timeout: float = 300, poll_interval: float = 5
) -> Any:
    """Poll for decision with timeout."""
    async with httpx.AsyncClient() as client:
        start_time = asyncio.get_event_loop().time()
        while True:
            elapsed = asyncio.get_event_loop().time() - start_time
            if elapsed > timeout:
                raise TimeoutError("Decision timeout")
            response = await client.get(f"{BASE}/reviews/{review_id}/decision")
            decision = response.json()
            if decision:
                return decision
            await asyncio.sleep(poll_interval)


async def approve_a_review(client: httpx.AsyncClient, BASE: str, review_id: str) -> httpx.Response:
    response = await client.post(
        f"{BASE}/reviews/{review_id}/decide",
        json={
            "reviewer_id": 1,  # User ID
            "decision_type": "approve",
            "notes": "Payment approved",
        },
    )
    return response


async def reject_a_review(client: httpx.AsyncClient, BASE: str, review_id: str) -> httpx.Response:
    response = await client.post(
        f"{BASE}/reviews/{review_id}/decide",
        json={"reviewer_id": 1, "decision_type": "reject", "notes": "Vendor not verified"},
    )
    return response


async def modify_a_review(client: httpx.AsyncClient, BASE: str, review_id: str) -> httpx.Response:
    response = await client.post(
        f"{BASE}/reviews/{review_id}/decide",
        json={
            "reviewer_id": 1,
            "decision_type": "modify",
            "modified_action": "Process payment of $4,500 to ACME Corp",
            "notes": "Reduced amount per policy",
        },
    )
    return response


async def submit_feedback(client: httpx.AsyncClient, BASE: str, review_id: str) -> httpx.Response:
    response = await client.post(
        f"{BASE}/reviews/{review_id}/feedback",
        headers={
            "Authorization": "Bearer your-api-key-here",
            "Content-Type": "application/json",
        },
        json={
            "rating": 5,  # 1-5 scale
            "comment": "Quick and clear decision, thank you!",
        },
    )
    return response


async def payment_workflow(BASE: str, amount: int, vendor: str) -> Any:
    """Example workflow for payment approval."""
    async with httpx.AsyncClient() as client:
        # Create review
        response = await client.post(
            f"{BASE}/reviews",
            headers={
                "Authorization": "Bearer your-api-key-here",
                "Content-Type": "application/json",
            },
            json={
                "task_type": "payment",
                "proposed_action": f"Process payment of ${amount} to {vendor}",
                "agent_reasoning": f"Payment amount (${amount}) exceeds auto-approval limit",
                "confidence_score": 0.85,
                "urgency": "high" if amount > 5000 else "medium",
                "blocking": True,  # Wait for decision
            },
        )
        review = response.json()
        # Check if decision is ready
        if review.get("decision"):
            decision = review["decision"]
        else:
            # Poll for decision
            decision = await wait_for_decision(BASE, review["id"])
        # Process based on decision
        if decision["decision_type"] == "approve":
            process_payment(amount, vendor)
        elif decision["decision_type"] == "modify":
            # Extract amount from modified action
            modified_action = decision["modified_action"]
            process_payment_from_action(modified_action)
        else:
            print("Payment rejected")
            return None
    return decision


# ---------------------------------------------------------------- running them


@pytest.fixture(scope="module")
def keys(live: Live) -> dict[str, str]:
    return {
        "agent": live.acme.key("requester", "hc-agent"),
        "reviewer": live.acme.key("reviewer", "hc-reviewer"),
    }


async def pending_review(live: Live, key: str, action: str) -> str:
    """The id of the pending review proposing ``action``, once it is there."""
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(key)) as client:
        for _ in range(2000):
            found = (await client.get(f"{PREFIX}/reviews", params={"status": "pending"})).json()
            for review in found["reviews"]:
                if review["proposed_action"] == action:
                    review_id: str = review["id"]
                    return review_id
            await asyncio.sleep(0.01)
    raise AssertionError(f"no pending review of {action!r}")


async def test_a_blocking_request_returns_with_the_decision(
    live: Live, keys: dict[str, str]
) -> None:
    agent, reviewer = base(live, keys["agent"]), base(live, keys["reviewer"])
    async with httpx.AsyncClient() as client:
        asking = asyncio.create_task(blocking_request(client, agent))
        review_id = await pending_review(live, keys["reviewer"], "Process payment of $5,000")
        assert not paid
        approved = await approve_a_review(client, reviewer, review_id)
        await asking
    assert approved.status_code == 200, approved.text
    decided = approved.json()
    assert (decided["decision_type"], decided["notes"]) == ("approve", "Payment approved")
    assert decided["reviewer_id"] == "hc-reviewer"  # the key decides who, not the body
    assert paid == [("payment",)]

    async with httpx.AsyncClient() as client:
        review = await get_review_details(client, agent, review_id)
        decision = await check_for_decision(client, agent, review_id)
        polled = await wait_for_decision(agent, review_id, timeout=10)
        feedback = await submit_feedback(client, agent, review_id)
        everything, pending, payments, first_page = await list_reviews(client, agent)
    assert review["status"] == "approved" and review["urgency"] == "high"
    assert review["proposed_action"] == "Process payment of $5,000"
    assert review["agent_reasoning"] == "High-value payment"
    assert review["confidence_score"] == 0.85
    assert decision == polled == review["decision"] == decided
    assert feedback.status_code == 201
    assert feedback.json()["rating"] == 5 and feedback.json()["review_id"] == review_id
    assert review_id in [r["id"] for r in everything["reviews"]]
    assert review_id not in [r["id"] for r in pending["reviews"]]
    assert {r["task_type"] for r in payments["reviews"]} == {"payment"}
    assert (first_page["page"], first_page["page_size"]) == (1, 20)
    assert first_page["total"] == everything["total"] >= 1


async def test_the_complete_example_follows_a_modification(
    live: Live, keys: dict[str, str]
) -> None:
    agent, reviewer = base(live, keys["agent"]), base(live, keys["reviewer"])
    workflow = asyncio.create_task(payment_workflow(agent, 5000, "ACME Corp"))
    review_id = await pending_review(
        live, keys["reviewer"], "Process payment of $5000 to ACME Corp"
    )
    async with httpx.AsyncClient() as client:
        modified = await modify_a_review(client, reviewer, review_id)
    assert modified.status_code == 200, modified.text
    decision = await workflow
    assert decision["modified_action"] == "Process payment of $4,500 to ACME Corp"
    assert paid == [("modified", "Process payment of $4,500 to ACME Corp")]


async def test_a_rejected_review(live: Live, keys: dict[str, str]) -> None:
    agent, reviewer = base(live, keys["agent"]), base(live, keys["reviewer"])
    workflow = asyncio.create_task(payment_workflow(agent, 7000, "Shady Ltd"))
    review_id = await pending_review(
        live, keys["reviewer"], "Process payment of $7000 to Shady Ltd"
    )
    async with httpx.AsyncClient() as client:
        rejected = await reject_a_review(client, reviewer, review_id)
        again = await approve_a_review(client, reviewer, review_id)
    assert await workflow is None and not paid
    assert rejected.json()["notes"] == "Vendor not verified"
    assert again.status_code == 409  # decided already
    async with httpx.AsyncClient() as client:
        assert (await get_review_details(client, agent, review_id))["status"] == "rejected"


def curl(*args: str) -> Any:
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args], capture_output=True, check=True
    )
    return json.loads(done.stdout)


def test_the_curl_examples(live: Live, keys: dict[str, str]) -> None:
    """The three cURL commands, with the base URL, the key and the review id filled in."""
    url = f"{live.url}{PREFIX}"
    auth = f"Authorization: Bearer {keys['agent']}"
    created = curl(
        "-X",
        "POST",
        f"{url}/reviews",
        "-H",
        auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        """{
    "task_type": "payment",
    "proposed_action": "Process payment of $5,000",
    "agent_reasoning": "High-value payment",
    "confidence_score": 0.85,
    "urgency": "high"
  }""",
    )
    assert created["status"] == "pending" and created["decision"] is None
    shown = curl(f"{url}/reviews/{created['id']}", "-H", auth)
    assert shown == created
    assert curl(f"{url}/reviews/{created['id']}/decision", "-H", auth) is None


# ---------------------------------------------------------------- Handrail's rules


async def test_only_reviewers_decide(live: Live, keys: dict[str, str]) -> None:
    agent = base(live, keys["agent"])
    async with httpx.AsyncClient() as client:
        made = await client.post(
            f"{agent}/reviews", json={"task_type": "deploy", "proposed_action": "ship it"}
        )
        review_id = made.json()["id"]
        own = await approve_a_review(client, agent, review_id)
    assert own.status_code == 403
    assert own.json()["detail"].endswith("it is for admin, reviewer, not requester")
    async with httpx.AsyncClient() as client:
        assert (await check_for_decision(client, agent, review_id)) is None
        admin = await approve_a_review(client, base(live, live.acme.admin), review_id)
    assert admin.status_code == 200 and admin.json()["reviewer_id"] == "acme-admin"


async def test_a_blocking_wait_that_runs_out_is_408(server: Server) -> None:
    made = await server.client.post(
        f"{PREFIX}/reviews",
        json={
            "task_type": "payment",
            "proposed_action": "pay",
            "blocking": True,
            "timeout_seconds": 0.05,
        },
        headers=server.a.requester,
    )
    assert made.status_code == 408
    body = made.json()
    assert body["detail"].startswith("no decision within 0.05 s")
    pending = await server.client.get(
        f"{PREFIX}/reviews/{body['review_id']}", headers=server.a.requester
    )
    assert pending.json()["status"] == "pending"  # still open: poll for the decision


async def test_tool_calls_and_their_edited_arguments(server: Server) -> None:
    """Humancheck's LangChain adapter names the tool call in the metadata: it becomes the
    action, and a modify sends the new arguments as JSON."""
    c = server.client
    made = await c.post(
        f"{PREFIX}/reviews",
        json={
            "task_type": "tool_call_send_email",
            "proposed_action": "send_email to a@example.com",
            "framework": "langchain",
            "metadata": {
                "tool_name": "send_email",
                "tool_arguments": {"to": "a@example.com", "body": "hi"},
                "allowed_decisions": ["approve", "edit"],
            },
        },
        headers=server.a.requester,
    )
    assert made.status_code == 201, made.text
    review = made.json()
    assert review["framework"] == "langchain" and review["meta_data"] == review["metadata"]
    task = (await c.get(f"/v1/tasks/{review['id']}", headers=server.a.requester)).json()
    assert task["action"] == {
        "name": "send_email",
        "args": {"to": "a@example.com", "body": "hi"},
        "args_schema": None,
    }
    assert task["allowed_decisions"] == ["approve", "modify"]
    url = f"{PREFIX}/reviews/{review['id']}/decide"
    refused = await c.post(url, json={"decision_type": "reject"}, headers=server.a.reviewer)
    # not a 422: Humancheck's 422 is only ever its validation body
    assert refused.status_code == 400 and refused.json()["allowed"] == ["approve", "modify"]
    not_json = await c.post(
        url,
        json={"decision_type": "modify", "modified_action": "to b"},
        headers=server.a.reviewer,
    )
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["path"] == "$.modified_action"
    edited = await c.post(
        url,
        json={"decision_type": "modify", "modified_action": '{"to": "b@example.com"}'},
        headers=server.a.reviewer,
    )
    assert edited.json()["modified_action"] == '{"to": "b@example.com"}'
    task = (await c.get(f"/v1/tasks/{review['id']}", headers=server.a.requester)).json()
    assert task["output"]["args"] == {"to": "b@example.com"}
    framework = await c.get(
        f"{PREFIX}/reviews", params={"framework": "langchain"}, headers=server.a.requester
    )
    assert [r["id"] for r in framework.json()["reviews"]] == [review["id"]]
    modified = await c.get(
        f"{PREFIX}/reviews", params={"status": "modified"}, headers=server.a.requester
    )
    assert [r["status"] for r in modified.json()["reviews"]] == ["modified"]


async def test_pages_and_errors(server: Server) -> None:
    c, key = server.client, server.a.requester
    ids = []
    for n in range(5):
        made = await c.post(
            f"{PREFIX}/reviews",
            json={"task_type": "bulk", "proposed_action": f"n={n}"},
            headers=key,
        )
        ids.append(made.json()["id"])
    second = await c.get(
        f"{PREFIX}/reviews", params={"task_type": "bulk", "page": 2, "page_size": 2}, headers=key
    )
    assert [r["id"] for r in second.json()["reviews"]] == [ids[2], ids[1]]  # newest first
    assert second.json()["total"] == 5

    invalid = await c.post(f"{PREFIX}/reviews", json={"task_type": "x"}, headers=key)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "proposed_action"]
    urgency = await c.post(
        f"{PREFIX}/reviews",
        json={"task_type": "x", "proposed_action": "y", "urgency": "asap"},
        headers=key,
    )
    assert urgency.status_code == 422 and urgency.json()["detail"][0]["loc"] == ["body", "urgency"]
    missing = await c.get(f"{PREFIX}/reviews/nope", headers=key)
    assert (missing.status_code, missing.json()["detail"]) == (404, "task 'nope' not found")
    assert (await c.get(f"{PREFIX}/reviews/nope/decision", headers=key)).status_code == 404
    anonymous = await c.get(f"{PREFIX}/reviews")
    assert anonymous.status_code == 401 and "detail" in anonymous.json()
    garbled = await c.get(f"{PREFIX}/reviews", headers={"Authorization": "Basic !!not base64"})
    assert garbled.status_code == 401
    token = key["Authorization"].removeprefix("Bearer ")
    basic = await c.get(f"{PREFIX}/reviews", auth=(token, ""))  # the key as the user name
    assert basic.status_code == 200 and basic.json()["total"] == 5
    rating = await c.post(f"{PREFIX}/reviews/{ids[0]}/feedback", json={"rating": 6}, headers=key)
    assert rating.status_code == 422
    unknown = await c.get(f"{PREFIX}/nothing-here", headers=key)
    assert unknown.status_code == 404 and "detail" in unknown.json()
    assert (await c.get(f"{PREFIX}/health")).json() == {
        "status": "healthy",
        "service": "humancheck",
    }


async def test_another_organisation_sees_nothing(server: Server) -> None:
    c = server.client
    made = await c.post(
        f"{PREFIX}/reviews",
        json={"task_type": "payment", "proposed_action": "pay"},
        headers=server.a.requester,
    )
    review_id = made.json()["id"]
    rival_reviewer = await server.key("rival", Role.REVIEWER)
    for method, path, body in (
        ("GET", f"/reviews/{review_id}", None),
        ("GET", f"/reviews/{review_id}/decision", None),
        ("POST", f"/reviews/{review_id}/decide", {"decision_type": "approve"}),
        ("POST", f"/reviews/{review_id}/feedback", {"rating": 1}),
    ):
        who = rival_reviewer if path.endswith("decide") else server.b.requester
        answer = await c.request(method, f"{PREFIX}{path}", json=body, headers=who)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == f"task {review_id!r} not found"
    listed = await c.get(f"{PREFIX}/reviews", headers=server.b.requester)
    assert review_id not in [r["id"] for r in listed.json()["reviews"]]
    still = await c.get(f"{PREFIX}/reviews/{review_id}", headers=server.a.requester)
    assert still.json()["status"] == "pending"
