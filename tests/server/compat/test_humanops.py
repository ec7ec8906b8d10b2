"""HumanOps' dialect: the curl commands of seeds 002 and 004, as written but for the base
URL and their placeholders; a live task from post to payout; sandbox tasks; manual
review; callbacks signed ``X-HumanOps-Signature``; errors and tenancy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shlex
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from handrail import Principal, Role, Task, Verification
from handrail.clock import ManualClock
from handrail.ledger import SandboxFundingRail
from handrail.store import Transaction
from handrail_server.modes import world
from tests.server._live import Receiver
from tests.server.compat.conftest import Live
from tests.server.conftest import Server, make_settings, running

PREFIX = "/compat/humanops/api/v1"
CURLS = Path(__file__).parent / "humanops_curls.txt"
PEER_BASE = "https://api.humanops.io/api/v1"


def seed_curls(seed: str) -> list[list[str]]:
    """The curl commands of seed ``seed``, each as the shell would split it (a backslash
    before a space or a newline is a line continuation)."""
    blocks = CURLS.read_text().split("## seed ")[1:]
    return [
        shlex.split(block[4:].strip().replace("\\\n", " ").replace("\\ ", " "))
        for block in blocks
        if block.startswith(seed)
    ]


def filled(argv: list[str], base: str, values: dict[str, str]) -> list[str]:
    out = []
    for arg in argv:
        arg = arg.replace(PEER_BASE, base)
        for placeholder, value in values.items():
            arg = arg.replace(placeholder, value)
        out.append(arg)
    return out


def as_request(argv: list[str]) -> tuple[str, str, dict[str, str], bytes | None]:
    """What curl would send for ``argv`` (only the flags the seeds use: -X, -H, -d)."""
    method, url, headers, body = "GET", "", {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            body = next(args).encode()
            method = method if method != "GET" else "POST"
        else:
            url = arg
    return method, url, headers, body


class ShiftedClock:
    """Real time moved back to when the seeds were written (their deadlines are February
    2026, in the past now): the examples run as they did then."""

    def __init__(self, now: datetime) -> None:
        self.offset = datetime.now(UTC) - now

    def now(self) -> datetime:
        return datetime.now(UTC) - self.offset


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(datetime(2026, 2, 5, 12, 0, tzinfo=UTC))


async def test_the_seed_curl_examples(server: Server) -> None:
    """Every curl command in seeds 002 and 004, sent as curl would send it: seed 002's in
    order (register, fund, post, ...), seed 004's with an agent of its own."""
    c = server.client
    operator = (
        await c.post(
            f"{PREFIX}/operator/register", json={"name": "Jane Doe"}, headers=server.a.admin
        )
    ).json()
    base = f"http://handrail.test{PREFIX}"
    keys: dict[str, str] = {"op_xyz789": operator["api_key"]}
    agents: dict[str, Principal] = {}
    answers: list[tuple[str, httpx.Response]] = []

    async def send(argv: list[str]) -> httpx.Response:
        method, url, headers, body = as_request(filled(argv, base, keys))
        answer = await c.request(method, url, headers=headers, content=body)
        answers.append((f"{method} {url.removeprefix(base)}", answer))
        if url.endswith("/agents/register"):
            keys["<YOUR_API_KEY>"] = answer.json()["api_key"]
            org = answer.json()["agent_id"]
            agents[org] = Principal(  # an agent's tasks are in its organisation's sandbox
                org_id=world(org, True), id="me", roles=frozenset({Role.REQUESTER}), sandbox=True
            )
        return answer

    for argv in seed_curls("002"):
        if "TASK_ID" in argv[3]:  # the credential task posted just before, once completed
            (org,) = agents
            credential = answers[-1][1].json()["task_id"]
            await server.hub.engine.wait(agents[org], credential, 10)  # the simulated operator
            keys["TASK_ID"] = credential
        await send(argv)
    first_agent = keys["<YOUR_API_KEY>"]
    registered = await c.post(
        f"{PREFIX}/agents/register", json={"name": "seed-004", "email": "s@example.com"}
    )
    keys["YOUR_API_KEY"] = registered.json()["api_key"]
    for argv in seed_curls("004"):
        await send(argv)

    got = [(what, answer.status_code) for what, answer in answers]
    assert got == [
        ("POST /agents/register", 201),
        ("POST /agents/deposit/usdc", 200),
        ("POST /tasks", 201),
        ("GET /agents/balance", 200),
        ("GET /operator/tasks", 200),
        ("POST /tasks", 201),
        ("POST /tasks", 201),
        (f"POST /tasks/{keys['TASK_ID']}/retrieve-credential", 200),
        ("POST /tasks", 201),
    ], [a.text for _, a in answers]
    register, deposit, task, balance, browse, captcha, credential, secret, photo = (
        a.json() for _, a in answers
    )
    assert register["tier"] == "SANDBOX" and register["api_key"].startswith("hr_test_")
    assert (deposit["status"], deposit["amount_credited"], deposit["tx_hash"]) == (
        "confirmed",
        100,
        "0xabc...def",
    )
    assert (task["status"], task["reward_usd"], task["sandbox"]) == ("PENDING", 25, True)
    assert task["deadline"].startswith("2026-02-09T23:59")  # by the deadline, not after
    assert (balance["deposit_balance"], balance["escrow_balance"]) == (100, 0)
    assert browse["pagination"]["offset"] == 0  # acme's queue: the sandbox agent is elsewhere
    assert captcha["reward_usd"] == 10 and credential["reward_usd"] == 50
    assert set(secret["encrypted_credential"]) >= {"ciphertext", "iv", "ephemeralPublicKey"}
    assert photo["reward_usd"] == 15 and photo["sandbox"] is True

    key = {"X-API-Key": first_agent}
    done = (await c.get(f"{PREFIX}/tasks/{task['task_id']}", headers=key)).json()
    assert done["status"] == "COMPLETED", done
    assert done["guardian_result"]["decision"] == "APPROVE"
    assert done["proof"]["photos"] and done["operator"]["id"] == "sandbox"
    assert done["location"] == {"lat": 40.7128, "lng": -74.006, "address": "123 Main St, NY"}
    assert done["sandbox_notice"].startswith("This task was completed by a simulated operator")
    listed = (await c.get(f"{PREFIX}/tasks", params={"limit": 2}, headers=key)).json()
    assert listed["pagination"] == {"limit": 2, "offset": 0, "total": 3}
    # the sandbox holds nothing: the balance is what was deposited
    assert (await c.get(f"{PREFIX}/agents/balance", headers=key)).json()["deposit_balance"] == 100


