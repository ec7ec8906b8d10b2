"""HumanRail's dialect, driven by the real ``humanrail`` SDK against a server process:
create, replay, get, list, cancel, wait_for_completion and webhook signatures; and the
error envelope, tenancy and rate limits, over HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from handrail import Role
from tests.server._live import Receiver, bearer
from tests.server.compat.conftest import Live, eventually
from tests.server.conftest import Server, make_settings, running

PREFIX = "/compat/humanrail/v1"
SCHEMA: dict[str, Any] = {
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
PAYLOAD = {"orderId": "order-12345", "orderTotal": 89.99, "reason": "Item arrived damaged"}


def sdk(humanrail: ModuleType, live: Live, key: str) -> Any:
    return humanrail.EscalationClient(
        api_key=key, base_url=f"{live.url}{PREFIX}", max_retries=0, timeout=10
    )


def create(client: Any, key: str, **more: Any) -> Any:
    """The create call of HumanRail's quickstart (seed 000), with its key."""
    fields: dict[str, Any] = {
        "idempotency_key": key,
        "task_type": "refund_eligibility",
        "risk_tier": "medium",
        "sla_seconds": 300,
        "payload": PAYLOAD,
        "output_schema": SCHEMA,
        "payout": {"currency": "USD", "maxAmount": 0.50},
        **more,
    }
    return client.tasks.create(**fields)


@pytest.fixture(scope="module")
def agent(live: Live) -> str:
    key = live.acme.key("requester", "hr-agent")
    live.acme.deposit(live.acme.admin, "100.00", "hr-agent-funds")  # the org pays rewards
    return key


@pytest.fixture(scope="module")
def sandbox(live: Live) -> str:
    """An ``hr_test_`` key: simulated reviewers answer its tasks (HumanRail's ek_test_)."""
    key = live.acme.key("requester", "hr-sandbox", sandbox=True)
    live.acme.deposit(key, "20.00", "hr-sandbox-credit")  # sandbox credit
    return key


# ---------------------------------------------------------------- the SDK


def test_create_replay_get_list_cancel(humanrail: ModuleType, live: Live, agent: str) -> None:
    with sdk(humanrail, live, agent) as client:
        task = create(client, "order-12345-refund-check")
        assert isinstance(task, humanrail.Task)
        assert (task.status, task.task_type, task.risk_tier) == (
            "posted",
            "refund_eligibility",
            "medium",
        )
        assert (task.payout.currency, task.payout.max_amount) == ("USD", 0.5)
        assert task.idempotency_key == "order-12345-refund-check"
        assert task.payload == PAYLOAD and task.output is None

        again = create(client, "order-12345-refund-check")  # a retry: the same task
        assert again.id == task.id
        with pytest.raises(humanrail.ConflictError) as clash:
            create(client, "order-12345-refund-check", sla_seconds=600)
        assert clash.value.body["error"]["code"] == "idempotency_conflict"

        assert client.tasks.get(task.id).id == task.id
        other = create(client, "order-12346-refund-check")
        page = client.tasks.list(limit=1, task_type="refund_eligibility", status="posted")
        assert isinstance(page, humanrail.TaskListResponse)
        assert [t.id for t in page.data] == [task.id] and page.has_more
        rest = client.tasks.list(limit=100, after=page.next_cursor, task_type="refund_eligibility")
        assert other.id in [t.id for t in rest.data] and task.id not in [t.id for t in rest.data]

        cancelled = client.tasks.cancel(task.id)
        assert isinstance(cancelled, humanrail.TaskCancelResult)
        assert (cancelled.id, cancelled.status) == (task.id, "cancelled")
        assert client.tasks.cancel(task.id).status == "cancelled"  # a retried cancel is fine
        assert client.tasks.get(task.id).status == "cancelled"
        assert task.id in [t.id for t in client.tasks.list(status="cancelled", limit=100).data]


