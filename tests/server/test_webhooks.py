"""Webhooks: Standard Webhooks signatures, the task events, the outbox written in the change's
own transaction, retries on the schedule (driven with a manual clock, no sleeping), every
attempt logged, 410 disabling the endpoint, and the SSRF guard at registration and at
delivery. The receiver is a small HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from handrail import Role
from handrail.clock import ManualClock
from handrail_server.tables import webhook_outbox
from handrail_server.webhooks import _outbox
from tests.server.conftest import Server, make_settings, review, running

SAFETY = 20.0


class _Server(ThreadingHTTPServer):
    # deliveries go out all at once: the default backlog of 5 refuses some of them
    request_queue_size = 128


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records what it gets and answers as scripted
    (``replies``: (status, headers) taken in order; 204 once they run out)."""

    replies: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    got: queue.Queue[Received] = field(default_factory=queue.Queue)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver.replies.pop(0) if receiver.replies else (204, {})
                # recorded before the answer: once the sender has its answer, it is here
                receiver.got.put(Received(self.path, headers, body))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    async def next(self, timeout: float = SAFETY) -> Received:
        return await asyncio.to_thread(self.got.get, timeout=timeout)

    def pending(self) -> list[Received]:
        found = []
        while not self.got.empty():
            found.append(self.got.get_nowait())
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def clock() -> ManualClock:
    """Real time when the test starts (signatures are checked against the wall clock), then
    moved only by hand."""
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def manual(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Server]:
    """A server without background jobs: the test drives deliveries itself."""
    async with running(make_settings(tmp_path, run_background=False), clock) as server:
        yield server