def test_the_curl_binary_against_a_server_process(live: Live) -> None:
    """The seed's commands that do not depend on the date, run by curl itself."""
    operator = httpx.post(
        f"{live.url}{PREFIX}/operator/register",
        json={"name": "Curl Operator"},
        headers={"X-API-Key": live.acme.admin},
    ).json()
    values = {"op_xyz789": operator["api_key"]}
    ran = []
    for argv in seed_curls("002"):
        command = " ".join(argv)
        if any(skip in command for skip in ("deadline", "TASK_ID")):
            continue
        done = subprocess.run(
            [*filled(argv, f"{live.url}{PREFIX}", values), "-sS", "-w", "\n%{http_code}"],
            capture_output=True,
            check=True,
            text=True,
        )
        body, _, status = done.stdout.rpartition("\n")
        ran.append((argv[3].removeprefix(PEER_BASE), int(status)))
        if argv[3].endswith("/agents/register"):
            values["<YOUR_API_KEY>"] = json.loads(body)["api_key"]
        if argv[3].endswith("/balance"):
            assert json.loads(body)["deposit_balance"] == 100
    assert ran == [
        ("/agents/register", 201),
        ("/agents/deposit/usdc", 200),
        ("/agents/balance", 200),
        ("/operator/tasks", 200),
    ]


# ---------------------------------------------------------------- a live task, end to end


