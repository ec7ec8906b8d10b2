"""``Handrail(url, api_key)``: the client over HTTP against the real server on a loopback
port, sync and async; its retries, idempotency keys and typed errors against a scripted
transport; and proof that it waits by long-poll and SSE, not by polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from handrail import (
    ConcurrencyConflict,
    Decision,
    DecisionType,
    EditDenied,
    Handrail,
    HandrailError,
    InsufficientFunds,
    InvalidTransition,
    Money,
    NotEligible,
    NotFound,
    PermissionDenied,
    ReasonCode,
    RetryPolicy,
    Role,
    Status,
    Task,
    TokenRejected,
    ValidationError,
    WaitTimeout,
)
from handrail.ledger import Account
from handrail.money import Currency
from handrail_server.app import create_app
from handrail_server.hub import Hub
from handrail_server.keys import create_key
from tests.server._live import serve_in_thread
from tests.server.conftest import make_settings

REVIEW = {"kind": "review", "action": {"name": "send_email", "args": {"to": "a@example.com"}}}
SPAM = {"type": "object", "properties": {"spam": {"type": "boolean"}}, "required": ["spam"]}

# ---------------------------------------------------------------- a live server


@dataclass
class Live:
    """The server on a loopback port, with one organisation's keys."""

    url: str
    hub: Hub
    loop: asyncio.AbstractEventLoop
    org: str = "acme"
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, role: Role, principal: str, *, sandbox: bool = False, org: str = "") -> str:
        now = self.hub.clock.now()
        made = asyncio.run_coroutine_threadsafe(
            self.hub.store.run(
                lambda c: create_key(
                    c,
                    org_id=org or self.org,
                    role=role,
                    now=now,
                    principal=principal,
                    sandbox=sandbox,
                )
            ),
            self.loop,
        ).result(timeout=10)
        return made.key

    def client(self, who: str, **options: Any) -> Handrail:
        return Handrail(self.url, self.keys[who], **options)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    app = create_app(make_settings(tmp_path))
    served = serve_in_thread(app)
    found = Live(served.url, app.state.hub, served.loop)
    found.keys = {
        "admin": found.key(Role.ADMIN, "acme-admin"),
        "requester": found.key(Role.REQUESTER, "acme-agent"),
        "reviewer": found.key(Role.REVIEWER, "acme-reviewer"),
        "other_reviewer": found.key(Role.REVIEWER, "acme-reviewer-2"),
        "sandbox": found.key(Role.REQUESTER, "acme-sandbox-agent", sandbox=True, org="play"),
    }
    try:
        yield found
    finally:
        served.stop()