async def _endpoint(server: Server, url: str, **more: Any) -> dict[str, Any]:
    made = await server.client.post(
        "/v1/webhooks", json={"url": url, **more}, headers=server.a.admin
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def _post(server: Server, **more: Any) -> dict[str, Any]:
    created = await server.client.post("/v1/tasks", json=review(**more), headers=server.a.requester)
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def _outbox_rows(server: Server) -> list[tuple[str, str]]:
    query = select(webhook_outbox.c.event_type, webhook_outbox.c.state).order_by(
        webhook_outbox.c.created_at, webhook_outbox.c.id
    )
    rows = await server.hub.store.run(lambda c: c.execute(query).all(), readonly=True)
    return [(r.event_type, r.state) for r in rows]


async def _log(server: Server, endpoint_id: str) -> dict[str, Any]:
    answer = await server.client.get(
        f"/v1/webhooks/{endpoint_id}/deliveries", headers=server.a.admin
    )
    assert answer.status_code == 200
    log: dict[str, Any] = answer.json()
    return log


def verify(secret: str, received: Received) -> Any:
    return Webhook(secret).verify(received.body, received.headers)


# ---------------------------------------------------------------- signatures


async def test_deliveries_are_signed_with_standard_webhooks(
    server: Server, receiver: Receiver
) -> None:
    endpoint = await _endpoint(server, receiver.url)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    task = await _post(server)
    got = await receiver.next()  # the background worker delivers at once
    assert got.path == "/hooks"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "handrail-webhooks/1"
    assert got.headers["webhook-signature"].startswith("v1,")
    payload = verify(secret, got)
    assert payload["type"] == "task.posted"
    assert payload["data"]["id"] == task["id"]
    assert "request_fingerprint" not in payload["data"] and "version" not in payload["data"]
    # a tampered body, another secret or a replayed old timestamp fails verification
    tampered = Received(got.path, got.headers, got.body.replace(b"posted", b"verified"))
    with pytest.raises(WebhookVerificationError):
        verify(secret, tampered)
    other = await _endpoint(server, receiver.url + "?other")
    with pytest.raises(WebhookVerificationError):
        verify(other["secret"], got)
    stale = Received(got.path, {**got.headers, "webhook-timestamp": "1000000000"}, got.body)
    with pytest.raises(WebhookVerificationError):
        verify(secret, stale)


async def test_a_test_event(server: Server, receiver: Receiver) -> None:
    c, a = server.client, server.a
    first = await _endpoint(server, receiver.url + "?first")
    second = await _endpoint(server, receiver.url + "?second")
    sent = await c.post("/v1/webhooks/test", json={"endpoint_id": second["id"]}, headers=a.admin)
    assert sent.status_code == 202 and sent.json() == {"queued": 1}
    got = await receiver.next()
    assert got.path == "/hooks?second"
    payload = verify(second["secret"], got)
    assert payload["type"] == "webhook.test" and payload["data"]["org_id"] == "acme"
    everyone = await c.post("/v1/webhooks/test", headers=a.admin)
    assert everyone.json() == {"queued": 2}
    paths = sorted([(await receiver.next()).path, (await receiver.next()).path])
    assert paths == ["/hooks?first", "/hooks?second"]
    assert first["id"] != second["id"]
    assert (await c.post("/v1/webhooks/test", headers=a.requester)).status_code == 403


# ---------------------------------------------------------------- events


async def test_every_task_event_is_sent(
    manual: Server, receiver: Receiver, clock: ManualClock
) -> None:
    c, a = manual.client, manual.a
    endpoint = await _endpoint(manual, receiver.url)
    bob = await manual.key("acme", Role.REVIEWER, principal="bob")
    # posted, assigned, submitted, verified, disputed
    first = await _post(manual)
    await c.post(f"/v1/tasks/{first['id']}/claim", headers=a.reviewer)
    await c.post(f"/v1/tasks/{first['id']}/decision", json={"type": "approve"}, headers=a.reviewer)
    await c.post(f"/v1/tasks/{first['id']}/dispute", json={"reason": "hm"}, headers=a.requester)
    # cancelled
    second = await _post(manual)
    await c.post(f"/v1/tasks/{second['id']}/cancel", headers=a.requester)
    # manual_review, failed
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    spec = {"kind": "judgment", "output_schema": schema, "redundancy": 2, "max_answers": 2}
    third = (await c.post("/v1/tasks", json=spec, headers=a.requester)).json()
    for headers, n in ((a.reviewer, 1), (bob, 2)):
        await c.post(
            f"/v1/tasks/{third['id']}/submissions", json={"output": {"n": n}}, headers=headers
        )
    await c.post(f"/v1/tasks/{third['id']}/fail", json={"reason": "no"}, headers=a.admin)
    # expired
    fourth = await _post(manual, sla_seconds=30)
    clock.advance(31)
    await manual.hub.engine.expire_due()

    expected = [
        ("task.posted", first),
        ("task.assigned", first),
        ("task.submitted", first),
        ("task.verified", first),
        ("task.disputed", first),
        ("task.posted", second),
        ("task.cancelled", second),
        ("task.posted", third),
        ("task.assigned", third),
        ("task.submitted", third),
        ("task.manual_review", third),
        ("task.failed", third),
        ("task.posted", fourth),
        ("task.expired", fourth),
    ]
    while await manual.hub.delivery.deliver_due():
        pass
    got = [verify(endpoint["secret"], r) for r in receiver.pending()]
    seen = sorted((p["type"], p["data"]["id"]) for p in got)
    assert seen == sorted((kind, task["id"]) for kind, task in expected)
    assert {p["type"] for p in got} == {
        "task.posted",
        "task.assigned",
        "task.submitted",
        "task.manual_review",
        "task.verified",
        "task.failed",
        "task.expired",
        "task.cancelled",
        "task.disputed",
    }
    states = {p["data"]["status"] for p in got if p["type"] == "task.expired"}
    assert states == {"expired"}
    log = await _log(manual, endpoint["id"])
    assert len(log["events"]) == len(expected)
    assert {e["state"] for e in log["events"]} == {"delivered"}
    assert len(log["attempts"]) == len(expected)
    assert all(x["status_code"] == 204 and x["error"] is None for x in log["attempts"])


async def test_an_endpoint_gets_only_the_events_it_wants(
    manual: Server, receiver: Receiver
) -> None:
    c, a = manual.client, manual.a
    await _endpoint(manual, receiver.url, events=["task.verified", "task.cancelled"])
    first = await _post(manual)
    await c.post(f"/v1/tasks/{first['id']}/decision", json={"type": "approve"}, headers=a.reviewer)
    second = await _post(manual)
    await c.post(f"/v1/tasks/{second['id']}/cancel", headers=a.requester)
    assert await _outbox_rows(manual) == [
        ("task.verified", "pending"),
        ("task.cancelled", "pending"),
    ]
    bad = await c.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["task.exploded"]}, headers=a.admin
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.events"


async def test_another_organisations_changes_are_never_sent(
    manual: Server, receiver: Receiver
) -> None:
    await _endpoint(manual, receiver.url)
    made = await manual.client.post("/v1/tasks", json=review(), headers=manual.b.requester)
    assert made.status_code == 201
    assert await _outbox_rows(manual) == []


# ---------------------------------------------------------------- the outbox