@pytest.fixture
async def manual(tmp_path: Path) -> AsyncIterator[tuple[Server, ManualClock]]:
    """A server whose clock moves only when told (earnings settle after seven days)."""
    clock = ManualClock(datetime.now(UTC))
    async with running(make_settings(tmp_path), clock) as started:
        yield started, clock


async def delivered(server: Server, receiver: Receiver, count: int) -> list[Any]:
    """The receiver's first ``count`` deliveries, once they are there (sent by this
    process's delivery worker, nudged here)."""
    for _ in range(2000):
        await server.hub.delivery.deliver_due()
        got = receiver.snapshot()
        if len(got) >= count:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(receiver.snapshot())} of {count} deliveries arrived")


def signed(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_task(deadline: datetime, **more: Any) -> dict[str, Any]:
    return {
        "title": "Verify storefront signage",
        "description": "Take a photo of the signage at 123 Main St",
        "location": {"lat": 40.7128, "lng": -74.006, "address": "123 Main St, NY"},
        "reward_usd": 25,
        "deadline": deadline.isoformat(),
        "proof_requirements": ["Photo of storefront sign"],
        "task_type": "VERIFICATION",
        **more,
    }


async def test_a_live_task_from_post_to_payout(
    manual: tuple[Server, ManualClock], receiver: Receiver
) -> None:
    server, clock = manual
    server.hub.ledger.funding_rail = SandboxFundingRail()  # a rail confirms live transfers
    c, agent = server.client, {"X-API-Key": server.a.requester.pop("Authorization")[7:]}
    operator = (
        await c.post(
            f"{PREFIX}/operator/register",
            json={"name": "Jane D.", "skills": ["VERIFICATION", "PHOTO"]},
            headers=server.a.admin,
        )
    ).json()
    assert operator["kyc_status"] == "VERIFIED" and operator["operator_id"].startswith("op_")
    jane = {"X-Operator-Id": operator["api_key"]}
    funded = await c.post(
        f"{PREFIX}/agents/deposit/usdc",
        json={"tx_hash": "0x01", "amount_usdc": 100, "chain": "base"},
        headers=agent,
    )
    assert funded.status_code == 200, funded.text
    again = await c.post(  # the same transfer twice credits once
        f"{PREFIX}/agents/deposit/usdc",
        json={"tx_hash": "0x01", "amount_usdc": 100, "chain": "base"},
        headers=agent,
    )
    assert again.status_code == 200

    spec = new_task(
        clock.now() + timedelta(days=2), callback_url=receiver.url, callback_secret="s3cret"
    )
    made = await c.post(f"{PREFIX}/tasks", json=spec, headers={**agent, "Idempotency-Key": "t1"})
    assert made.status_code == 201, made.text
    task = made.json()
    assert (task["status"], task["reward_usd"], task["platform_fee"], task["total_escrow"]) == (
        "PENDING",
        25,
        2.5,
        27.5,
    )
    assert "sandbox" not in task
    replay = await c.post(f"{PREFIX}/tasks", json=spec, headers={**agent, "Idempotency-Key": "t1"})
    assert replay.status_code == 200 and replay.json()["task_id"] == task["task_id"]
    balance = (await c.get(f"{PREFIX}/agents/balance", headers=agent)).json()
    assert (balance["deposit_balance"], balance["escrow_balance"], balance["tier"]) == (
        72.5,
        27.5,
        "STANDARD",
    )

    tid = task["task_id"]
    browse = (await c.get(f"{PREFIX}/operator/tasks", headers=jane)).json()
    assert tid in [t["task_id"] for t in browse["data"]]
    estimate = {"estimate_hours": 2, "estimate_minutes": 30, "estimate_note": "this afternoon"}
    offered = await c.post(f"{PREFIX}/operator/tasks/{tid}/accept", json=estimate, headers=jane)
    assert offered.status_code == 200, offered.text
    assert (offered.json()["status"], offered.json()["estimate_minutes"]) == (
        "ESTIMATE_PENDING",
        150,
    )
    seen = (await c.get(f"{PREFIX}/tasks/{tid}", headers=agent)).json()
    assert (seen["status"], seen["estimate_minutes"]) == ("ESTIMATE_PENDING", 150)
    assert seen["operator"]["id"] == operator["operator_id"]
    turned_down = await c.post(
        f"{PREFIX}/tasks/{tid}/estimate/reject", json={"reason": "too slow"}, headers=agent
    )
    assert turned_down.json()["status"] == "PENDING"
    await c.post(f"{PREFIX}/operator/tasks/{tid}/accept", json=estimate, headers=jane)
    withdrawn = await c.post(f"{PREFIX}/operator/tasks/{tid}/withdraw-claim", headers=jane)
    assert withdrawn.json() == {"task_id": tid, "status": "PENDING"}
    await c.post(f"{PREFIX}/operator/tasks/{tid}/accept", json=estimate, headers=jane)
    approved = await c.post(f"{PREFIX}/tasks/{tid}/estimate/approve", headers=agent)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "ACCEPTED" and approved.json()["estimate_minutes"] == 150

    bad = await c.post(
        f"{PREFIX}/operator/tasks/{tid}/submit", json={"notes": "here"}, headers=jane
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("output does not fit")
    proof = {"photos": ["https://storage.example.com/proof-1.jpg"], "notes": "Sign confirmed"}
    submitted = await c.post(f"{PREFIX}/operator/tasks/{tid}/submit", json=proof, headers=jane)
    assert submitted.json()["status"] == "COMPLETED", submitted.text
    done = (await c.get(f"{PREFIX}/tasks/{tid}", headers=agent)).json()
    assert done["proof"]["photos"] == proof["photos"] and done["platform_fee_usd"] == 2.5
    assert done["guardian_result"]["decision"] == "APPROVE"
    assert done["completed_at"] and done["accepted_at"] <= done["submitted_at"]
    assert (await c.get(f"{PREFIX}/agents/balance", headers=agent)).json()["escrow_balance"] == 0

    (callback,) = await delivered(server, receiver, 1)
    event = json.loads(callback.body)
    assert (event["event"], event["task_id"], event["status"]) == (
        "task.verified",
        tid,
        "COMPLETED",
    )
    assert callback.headers["x-humanops-signature"] == signed("s3cret", callback.body)

    earned = (await c.get(f"{PREFIX}/operator/earnings", headers=jane)).json()
    assert (earned["pending_balance"], earned["available_balance"]) == (25, 0)
    assert [t["task_id"] for t in earned["recent_tasks"]] == [tid]
    early = await c.post(
        f"{PREFIX}/operator/payout",
        json={"amount_usd": 10},
        headers={**jane, "Idempotency-Key": "p1"},
    )
    assert early.status_code == 402 and "error" in early.json()
    clock.advance(days=8)
    await server.hub.ledger.settle_due()
    paid = await c.post(
        f"{PREFIX}/operator/payout",
        json={"amount_usd": 10, "wallet_address": "0x2222", "chain": "base"},
        headers={**jane, "Idempotency-Key": "p2"},
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["net_amount_usd"]) == ("COMPLETED", 10)
    repeat = await c.post(
        f"{PREFIX}/operator/payout",
        json={"amount_usd": 10, "wallet_address": "0x2222", "chain": "base"},
        headers={**jane, "Idempotency-Key": "p2"},
    )
    assert repeat.json()["payout_id"] == paid.json()["payout_id"]
    status = await c.get(
        f"{PREFIX}/operator/payout/status/{paid.json()['payout_id']}", headers=jane
    )
    assert status.json()["status"] == "completed"
    earned = (await c.get(f"{PREFIX}/operator/earnings", headers=jane)).json()
    assert (earned["available_balance"], earned["total_earned"]) == (15, 25)


async def test_cancel_refunds_and_no_money_is_402(server: Server) -> None:
    server.hub.ledger.funding_rail = SandboxFundingRail()  # a rail confirms live transfers
    c = server.client
    agent = {"X-API-Key": server.a.requester["Authorization"][7:]}
    deadline = server.hub.clock.now() + timedelta(days=1)
    poor = await c.post(f"{PREFIX}/tasks", json=new_task(deadline), headers=agent)
    assert poor.status_code == 402
    assert poor.json()["details"]["code"] == "insufficient_funds"
    assert poor.json()["error"].endswith("2750 needed")
    await c.post(
        f"{PREFIX}/agents/deposit",
        json={"amount_usd": 50},
        headers={**agent, "Idempotency-Key": "d"},
    )
    made = (await c.post(f"{PREFIX}/tasks", json=new_task(deadline), headers=agent)).json()
    cancelled = await c.post(f"{PREFIX}/tasks/{made['task_id']}/cancel", headers=agent)
    assert cancelled.json() == {
        "task_id": made["task_id"],
        "status": "CANCELLED",
        "refunded_usd": 27.5,
    }
    balance = (await c.get(f"{PREFIX}/agents/balance", headers=agent)).json()
    assert (balance["deposit_balance"], balance["escrow_balance"]) == (50, 0)
    listed = await c.get(f"{PREFIX}/tasks", params={"status": "CANCELLED"}, headers=agent)
    assert [t["task_id"] for t in listed.json()["data"]] == [made["task_id"]]


class UnsureVerifier:
    """Verification that is never sure: every answer goes to manual review."""

    def plan(self, task: Task) -> Task:
        return task

    async def verify(self, tx: Transaction, task: Task) -> Verification:
        output = task.answers()[-1].output
        return Verification(
            outcome="manual_review", score=70, output=output, reasons=("blurry photo",)
        )


async def test_manual_review_is_for_admins(server: Server, receiver: Receiver) -> None:
    server.hub.ledger.funding_rail = SandboxFundingRail()  # a rail confirms live transfers
    server.hub.engine.verifier = UnsureVerifier()
    c, admin = server.client, server.a.admin
    agent = {"X-API-Key": server.a.requester["Authorization"][7:]}
    await c.post(f"{PREFIX}/agents/deposit", json={"amount_usd": 100}, headers=agent)
    deadline = server.hub.clock.now() + timedelta(days=1)
    spec = new_task(deadline, callback_url=receiver.url)  # no secret: sent unsigned
    tid = (await c.post(f"{PREFIX}/tasks", json=spec, headers=agent)).json()["task_id"]
    operator = (
        await c.post(f"{PREFIX}/operator/register", json={"name": "Op"}, headers=admin)
    ).json()
    op = {"Authorization": f"Bearer {operator['api_key']}"}
    await c.post(f"{PREFIX}/operator/tasks/{tid}/accept", json={"estimate_hours": 1}, headers=op)
    await c.post(f"{PREFIX}/tasks/{tid}/estimate/approve", headers=agent)
    proof = {"photos": ["https://example.com/p.jpg"]}
    submitted = await c.post(f"{PREFIX}/operator/tasks/{tid}/submit", json=proof, headers=op)
    assert submitted.json()["status"] == "MANUAL_REVIEW"
    shown = (await c.get(f"{PREFIX}/tasks/{tid}", headers=agent)).json()
    assert shown["guardian_result"] == {
        "decision": "MANUAL_REVIEW",
        "confidence": 70,
        "reasoning": "blurry photo",
    }
    refused = await c.post(
        f"{PREFIX}/tasks/{tid}/verify", json={"decision": "APPROVE"}, headers=agent
    )
    assert refused.status_code == 403
    assert refused.json()["error"].endswith("it is for admin, not requester")
    passed = await c.post(
        f"{PREFIX}/tasks/{tid}/verify", json={"decision": "APPROVE"}, headers=admin
    )
    assert passed.json()["status"] == "COMPLETED"
    twice = await c.post(f"{PREFIX}/tasks/{tid}/verify", json={"decision": "REJECT"}, headers=admin)
    assert twice.status_code == 409
    events = await delivered(server, receiver, 2)
    assert sorted(json.loads(e.body)["event"] for e in events) == [
        "task.manual_review",
        "task.verified",
    ]
    assert all("x-humanops-signature" not in e.headers for e in events)


# ---------------------------------------------------------------- rules, errors, tenancy


async def test_errors_in_the_humanops_shape(server: Server) -> None:
    c = server.client
    agent = {"X-API-Key": server.a.requester["Authorization"][7:]}
    anonymous = await c.get(f"{PREFIX}/agents/balance")
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error", "details"}
    missing = await c.post(f"{PREFIX}/tasks", json={"title": "t"}, headers=agent)
    assert missing.status_code == 400
    paths = {e["path"] for e in missing.json()["details"]["errors"]}
    assert paths >= {"$.description", "$.reward_usd", "$.deadline", "$.task_type"}
    now = server.hub.clock.now()
    past = await c.post(f"{PREFIX}/tasks", json=new_task(now - timedelta(hours=1)), headers=agent)
    assert past.status_code == 400 and "deadline" in past.json()["error"]
    far = await c.post(f"{PREFIX}/tasks", json=new_task(now + timedelta(days=45)), headers=agent)
    assert far.status_code == 400 and "within 30 days" in far.json()["error"]
    nowhere = new_task(now + timedelta(days=1), location=None)
    no_place = await c.post(f"{PREFIX}/tasks", json=nowhere, headers=agent)
    assert no_place.status_code == 400 and "location" in no_place.json()["error"]
    unknown = await c.get(f"{PREFIX}/tasks/no-such-task", headers=agent)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "task 'no-such-task' not found")
    assert (await c.get(f"{PREFIX}/no/such/path", headers=agent)).status_code == 404
    agents_cannot_operate = await c.get(f"{PREFIX}/operator/tasks", headers=agent)
    assert agents_cannot_operate.status_code == 403
    forged = await c.get(f"{PREFIX}/operator/tasks", headers={"X-Operator-Id": "op_xyz789"})
    assert forged.status_code == 401  # an operator id alone proves nothing
    register = await c.post(f"{PREFIX}/operator/register", json={"name": "x"}, headers=agent)
    assert register.status_code == 403


async def test_registration_can_be_closed(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, compat_open_registration=False)) as server:
        closed = await server.client.post(
            f"{PREFIX}/agents/register", json={"name": "a", "email": "a@example.com"}
        )
    assert closed.status_code == 403 and "closed" in closed.json()["error"]