def in_thread(fn: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


class Counting(httpx.AsyncHTTPTransport):
    """The real network, noting the path of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


# ---------------------------------------------------------------- sync


def test_tasks_round_trip_from_sync_code(live: Live) -> None:
    with live.client("requester") as hr, live.client("reviewer") as rv:
        task = hr.tasks.create(**REVIEW, title="Send the email?")
        assert task.status is Status.POSTED and task.created_by == "acme-agent"
        assert hr.tasks.get(task.id) == task
        page = hr.tasks.list(status="posted", kind="review")
        assert [t.id for t in page.items] == [task.id] and not page.has_more
        assert hr.tasks.list(status=["verified"]).items == ()
        assert [t.id for t in rv.tasks.queue()] == [task.id]
        decided = rv.tasks.decide(task.id, Decision.modify({"to": "ops@example.com"}, "ops"))
        assert decided.status is Status.VERIFIED
        done = hr.tasks.wait(task.id, timeout=10)
        assert done.decision is not None
        assert done.decision.args == {"to": "ops@example.com"}
        assert done.decision.reviewer_id == "acme-reviewer"
        events = hr.tasks.history(task.id)
        assert events[0].to_status is Status.POSTED and events[-1].to_status is Status.VERIFIED
        newest = hr.tasks.create(**REVIEW)
        assert [t.id for t in hr.tasks.list(newest_first=True, limit=1).items] == [newest.id]
        cancelled = hr.tasks.cancel(newest.id, "changed my mind")
        assert cancelled.status is Status.CANCELLED


def test_review_is_approved_by_a_reviewer_in_another_thread(live: Live) -> None:
    def reviewer() -> str:
        with live.client("reviewer") as rv:
            (work,) = rv.tasks.wait_for_work(timeout=20)
            rv.tasks.decide(work.id, Decision.approve("looks fine"))
            return work.id

    decided = in_thread(reviewer)
    with live.client("requester") as hr:
        decision = hr.review(
            "send_email", {"to": "a@example.com"}, reasoning="the customer asked", timeout=20
        )
        task_id = decided.result(timeout=20)
        assert decision.type is DecisionType.APPROVE and decision.approved
        assert (decision.message, decision.reviewer_id) == ("looks fine", "acme-reviewer")
        task = hr.tasks.get(task_id)
        assert task.agent_reasoning == "the customer asked"


def test_an_unanswered_review_fails_closed(live: Live) -> None:
    with live.client("requester") as hr:
        started = time.monotonic()
        decision = hr.review("delete_db", timeout=0.5)
        assert time.monotonic() - started < 5
        assert decision.type is DecisionType.REJECT and not decision.approved
        assert decision.message is not None and "No human answered in time" in decision.message
        (task,) = hr.tasks.list().items
        assert task.status is Status.CANCELLED
        with pytest.raises(WaitTimeout) as raised:
            hr.review("delete_db", timeout=0.3, on_timeout="raise")
        assert raised.value.code == "wait_timeout"
        pending = hr.tasks.create(**REVIEW)
        with pytest.raises(WaitTimeout):
            hr.tasks.wait(pending.id, timeout=0)
        with pytest.raises(WaitTimeout):
            hr.tasks.wait(pending.id, timeout=0.2)


def test_ask_is_answered_by_the_sandbox(live: Live) -> None:
    with live.client("sandbox") as hr:
        answer = hr.ask("Is this message spam?", SPAM, payload={"text": "win $$$"}, timeout=20)
        assert isinstance(answer, dict) and isinstance(answer["spam"], bool)
        decision = hr.review("send_email", {"to": "a@example.com"}, timeout=20)
        assert decision.type is DecisionType.APPROVE and decision.reviewer_id == "sandbox"


def test_money_over_http(live: Live) -> None:
    with live.client("sandbox") as hr:
        assert hr.principal_id == "api-key"  # not asked yet
        posting = hr.ledger.deposit(Money.parse("10.00", "USD"), key="first-credit")
        again = hr.ledger.deposit(Money.parse("10.00", "USD"), key="first-credit")
        assert posting.id == again.id
        balance = hr.ledger.balance()
        assert balance.available == Money.parse("10.00", "USD") and balance.org_id == "play"
        paid = hr.tasks.create(
            kind="judgment",
            title="Spam?",
            output_schema=SPAM,
            payout={"currency": "USD", "amount": "1.00"},
        )
        assert paid.payout == Money.parse("1.00", "USD")
        assert hr.ledger.balance().available.minor < 1000  # held, or paid to the sandbox
        entries = hr.ledger.entries(Account.org("play", Currency.USD))
        assert entries.items and entries.items[0].amount == 1000
        assert hr.principal_id == "acme-sandbox-agent"
        with pytest.raises(NotFound):
            hr.ledger.entries(Account.org("acme", Currency.USD))
        with pytest.raises(PermissionDenied):  # earnings are a worker's: not a requester's
            hr.ledger.earnings()
        with pytest.raises(PermissionDenied):
            hr.ledger.payouts()


# ---------------------------------------------------------------- async


async def test_tasks_round_trip_from_async_code(live: Live) -> None:
    async with live.client("requester") as hr, live.client("reviewer") as rv:

        async def review() -> None:
            (work,) = await rv.tasks.await_for_work(timeout=20)
            claimed = await rv.tasks.aclaim(work.id)
            assert claimed.active_assignment("acme-reviewer") is not None
            await rv.tasks.adecide(work.id, {"type": "reject", "message": "not today"})

        reviewing = asyncio.create_task(review())
        decision = await hr.areview("send_email", {"to": "a@example.com"}, timeout=20)
        await reviewing
        assert (decision.type, decision.message) == (DecisionType.REJECT, "not today")

        task = await hr.tasks.acreate(**REVIEW)
        assert (await hr.tasks.aget(task.id)).id == task.id
        assert task.id in [t.id for t in (await hr.tasks.alist()).items]
        waiting = asyncio.create_task(hr.tasks.await_(task.id, timeout=20))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await rv.tasks.adecide(task.id, Decision.approve())
        done = await waiting
        assert done.status is Status.VERIFIED
        assert [e.to_status for e in await hr.tasks.ahistory(task.id)][-1] is Status.VERIFIED
        with pytest.raises(NotFound):
            await hr.tasks.aget("missing")


async def test_async_ask_with_the_sandbox(live: Live) -> None:
    async with live.client("sandbox") as hr:
        first, second = await asyncio.gather(
            hr.aask("Spam?", SPAM, timeout=20), hr.aask("Spam again?", SPAM, timeout=20)
        )
        assert isinstance(first["spam"], bool) and isinstance(second["spam"], bool)


# ---------------------------------------------------------------- typed errors


def test_problem_details_become_typed_errors(live: Live) -> None:
    with live.client("requester") as hr, live.client("reviewer") as rv:
        with pytest.raises(NotFound) as missing:
            hr.tasks.get("nope")
        assert (missing.value.code, missing.value.resource, missing.value.id) == (
            "not_found",
            "task",
            "nope",
        )
        assert any("HTTP 404" in note for note in missing.value.__notes__)

        with pytest.raises(ValidationError) as invalid:
            hr.tasks.create(kind="review", action={"name": ""}, risk_tier="x")
        assert [e.path for e in invalid.value.errors] == ["$.risk_tier", "$.action.name"]
        assert invalid.value.to_dict()["errors"][0]["path"] == "$.risk_tier"

        with pytest.raises(InsufficientFunds) as broke:
            hr.tasks.create(
                kind="judgment",
                title="Spam?",
                output_schema=SPAM,
                payout={"currency": "USD", "amount": "2.00"},
            )
        assert broke.value.needed > 0 and broke.value.available == 0
        assert broke.value.currency == "USD"

        task = hr.tasks.create(**REVIEW)
        rv.tasks.decide(task.id, Decision.approve())
        with pytest.raises(InvalidTransition) as late:  # 409: decided already
            hr.tasks.cancel(task.id)
        assert (late.value.task_id, late.value.from_status, late.value.event) == (
            task.id,
            "verified",
            "cancel",
        )

        with pytest.raises(PermissionDenied):  # a reviewer's key may not post tasks
            rv.tasks.create(**REVIEW)
        with pytest.raises(NotImplementedError, match="reviewer's key"):
            hr.as_reviewer("alice")

    with Handrail(live.url, "hr_live_" + "x" * 32) as stranger:
        with pytest.raises(PermissionDenied) as refused:
            stranger.tasks.list()
        assert refused.value.code == "unauthenticated"
        assert "refused the API key" in str(refused.value)


def test_from_env(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDRAIL_URL", live.url)
    monkeypatch.setenv("HANDRAIL_API_KEY", live.keys["requester"])
    with Handrail.from_env() as hr:
        assert hr.tasks.create(**REVIEW).created_by == "acme-agent"
    monkeypatch.delenv("HANDRAIL_API_KEY")
    with pytest.raises(ValueError, match="HANDRAIL_API_KEY"):
        Handrail.from_env()


def test_constructor_checks() -> None:
    with pytest.raises(TypeError, match="from_env"):
        Handrail()
    with pytest.raises(ValueError, match="http"):
        Handrail("127.0.0.1:8000", "hr_live_x")
    with pytest.raises(TypeError, match="api_key"):
        Handrail("http://127.0.0.1:8000")


def test_close_closes(live: Live) -> None:
    hr = live.client("requester")
    hr.tasks.create(**REVIEW)
    hr.close()
    hr.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        hr.tasks.list()


# ---------------------------------------------------------------- waiting, not polling


def test_wait_returns_at_the_decision_not_at_a_poll(live: Live) -> None:
    counting = Counting()
    with live.client("requester", transport=counting) as hr, live.client("reviewer") as rv:
        task = hr.tasks.create(**REVIEW)
        finished: list[float] = []

        def wait() -> Task:
            try:
                return hr.tasks.wait(task.id, timeout=30)
            finally:
                finished.append(time.monotonic())

        waiting = in_thread(wait)
        time.sleep(0.5)
        assert not waiting.done()
        rv.tasks.decide(task.id, Decision.approve())
        decided = time.monotonic()
        assert waiting.result(timeout=10).status is Status.VERIFIED
        assert finished[0] - decided < 2.0  # the long-poll's timeout is 30 s
        assert counting.paths.count(f"/v1/tasks/{task.id}/wait") == 1


def test_wait_for_work_wakes_when_work_arrives(live: Live) -> None:
    counting = Counting()
    with live.client("reviewer", transport=counting) as rv, live.client("requester") as hr:
        waiting = in_thread(lambda: (rv.tasks.wait_for_work(timeout=30), time.monotonic()))
        time.sleep(0.5)
        assert not waiting.done()
        task = hr.tasks.create(**REVIEW)
        posted = time.monotonic()
        work, woke = waiting.result(timeout=10)
        assert [t.id for t in work] == [task.id]
        assert woke - posted < 2.0
        assert counting.paths == ["/v1/queue"]

        # only skipped work queued: the server leaves it out and holds the long-poll
        skipping = in_thread(
            lambda: (rv.tasks.wait_for_work(timeout=30, skip={task.id}), time.monotonic())
        )
        time.sleep(0.5)
        assert not skipping.done()
        fresh = hr.tasks.create(**REVIEW)
        posted = time.monotonic()
        work, woke = skipping.result(timeout=10)
        assert [t.id for t in work] == [fresh.id]
        assert woke - posted < 2.0
        assert counting.paths == ["/v1/queue", "/v1/queue"]  # one long-poll each, no polling
        assert rv.tasks.wait_for_work(timeout=0.3, skip={task.id, fresh.id}) == []


# ---------------------------------------------------------------- retries


def _task_json() -> dict[str, Any]:
    with Handrail.local(sweep_interval=None) as hr:
        task = hr.tasks.create(**REVIEW)
    return task.model_dump(mode="json", exclude={"request_fingerprint", "version"})


@dataclass
class Script:
    """A transport that answers from a list, noting every request it gets."""

    answers: list[httpx.Response | Exception]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **options: Any) -> Handrail:
        retry = options.pop("retry", RetryPolicy(base=0.001, cap=0.01))
        return Handrail(
            "http://handrail.test",
            "hr_live_test",
            transport=httpx.MockTransport(self),
            retry=retry,
            **options,
        )

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


def problem(status: int, code: str, headers: dict[str, str] | None = None, **more: Any) -> Any:
    body = {"type": "about:blank", "title": "t", "status": status, "detail": code, "code": code}
    return httpx.Response(status, json={**body, **more}, headers=headers)


def test_503_with_retry_after_is_retried_after_the_pause() -> None:
    task = _task_json()
    script = Script(
        [problem(503, "store_error", {"Retry-After": "1"}), httpx.Response(201, json=task)]
    )
    with script.client() as hr:
        started = time.monotonic()
        created = hr.tasks.create(**REVIEW)
        elapsed = time.monotonic() - started
    assert created.id == task["id"]
    assert len(script.requests) == 2
    assert 0.9 <= elapsed < 5  # the server said one second: not sooner
    assert script.requests[0].headers["authorization"] == "Bearer hr_live_test"


def test_one_idempotency_key_per_call_reused_on_every_retry() -> None:
    task = _task_json()
    script = Script(
        [
            problem(503, "store_error"),
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.ConnectError("refused"),
            problem(429, "rate_limited", {"Retry-After": "0"}),
            problem(409, "idempotency_in_flight", {"Retry-After": "0"}),
            httpx.Response(201, json=task),
            httpx.Response(201, json=task),
        ]
    )
    with script.client(retry=RetryPolicy(max_attempts=6, base=0.001, cap=0.01)) as hr:
        hr.tasks.create(**REVIEW)
        first = script.keys
        assert len(first) == 6 and first[0] and len(set(first)) == 1
        hr.tasks.create(**REVIEW)
    assert script.keys[6] not in (None, first[0])  # the next call has a key of its own
    bodies = {r.content for r in script.requests}
    assert len(bodies) == 1


def test_client_errors_are_not_retried() -> None:
    script = Script(
        [
            problem(422, "validation_error", errors=[{"path": "$.kind", "message": "bad"}]),
            problem(404, "not_found", resource="task", id="t1"),
            problem(
                409, "invalid_transition", task_id="t1", from_status="verified", event="cancel"
            ),
            problem(402, "insufficient_funds", account="a", currency="USD", needed=5, available=0),
            problem(403, "forbidden"),
            problem(418, "teapot"),
        ]
    )
    with script.client() as hr:
        with pytest.raises(ValidationError) as invalid:
            hr.tasks.create(**REVIEW)
        assert [(e.path, e.message) for e in invalid.value.errors] == [("$.kind", "bad")]
        with pytest.raises(NotFound):
            hr.tasks.get("t1")
        with pytest.raises(InvalidTransition) as moved:
            hr.tasks.cancel("t1")
        assert moved.value.event == "cancel"
        with pytest.raises(InsufficientFunds) as broke:
            hr.tasks.create(**REVIEW)
        assert (broke.value.needed, broke.value.available) == (5, 0)
        with pytest.raises(PermissionDenied):
            hr.tasks.claim("t1")
        with pytest.raises(HandrailError) as other:
            hr.tasks.get("t1")
        assert (other.value.code, str(other.value)) == ("teapot", "teapot")
    assert len(script.requests) == 6  # one each


def test_500_is_retried_only_where_repeating_is_harmless() -> None:
    task = _task_json()
    script = Script(
        [
            problem(500, "internal_error"),
            httpx.Response(200, json=task),  # a GET: retried
            problem(500, "internal_error"),  # a cancel: not retried
            httpx.ReadError("connection reset"),  # a claim after sending: not retried
            httpx.ConnectError("refused"),
            httpx.Response(200, json=task),  # a claim that never went out: retried
        ]
    )
    with script.client() as hr:
        assert hr.tasks.get(task["id"]).id == task["id"]
        with pytest.raises(HandrailError) as crashed:
            hr.tasks.cancel(task["id"])
        assert crashed.value.code == "internal_error"
        with pytest.raises(HandrailError) as reset:
            hr.tasks.claim(task["id"])
        assert reset.value.code == "connection_error"
        hr.tasks.claim(task["id"])
    assert len(script.requests) == 6


def test_retries_give_up_after_max_attempts() -> None:
    script = Script([problem(503, "store_error") for _ in range(3)])
    retry = RetryPolicy(max_attempts=3, base=0.001, cap=0.01)
    with script.client(retry=retry) as hr, pytest.raises(HandrailError) as failed:
        hr.tasks.get("t1")
    assert failed.value.code == "store_error" and len(script.requests) == 3


def test_a_retry_after_too_long_is_not_waited_for() -> None:
    script = Script([problem(429, "rate_limited", {"Retry-After": "3600"})])
    with script.client() as hr:
        started = time.monotonic()
        with pytest.raises(HandrailError) as limited:
            hr.tasks.get("t1")
        assert time.monotonic() - started < 1
    assert limited.value.code == "rate_limited"


def test_backoff_is_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(base=0.2, cap=10.0)
    samples = [policy.backoff(n) for n in range(12) for _ in range(20)]
    assert all(0 <= s <= 10.0 for s in samples)
    assert max(policy.backoff(0) for _ in range(50)) <= 0.2
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_the_event_stream_over_http_resumes_after_a_seq(live: Live) -> None:
    with live.client("requester") as hr, live.client("reviewer") as rv:
        task = hr.tasks.create(**REVIEW)
        rv.tasks.decide(task.id, Decision.reject("no"))
        history = hr.tasks.history(task.id)
        with hr.tasks.events(after=0) as stream:
            seen = [next(stream) for _ in history]
        assert [e.model_dump() for e in seen] == [e.model_dump() for e in history]
        assert seen[-1].to_status is Status.VERIFIED
        later = hr.tasks.create(**REVIEW)
        with hr.tasks.events(after=seen[-1].seq) as resumed:
            event = next(resumed)
        assert event.task_id == later.id and (event.seq or 0) > (seen[-1].seq or 0)


async def test_the_async_event_stream_over_http_starts_now(live: Live) -> None:
    async with live.client("requester") as hr:
        await hr.tasks.acreate(**REVIEW)  # before the stream: not in it
        async with hr.tasks.aevents() as stream:
            made = await hr.tasks.acreate(**REVIEW)
            event = await asyncio.wait_for(anext(stream), 10)
    assert (event.task_id, event.to_status) == (made.id, Status.POSTED)


# ---------------------------------------------------------------- policies over HTTP


def test_policies_groups_tokens_and_audit_over_http(live: Live) -> None:
    with (
        live.client("admin") as admin,
        live.client("requester") as hr,
        live.client("reviewer") as rv,
        live.client("other_reviewer") as other,
    ):
        admin.policy.put_group("ops", ["acme-reviewer"])
        saved = admin.policy.put(
            {
                "rules": [
                    {"id": "mail", "tools": ["send_email"], "outcome": "allow",
                     "answer_ttl_seconds": 60},
                    {"id": "prod", "tools": ["drop_*"], "outcome": "deny"},
                    {"id": "ops", "tools": ["*"], "outcome": "ask", "reviewers": ["ops"]},
                ]
            }
        )  # fmt: skip
        assert saved.version == 1 and admin.policy.get() == saved
        why = admin.policy.explain("drop_table", {"name": "users"})
        assert (why.outcome.value, why.rule_id) == ("deny", "prod")
        with pytest.raises(ConcurrencyConflict):
            admin.policy.put(saved, expected_version=0)

        allowed = hr.review("send_email", {"to": "a@b.c"}, timeout=10)
        assert allowed.reason_code is ReasonCode.POLICY_ALLOW and allowed.expires_at is not None
        denied = hr.review("drop_table", timeout=10)
        assert denied.reason_code is ReasonCode.POLICY_DENY and not denied.approved

        task = hr.tasks.create(kind="review", action={"name": "restart", "args": {"n": 1}})
        with pytest.raises(NotEligible) as refused:
            other.tasks.decide(task.id, Decision.approve())
        assert refused.value.task_id == task.id
        with pytest.raises(EditDenied) as edit:
            rv.tasks.decide(task.id, Decision.modify({"name": "users"}, tool="drop_table"))
        assert edit.value.rule_id == "prod"
        token, claims = admin.policy.mint_token(task.id, "acme-reviewer", decision="approve")
        assert claims.org_id == "acme" and claims.task_id == task.id
        done = hr.policy.redeem_token(token, Decision.approve())  # the token is the credential
        assert done.status is Status.VERIFIED
        with pytest.raises(TokenRejected) as used:
            hr.policy.redeem_token(token, Decision.approve())
        assert used.value.reason == "used"
        assert [g.name for g in admin.policy.groups()] == ["ops"]
        assert admin.policy.standing() == []

        report = admin.audit.verify()
        assert report.ok and report.checked == report.head_seq
        entries = admin.audit.entries(limit=1000)
        assert len(entries) == report.checked
        kinds = {e.kind for e in entries}
        assert {"policy.updated", "group.updated", "decision.refused", "token.minted"} <= kinds
        with pytest.raises(PermissionDenied):
            rv.audit.verify()