async def test_a_refused_change_writes_no_outbox_row(manual: Server, receiver: Receiver) -> None:
    c, a = manual.client, manual.a
    await _endpoint(manual, receiver.url)
    broke = await c.post(
        "/v1/tasks", json=review(payout={"currency": "USD", "amount": "1.00"}), headers=a.requester
    )
    assert broke.status_code == 402
    assert await _outbox_rows(manual) == []
    task = await _post(manual, allowed_decisions=["approve", "reject"])
    assert await _outbox_rows(manual) == [("task.posted", "pending")]
    refused = await c.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "modify", "args": {}},
        headers=a.reviewer,
    )
    assert refused.status_code == 422
    await c.post(f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=a.reviewer)
    before = await _outbox_rows(manual)
    late = await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    assert late.status_code == 409
    assert await _outbox_rows(manual) == before
    assert [kind for kind, _ in before] == [
        "task.posted",
        "task.assigned",
        "task.submitted",
        "task.verified",
    ]


async def test_the_change_and_its_outbox_row_commit_together(
    manual: Server, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the outbox row cannot be written, the change itself is undone."""
    import httpx  # noqa: PLC0415

    await _endpoint(manual, receiver.url)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the outbox is full")

    monkeypatch.setattr(_outbox, "queue_event", broken)
    transport = httpx.ASGITransport(app=manual.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as c:
        failed = await c.post("/v1/tasks", json=review(), headers=manual.a.requester)
    assert failed.status_code == 500
    assert (await manual.client.get("/v1/tasks", headers=manual.a.requester)).json()["data"] == []
    assert await _outbox_rows(manual) == []


# ---------------------------------------------------------------- retries


async def test_failures_retry_on_the_schedule_and_every_attempt_is_logged(
    manual: Server, receiver: Receiver, clock: ManualClock
) -> None:
    endpoint = await _endpoint(manual, receiver.url)
    receiver.replies = [(500, {}), (503, {"Retry-After": "3600"}), (200, {})]
    deliver = manual.hub.delivery.deliver_due
    await _post(manual)
    assert await deliver() == 1
    first = await receiver.next()
    assert await deliver() == 0  # not due again yet
    clock.advance(4.4)  # the first retry comes after 5 s (± 10%)
    assert await deliver() == 0
    clock.advance(1.2)
    assert await deliver() == 1
    second = await receiver.next()
    clock.advance(400)  # past the schedule's 5 minutes, but the receiver asked for an hour
    assert await deliver() == 0
    clock.advance(3600 - 400)
    assert await deliver() == 1
    third = await receiver.next()
    assert await deliver() == 0
    # one event, one webhook-id, three attempts
    ids = {r.headers["webhook-id"] for r in (first, second, third)}
    assert len(ids) == 1
    assert first.body == second.body == third.body
    # each attempt signed at its own time
    stamps = [int(r.headers["webhook-timestamp"]) for r in (first, second, third)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    for r in (first, second, third):
        signature = Webhook(endpoint["secret"]).sign(
            r.headers["webhook-id"],
            datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC),
            r.body.decode(),
        )
        assert r.headers["webhook-signature"] == signature
    log = await _log(manual, endpoint["id"])
    (event,) = log["events"]
    assert (event["type"], event["state"], event["attempts"]) == ("task.posted", "delivered", 3)
    assert event["last_error"] is None
    for stamp in (event["created_at"], event["delivered_at"], *(x["at"] for x in log["attempts"])):
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp
    assert [(x["attempt"], x["status_code"]) for x in log["attempts"]] == [
        (3, 200),
        (2, 503),
        (1, 500),
    ]
    assert [x["error"] for x in log["attempts"]] == [None, "HTTP 503", "HTTP 500"]
    assert all(x["duration_ms"] >= 0 for x in log["attempts"])


async def test_delivery_gives_up_after_the_last_retry(
    manual: Server, receiver: Receiver, clock: ManualClock
) -> None:
    endpoint = await _endpoint(manual, receiver.url)
    receiver.replies = [(500, {})] * 20
    await _post(manual)
    attempts = 0
    for _ in range(20):
        attempts += await manual.hub.delivery.deliver_due()
        clock.advance(days=1.2)
    assert attempts == 10  # the first try and nine retries
    log = await _log(manual, endpoint["id"])
    assert log["events"][0]["state"] == "dead" and log["events"][0]["attempts"] == 10
    assert len(log["attempts"]) == 10
    assert len(receiver.pending()) == 10
    # the endpoint itself stays enabled: only 410 turns it off
    again = await manual.client.get(f"/v1/webhooks/{endpoint['id']}", headers=manual.a.admin)
    assert again.json()["enabled"] is True


async def test_a_410_disables_the_endpoint(manual: Server, receiver: Receiver) -> None:
    c, a = manual.client, manual.a
    endpoint = await _endpoint(manual, receiver.url)
    receiver.replies = [(410, {})]
    await _post(manual)
    assert await manual.hub.delivery.deliver_due() == 1
    gone = (await c.get(f"/v1/webhooks/{endpoint['id']}", headers=a.admin)).json()
    assert gone["enabled"] is False
    log = await _log(manual, endpoint["id"])
    assert log["events"][0]["state"] == "dead"
    assert log["attempts"][0]["status_code"] == 410
    await _post(manual)  # nothing more is queued for it
    assert await _outbox_rows(manual) == [("task.posted", "dead")]
    assert await manual.hub.delivery.deliver_due() == 0


# ---------------------------------------------------------------- the SSRF guard


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://0x7f.1/hook",
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "http://user:secret@93.184.216.34/hook",
        "http:///no-host",
        "http://93.184.216.34:99999/hook",
    ],
)
async def test_private_and_odd_targets_are_refused(tmp_path: Path, url: str) -> None:
    strict = make_settings(tmp_path, allow_private_webhooks=False, run_background=False)
    async with running(strict) as server:
        refused = await server.client.post(
            "/v1/webhooks", json={"url": url}, headers=server.a.admin
        )
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] in ("unsafe_webhook_url", "validation_error")
        assert body["errors"][0]["path"] == "$.url"
        assert (await server.client.get("/v1/webhooks", headers=server.a.admin)).json() == []


async def test_a_public_target_is_accepted_and_a_private_patch_refused(tmp_path: Path) -> None:
    strict = make_settings(tmp_path, allow_private_webhooks=False, run_background=False)
    async with running(strict) as server:
        c, a = server.client, server.a
        # a public address literal (nothing resolves or connects: it is never enabled)
        made = await c.post(
            "/v1/webhooks",
            json={"url": "https://93.184.216.34/hook", "enabled": False},
            headers=a.admin,
        )
        assert made.status_code == 201, made.text
        patched = await c.patch(
            f"/v1/webhooks/{made.json()['id']}", json={"url": "http://127.0.0.1/x"}, headers=a.admin
        )
        assert patched.status_code == 422 and patched.json()["code"] == "unsafe_webhook_url"
        kept = await c.get(f"/v1/webhooks/{made.json()['id']}", headers=a.admin)
        assert kept.json()["url"] == "https://93.184.216.34/hook"


async def test_the_guard_is_checked_again_at_delivery(manual: Server, receiver: Receiver) -> None:
    endpoint = await _endpoint(manual, receiver.url)  # allowed when registered
    manual.hub.settings.allow_private_webhooks = False  # (as if the name now resolved inside)
    await _post(manual)
    assert await manual.hub.delivery.deliver_due() == 1
    assert receiver.pending() == []  # nothing was sent
    log = await _log(manual, endpoint["id"])
    (attempt,) = log["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("UnsafeTarget") and "127.0.0.1" in attempt["error"]
    assert log["events"][0]["state"] == "pending"  # retried later, refused again then


async def test_a_deleted_endpoint_stops_receiving(manual: Server, receiver: Receiver) -> None:
    c, a = manual.client, manual.a
    endpoint = await _endpoint(manual, receiver.url)
    await _post(manual)  # queued while it was enabled
    assert (await c.delete(f"/v1/webhooks/{endpoint['id']}", headers=a.admin)).status_code == 204
    assert await manual.hub.delivery.deliver_due() == 1
    assert receiver.pending() == []
    log = await _log(manual, endpoint["id"])
    assert log["events"][0]["state"] == "dead"
    assert "disabled" in log["attempts"][0]["error"]
    await _post(manual)
    assert len(await _outbox_rows(manual)) == 1


async def test_outbox_counts_match_the_log(manual: Server, receiver: Receiver) -> None:
    endpoint = await _endpoint(manual, receiver.url)
    for _ in range(3):
        await _post(manual)
    query = select(func.count()).select_from(webhook_outbox)
    count = await manual.hub.store.run(lambda conn: conn.execute(query).scalar_one())
    assert count == 3
    log = await _log(manual, endpoint["id"])
    assert [e["state"] for e in log["events"]] == ["pending"] * 3
    limited = await manual.client.get(
        f"/v1/webhooks/{endpoint['id']}/deliveries?limit=1", headers=manual.a.admin
    )
    assert len(limited.json()["events"]) == 1