async def test_another_organisation_sees_nothing(server: Server) -> None:
    server.hub.ledger.funding_rail = SandboxFundingRail()  # a rail confirms live transfers
    c = server.client
    agent = {"X-API-Key": server.a.requester["Authorization"][7:]}
    await c.post(f"{PREFIX}/agents/deposit", json={"amount_usd": 100}, headers=agent)
    deadline = server.hub.clock.now() + timedelta(days=1)
    tid = (await c.post(f"{PREFIX}/tasks", json=new_task(deadline), headers=agent)).json()[
        "task_id"
    ]
    rival = {"X-API-Key": server.b.requester["Authorization"][7:]}
    rival_operator = (
        await c.post(f"{PREFIX}/operator/register", json={"name": "R"}, headers=server.b.admin)
    ).json()
    rop = {"X-Operator-Id": rival_operator["api_key"]}
    for method, path, who in (
        ("GET", f"/tasks/{tid}", rival),
        ("POST", f"/tasks/{tid}/cancel", rival),
        ("POST", f"/tasks/{tid}/estimate/approve", rival),
        ("POST", f"/tasks/{tid}/retrieve-credential", rival),
        ("POST", f"/operator/tasks/{tid}/accept", rop),
        ("POST", f"/operator/tasks/{tid}/submit", rop),
    ):
        answer = await c.request(method, f"{PREFIX}{path}", json={}, headers=who)
        assert answer.status_code == 404, (path, answer.text)
    browse = (await c.get(f"{PREFIX}/operator/tasks", headers=rop)).json()
    assert tid not in [t["task_id"] for t in browse["data"]]
    assert (await c.get(f"{PREFIX}/tasks", headers=rival)).json()["pagination"]["total"] == 0
    assert (await c.get(f"{PREFIX}/tasks/{tid}", headers=agent)).json()["status"] == "PENDING"