def test_replay_is_200_and_the_first_is_201(live: Live, agent: str) -> None:
    body = {
        "idempotencyKey": "status-codes",
        "taskType": "t",
        "payload": {},
        "outputSchema": SCHEMA,
        "payout": {"currency": "USD", "maxAmount": 0},
    }
    url = f"{live.url}{PREFIX}/tasks"
    first = httpx.post(url, json=body, headers=bearer(agent), trust_env=False)
    again = httpx.post(url, json=body, headers={**bearer(agent), "Idempotency-Key": "status-codes"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["x-request-id"] and again.headers["x-request-id"]
    differ = httpx.post(url, json=body, headers={**bearer(agent), "Idempotency-Key": "other"})
    assert differ.status_code == 400
    assert differ.json()["error"]["details"] == {
        "idempotencyKey": "differs from the Idempotency-Key header"
    }


def test_wait_for_completion_returns_the_simulated_reviewers_output(
    humanrail: ModuleType, live: Live, sandbox: str
) -> None:
    with sdk(humanrail, live, sandbox) as client:
        task = create(client, "sandbox-refund-check")
        done = client.tasks.wait_for_completion(task.id, poll_interval=0.05, timeout=30)
    assert done.status == "verified"
    verified = httpx.get(f"{live.url}/v1/tasks/{task.id}", headers=bearer(sandbox)).json()
    assert verified["status"] == "verified" and verified["sandbox"] is True
    assert done.output == verified["output"] == {"eligible": True, "reason_code": "approved"}
    assert done.payout_result is not None
    assert (done.payout_result.amount, done.payout_result.currency) == (0.5, "USD")


def test_the_quick_start_with_a_fresh_test_key_and_no_deposit(
    humanrail: ModuleType, live: Live, receiver: Receiver
) -> None:
    """HumanRail's quick start (seed 000) with the real SDK and a fresh test key: no
    deposit step, ``payout: {maxAmount: 0.50}``; the sandbox funds itself and the
    simulated worker answers. It used to fail: ``account org_available:USD:… holds 0 USD
    (minor units); 60 needed``. (The callback goes to a receiver on loopback, in place of
    ``https://myapp.com/webhooks/humanrail``.)"""
    key = live.rival.key("requester", "hr-quickstart", sandbox=True)
    fresh = httpx.get(f"{live.url}/v1/balance", headers=bearer(key)).json()
    assert (fresh["available"]["amount"], fresh["held"]["amount"]) == ("0.00", "0.00")
    with sdk(humanrail, live, key) as client:
        task = create(client, "order-12345-refund-check", callback_url=receiver.url)
        assert task.status == "posted"
        done = client.tasks.wait_for_completion(task.id, poll_interval=0.05, timeout=30)
    assert done.status == "verified"
    assert done.output == {"eligible": True, "reason_code": "approved"}

    def verified_event() -> bool | None:
        kinds = [json.loads(r.body).get("type") for r in receiver.snapshot()]
        return True if "task.verified" in kinds else None

    eventually(verified_event)
    books = httpx.get(f"{live.url}/v1/balance", headers=bearer(live.rival.admin)).json()
    assert (books["available"]["amount"], books["held"]["amount"]) == ("0.00", "0.00")


def test_wait_for_completion_returns_what_a_reviewer_answered(
    humanrail: ModuleType, live: Live, agent: str
) -> None:
    reviewer = live.acme.key("reviewer", "hr-reviewer")
    answer = {"eligible": False, "reason_code": "denied_timeframe", "notes": "bought in 2019"}
    with sdk(humanrail, live, agent) as client:
        task = create(client, "reviewed-refund-check", risk_tier="low")

        def work() -> None:  # a person at the queue, while the agent waits
            def queued() -> bool | None:
                shown = httpx.get(f"{live.url}/v1/queue", headers=bearer(reviewer)).json()
                return True if task.id in [t["id"] for t in shown["data"]] else None

            eventually(queued)
            answered = httpx.post(
                f"{live.url}/v1/tasks/{task.id}/submissions",
                json={"output": answer},
                headers=bearer(reviewer),
            )
            assert answered.status_code == 200, answered.text

        person = threading.Thread(target=work)
        person.start()
        done = client.tasks.wait_for_completion(task.id, poll_interval=0.05, timeout=30)
        person.join()
    assert (done.status, done.output) == ("verified", answer)


def test_callbacks_are_signed_the_humanrail_way(
    humanrail: ModuleType, live: Live, sandbox: str, receiver: Receiver
) -> None:
    sandbox_admin = live.acme.key("admin", "hr-sandbox-admin", sandbox=True)
    secret = httpx.get(  # the sandbox signs with a secret of its own, as Stripe's test mode
        f"{live.url}{PREFIX}/webhooks/secret", headers=bearer(sandbox_admin)
    ).json()["secret"]
    with sdk(humanrail, live, sandbox) as client:
        task = create(client, "with-callback", callback_url=receiver.url)
        assert task.callback_url == receiver.url
        client.tasks.wait_for_completion(task.id, poll_interval=0.05, timeout=30)

    def verified() -> list[Any] | None:
        got = receiver.snapshot()
        return got if len(got) >= 4 else None

    deliveries = eventually(verified)
    events = []
    for delivery in deliveries:
        signature = delivery.headers["x-escalation-signature"]
        assert humanrail.verify_webhook_signature(
            payload=delivery.body.decode(), signature=signature, secret=secret
        )
        assert not humanrail.verify_webhook_signature(
            payload=delivery.body.decode() + " ",
            signature=signature,
            secret=secret,
        )
        assert not humanrail.verify_webhook_signature(
            payload=delivery.body.decode(), signature=signature, secret="someone-else"
        )
        events.append(humanrail.WebhookEvent.model_validate_json(delivery.body))
    # due together, they are sent together: in any order (each carries the task as it was)
    by_type = {e.type: e for e in events}
    assert sorted(by_type) == ["task.assigned", "task.posted", "task.submitted", "task.verified"]
    assert {e.data.id for e in events} == {task.id}
    assert by_type["task.posted"].data.status == "posted"
    assert by_type["task.verified"].data.output == {"eligible": True, "reason_code": "approved"}
    assert len({e.id for e in events}) == 4


def test_the_test_webhook_reaches_the_receiver_signed(
    humanrail: ModuleType, live: Live, agent: str, receiver: Receiver
) -> None:
    sent = httpx.post(
        f"{live.url}{PREFIX}/webhooks/test",
        json={"eventType": "task.verified", "callbackUrl": receiver.url},
        headers=bearer(agent),
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["statusCode"] == 200 and sent.json()["deliveredAt"]
    (delivery,) = receiver.snapshot()
    secret = httpx.get(
        f"{live.url}{PREFIX}/webhooks/secret", headers=bearer(live.acme.admin)
    ).json()["secret"]
    assert humanrail.verify_webhook_signature(
        payload=delivery.body.decode(),
        signature=delivery.headers["x-escalation-signature"],
        secret=secret,
    )
    event = humanrail.WebhookEvent.model_validate_json(delivery.body)
    assert (event.id, event.type) == (sent.json()["eventId"], "task.verified")
    missing = httpx.post(
        f"{live.url}{PREFIX}/webhooks/test",
        json={"eventType": "task.verified"},
        headers=bearer(agent),
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["details"]["callbackUrl"].startswith("is required")
    for unusable in ("http://[::1", f"http://{'x' * 70}.example/"):  # not a URL; not a name
        refused = httpx.post(
            f"{live.url}{PREFIX}/webhooks/test",
            json={"eventType": "task.verified", "callbackUrl": unusable},
            headers=bearer(agent),
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["callbackUrl"]
    only_admins = httpx.get(f"{live.url}{PREFIX}/webhooks/secret", headers=bearer(agent))
    assert only_admins.status_code == 403
    assert only_admins.json()["error"]["type"] == "authorization_error"


# ---------------------------------------------------------------- errors and tenancy


def test_errors_come_in_the_humanrail_envelope(
    humanrail: ModuleType, live: Live, agent: str
) -> None:
    with (
        sdk(humanrail, live, "hr_live_wrong") as client,
        pytest.raises(humanrail.AuthenticationError) as unknown,
    ):
        client.tasks.get("01a2a3a4-0000-7000-8000-000000000000")
    assert unknown.value.status_code == 401 and unknown.value.request_id
    with sdk(humanrail, live, agent) as client:
        with pytest.raises(humanrail.TaskNotFoundError) as missing:
            client.tasks.get("no-such-task")
        assert missing.value.body["error"]["type"] == "not_found"
        assert missing.value.body["requestId"] == missing.value.request_id
        with pytest.raises(humanrail.ValidationError) as invalid:
            create(client, "bad-payout", payout={"currency": "USD", "maxAmount": 0.505})
        assert invalid.value.status_code == 422
        assert "payout.maxAmount" in invalid.value.body["error"]["details"]
        with pytest.raises(humanrail.ValidationError) as btc:
            create(client, "btc", payout={"currency": "BTC", "maxAmount": 0.0001})
        assert btc.value.body["error"]["details"] == {
            "payout.currency": "Handrail keeps bitcoin in SATS: send SATS"
        }
    reviewer = live.acme.key("reviewer")
    with sdk(humanrail, live, reviewer) as client, pytest.raises(humanrail.AuthorizationError):
        create(client, "not-a-requester")

    url = f"{live.url}{PREFIX}/tasks"
    malformed = httpx.post(url, json={"taskType": "x"}, headers=bearer(agent))
    assert malformed.status_code == 400
    body = malformed.json()
    assert body["error"]["type"] == "validation_error"
    assert set(body["error"]["details"]) == {"payload", "outputSchema", "payout"}
    assert body["requestId"] == malformed.headers["x-request-id"]
    not_json = httpx.post(
        url, content=b"{", headers={**bearer(agent), "content-type": "application/json"}
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    nowhere = httpx.get(f"{live.url}{PREFIX}/nowhere", headers=bearer(agent))
    assert (nowhere.status_code, nowhere.json()["error"]["type"]) == (404, "not_found")
    wrong_method = httpx.delete(url, headers=bearer(agent))
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_a_verified_task_cannot_be_cancelled(
    humanrail: ModuleType, live: Live, sandbox: str
) -> None:
    with sdk(humanrail, live, sandbox) as client:
        task = create(client, "verified-then-cancel")
        client.tasks.wait_for_completion(task.id, poll_interval=0.05, timeout=30)
        with pytest.raises(humanrail.ConflictError) as refused:
            client.tasks.cancel(task.id)
    assert refused.value.body["error"]["code"] == "invalid_transition"


def test_another_organisation_sees_nothing(humanrail: ModuleType, live: Live, agent: str) -> None:
    with sdk(humanrail, live, agent) as client:
        mine = create(client, "acme-private")
    stranger = live.rival.key("requester")
    live.rival.deposit(live.rival.admin, "10.00", "rival-funds")
    with sdk(humanrail, live, stranger) as client:
        for attempt in (client.tasks.get, client.tasks.cancel):
            with pytest.raises(humanrail.TaskNotFoundError):
                attempt(mine.id)
        assert mine.id not in [t.id for t in client.tasks.list(limit=100).data]
        theirs = create(client, "acme-private")  # the same key in another organisation
    assert theirs.id != mine.id
    with sdk(humanrail, live, agent) as client:
        assert client.tasks.get(mine.id).status == "posted"


def test_usage_and_health(live: Live, sandbox: str) -> None:
    used = httpx.get(f"{live.url}{PREFIX}/usage", headers=bearer(sandbox))
    assert used.status_code == 200, used.text
    usage = used.json()
    assert usage["period"] == "month" and usage["tasks"]["total"] >= 1
    assert usage["tasks"]["verified"] >= 1 and usage["payouts"]["count"] >= 1
    assert usage["tasks"]["averageCompletionSeconds"] >= 0
    week = httpx.get(
        f"{live.url}{PREFIX}/usage",
        params={"period": "week", "start_date": "2026-01-02", "end_date": "2026-01-01"},
        headers=bearer(sandbox),
    )
    assert week.status_code == 422 and week.json()["error"]["type"] == "validation_error"
    for path in (f"{PREFIX}/healthz", "/compat/humanrail/healthz"):
        assert httpx.get(f"{live.url}{path}").json() == {"status": "ok"}


async def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_per_second=0.01, rate_limit_burst=1)
    async with running(settings) as server:
        key = await server.key("acme", Role.REQUESTER)
        first = await server.client.get(f"{PREFIX}/tasks", headers=key)
        limited = await server.client.get(f"{PREFIX}/tasks", headers=key)
    assert first.status_code == 200
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"


async def test_created_after_and_before_bound_the_list(server: Server) -> None:
    c, key = server.client, server.a.requester
    made = []
    for n in range(3):
        body = {
            "idempotencyKey": f"window-{n}",
            "taskType": "window",
            "payload": {},
            "outputSchema": SCHEMA,
            "payout": {"currency": "USD", "maxAmount": 0},
        }
        made.append((await c.post(f"{PREFIX}/tasks", json=body, headers=key)).json())
    middle = made[1]["createdAt"]
    later = await c.get(f"{PREFIX}/tasks", params={"created_after": middle}, headers=key)
    earlier = await c.get(f"{PREFIX}/tasks", params={"created_before": middle}, headers=key)
    assert [t["id"] for t in later.json()["data"]] == [made[1]["id"], made[2]["id"]]
    assert [t["id"] for t in earlier.json()["data"]] == [made[0]["id"], made[1]["id"]]
