"""Notifications: email through a local SMTP server (aiosmtpd) with Approve / Reject links
(a GET changes nothing, a POST decides once; used, late or for another task, nothing),
Slack messages to a local HTTP receiver (Block Kit with buttons), signed Slack
interactions built here (a good signature decides as the mapped reviewer; a bad or stale
one, an unknown user or one the policy does not allow change nothing), escalation and the
SLA warning with a manual clock, manual review, retries with every attempt logged, and
the outbox surviving a restart. The admin API: channels (secrets never shown back, the
SSRF guard), contacts, tenants walled off."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from handrail import Role
from handrail.clock import ManualClock
from handrail.sla import SlaScheduler
from handrail_server.keys import list_keys, revoke_key
from handrail_server.notifications import _queue, slack_sign
from handrail_server.settings import Settings
from handrail_server.tables import notify_outbox
from tests.postgres import fresh_database
from tests.server.conftest import Server, make_settings, running
from tests.server.test_webhooks import Receiver

SAFETY = 20.0
SECRET = "8f14e45fceea167a5a36dedd4bea2543"
BASE = "http://handrail.test"
RULES: list[dict[str, Any]] = [
    {"id": "pay", "tools": ["pay"], "outcome": "ask", "reviewers": ["support"],
     "escalate_to": ["leads"], "escalate_after_seconds": 60},
]  # fmt: skip


# ---------------------------------------------------------------- a local SMTP server


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


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
    return ManualClock(datetime.now(UTC))


def notify_settings(tmp_path: Path, port: int, **more: Any) -> Settings:
    return make_settings(
        tmp_path,
        run_background=False,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        public_url=BASE,
        decision_token_secret=SECRET,
        **more,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notify.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_database(url, "handrail_notify") as made:
        yield made


@pytest.fixture
async def server(
    tmp_path: Path, smtp: tuple[Mailbox, int], clock: ManualClock, database: str
) -> AsyncIterator[Server]:
    """A server without background jobs (the test sends what is due), one policy rule, and
    reviewers alice (support), bob (leads) and eve (no group) with addresses."""
    settings = notify_settings(tmp_path, smtp[1], database_url=database)
    async with running(settings, clock) as started:
        await setup_org(started)
        yield started


async def setup_org(server: Server) -> None:
    c, admin = server.client, server.a.admin
    assert (await c.put("/v1/policy", json={"rules": RULES}, headers=admin)).status_code == 200
    for group, members in (("support", ["alice"]), ("leads", ["bob"])):
        made = await c.put(f"/v1/reviewer-groups/{group}", json={"members": members}, headers=admin)
        assert made.status_code == 200, made.text
    for name, slack in (("alice", "UALICE"), ("bob", "UBOB"), ("eve", "UEVE")):
        await server.key("acme", Role.REVIEWER, principal=name)  # the key they decide with
        await contact(server, name, email=f"{name}@example.com", slack_user_id=slack)
    # the requester has an address too: it is never told of its own reviews
    await contact(server, "acme-agent", email="agent@example.com")
    made = await c.post(
        "/v1/notifications/channels", json={"kind": "email", "name": "mail"}, headers=admin
    )
    assert made.status_code == 201, made.text


async def contact(server: Server, reviewer: str, **fields: Any) -> dict[str, Any]:
    answer = await server.client.put(
        f"/v1/notifications/contacts/{reviewer}", json=fields, headers=server.a.admin
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def post_pay(server: Server, **more: Any) -> dict[str, Any]:
    spec = {"kind": "review", "action": {"name": "pay", "args": {"amount": 5}}, **more}
    made = await server.client.post("/v1/tasks", json=spec, headers=server.a.requester)
    assert made.status_code == 201, made.text
    task: dict[str, Any] = made.json()
    return task


async def send_all(server: Server) -> None:
    while await server.hub.notifications.deliver_due():
        pass


async def task_of(server: Server, task_id: str) -> dict[str, Any]:
    got = await server.client.get(f"/v1/tasks/{task_id}", headers=server.a.admin)
    body: dict[str, Any] = got.json()
    return body


def links(message: EmailMessage) -> dict[str, str]:
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    found = dict(re.findall(r"^(Approve|Reject): (\S+)$", text, re.M))
    return {"approve": found["Approve"], "reject": found["Reject"]}


def local(url: str) -> str:
    assert url.startswith(BASE + "/")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def form_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


# ---------------------------------------------------------------- email


async def test_an_email_link_confirms_on_get_and_decides_once_on_post(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    box = smtp[0]
    task = await post_pay(server)
    await send_all(server)
    assert [m["To"] for m in box.messages] == ["alice@example.com"]  # support only, no requester
    message = box.messages[0]
    assert message["Subject"] == "[Handrail] Review needed: Approve pay"
    html = message.get_body(("html",))
    assert html is not None and "Approve…" in html.get_content()
    url = links(message)

    for _ in range(2):  # a mail scanner fetching the link changes nothing
        page = await server.client.get(local(url["approve"]))
        assert page.status_code == 200, page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
        (sheet,) = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)
        styled = await server.client.get(sheet)  # the web UI's own stylesheet, served
        assert styled.status_code == 200 and "text/css" in styled.headers["content-type"]
        assert "You decide as <strong>alice</strong>" in page.text
    assert (await task_of(server, task["id"]))["status"] == "posted"

    fields = form_of(page.text)
    assert fields["choice"] == "approve"
    done = await server.client.post(f"/decide/{task['id']}", data=fields)
    assert done.status_code == 200, done.text
    assert "Approved" in done.text
    after = await task_of(server, task["id"])
    assert after["status"] == "verified"
    assert after["output"]["reviewer_id"] == "alice"

    again = await server.client.post(f"/decide/{task['id']}", data=fields)
    assert again.status_code == 409 and "used already" in again.text
    reject = await server.client.get(local(url["reject"]))
    assert reject.status_code == 409 and "used already" in reject.text
    assert await task_of(server, task["id"]) == after


async def test_a_reject_link_asks_for_a_reason(server: Server, smtp: tuple[Mailbox, int]) -> None:
    task = await post_pay(server)
    await send_all(server)
    page = await server.client.get(local(links(smtp[0].messages[0])["reject"]))
    assert page.status_code == 200 and 'name="reason"' in page.text
    fields = form_of(page.text)
    empty = await server.client.post(f"/decide/{task['id']}", data={**fields, "reason": " "})
    assert empty.status_code == 422 and "Say why" in empty.text
    assert (await task_of(server, task["id"]))["status"] == "posted"
    done = await server.client.post(
        f"/decide/{task['id']}", data={**fields, "reason": "wrong payee"}
    )
    assert done.status_code == 200 and "Rejected" in done.text
    output = (await task_of(server, task["id"]))["output"]
    assert (output["type"], output["message"], output["reviewer_id"]) == (
        "reject",
        "wrong payee",
        "alice",
    )


async def test_a_late_link_changes_nothing(
    server: Server, smtp: tuple[Mailbox, int], clock: ManualClock
) -> None:
    task = await post_pay(server, sla_seconds=600)
    await send_all(server)
    url = links(smtp[0].messages[0])
    fields = form_of((await server.client.get(local(url["approve"]))).text)
    clock.advance(601)  # the link lives no longer than the task
    page = await server.client.get(local(url["approve"]))
    assert page.status_code == 410 and "expired" in page.text
    late = await server.client.post(f"/decide/{task['id']}", data=fields)
    assert late.status_code == 410 and "expired" in late.text
    assert (await task_of(server, task["id"]))["output"] is None


async def test_a_link_for_another_task_changes_nothing(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    first = await post_pay(server)
    second = await post_pay(server)
    await send_all(server)
    assert len(smtp[0].messages) == 2
    url = links(smtp[0].messages[0])
    token = dict(p.split("=", 1) for p in urlsplit(url["approve"]).query.split("&"))["token"]
    mine = first["id"] if first["id"] in url["approve"] else second["id"]
    other = second["id"] if mine == first["id"] else first["id"]
    page = await server.client.get(f"/decide/{other}?token={token}&choice=approve")
    assert page.status_code == 403 and "another task" in page.text
    wrong = await server.client.post(
        f"/decide/{other}", data={"token": token, "choice": "approve", "reason": ""}
    )
    assert wrong.status_code == 403 and "another task" in wrong.text
    forged = await server.client.post(
        f"/decide/{mine}", data={"token": token[:-2] + "xx", "choice": "approve"}
    )
    assert forged.status_code == 403 and "not valid" in forged.text
    for task_id in (first["id"], second["id"]):
        assert (await task_of(server, task_id))["status"] == "posted"


async def test_a_task_decided_meanwhile_sends_nothing(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    task = await post_pay(server)
    alice = await server.key("acme", Role.REVIEWER, principal="alice")
    decided = await server.client.post(
        f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=alice
    )
    assert decided.status_code == 200
    await send_all(server)
    assert smtp[0].messages == []
    log = (await server.client.get("/v1/notifications/deliveries", headers=server.a.admin)).json()
    assert [(r["state"], r["last_error"]) for r in log["data"]] == [
        ("skipped", "the task is verified now, past waiting")
    ]


async def test_who_hears_of_a_review_follows_its_policy(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    c, admin = server.client, server.a.admin
    rules = [{"id": "ping", "tools": ["ping"], "outcome": "allow"}, *RULES]
    assert (await c.put("/v1/policy", json={"rules": rules}, headers=admin)).status_code == 200
    allowed = await c.post(
        "/v1/tasks",
        json={"kind": "review", "action": {"name": "ping", "args": {}}},
        headers=server.a.requester,
    )
    assert allowed.json()["status"] == "verified"  # decided at once: nobody is told
    anyone = await c.post(
        "/v1/tasks",
        json={"kind": "review", "action": {"name": "other", "args": {}}},
        headers=server.a.requester,
    )
    assert anyone.status_code == 201
    await send_all(server)
    # no rule names groups for "other": every contact but its requester
    assert sorted(m["To"] for m in smtp[0].messages) == [
        "alice@example.com",
        "bob@example.com",
        "eve@example.com",
    ]
    log = (await c.get("/v1/notifications/deliveries", headers=admin)).json()
    assert {r["task_id"] for r in log["data"]} == {anyone.json()["id"]}


# ---------------------------------------------------------------- escalation, SLA, manual


async def test_escalation_notifies_the_next_group_whose_link_then_decides(
    server: Server, smtp: tuple[Mailbox, int], clock: ManualClock
) -> None:
    box = smtp[0]
    task = await post_pay(server, sla_seconds=3600)
    await send_all(server)
    assert [m["To"] for m in box.messages] == ["alice@example.com"]
    sla = SlaScheduler(server.hub.engine)
    clock.advance(59)
    await sla.tick()
    await send_all(server)
    assert len(box.messages) == 1
    clock.advance(1)
    assert [t.id for t in (await sla.tick()).escalated] == [task["id"]]
    await send_all(server)
    assert [m["To"] for m in box.messages[1:]] == ["bob@example.com"]
    escalated = box.messages[1]
    assert escalated["Subject"].startswith("[Handrail] Escalated to you")
    body = escalated.get_body(("plain",))
    assert body is not None and "members of leads may decide it now" in body.get_content()
    page = await server.client.get(local(links(escalated)["approve"]))
    done = await server.client.post(f"/decide/{task['id']}", data=form_of(page.text))
    assert done.status_code == 200, done.text
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]["reviewer_id"]) == ("verified", "bob")
    history = await server.client.get(f"/v1/tasks/{task['id']}/history", headers=server.a.admin)
    assert "widen" in [e["event"] for e in history.json()["data"]]


async def test_eighty_percent_of_the_sla_warns_who_may_take_it(
    server: Server, smtp: tuple[Mailbox, int], clock: ManualClock
) -> None:
    box = smtp[0]
    task = await post_pay(server, sla_seconds=50)  # before the escalation at 60s
    await send_all(server)
    clock.advance(40)
    report = await SlaScheduler(server.hub.engine).tick()
    assert [t.id for t in report.backups] == [task["id"]]
    await send_all(server)
    subjects = [(m["To"], m["Subject"]) for m in box.messages]
    assert subjects == [
        ("alice@example.com", "[Handrail] Review needed: Approve pay"),
        ("alice@example.com", "[Handrail] Running out of time: Approve pay"),
    ]
    assert links(box.messages[1])["approve"] != links(box.messages[0])["approve"]


async def test_manual_review_notifies_the_admins(server: Server, smtp: tuple[Mailbox, int]) -> None:
    c, a = server.client, server.a
    await contact(server, "acme-admin", email="admin@example.com")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    spec = {"kind": "judgment", "output_schema": schema, "redundancy": 2, "max_answers": 2}
    task = (await c.post("/v1/tasks", json=spec, headers=a.requester)).json()
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    for headers, n in ((a.reviewer, 1), (bob, 2)):
        sent = await c.post(
            f"/v1/tasks/{task['id']}/submissions", json={"output": {"n": n}}, headers=headers
        )
        assert sent.status_code == 200, sent.text
    assert (await task_of(server, task["id"]))["status"] == "manual_review"
    await send_all(server)
    manual = [m for m in smtp[0].messages if "Manual review" in m["Subject"]]
    assert [m["To"] for m in manual] == ["admin@example.com"]
    body = manual[0].get_body(("plain",))
    assert body is not None and "Approve:" not in body.get_content()


# ---------------------------------------------------------------- durability, retries


async def test_a_notification_written_with_its_task_survives_a_restart(
    tmp_path: Path, smtp: tuple[Mailbox, int], clock: ManualClock, database: str
) -> None:
    settings = notify_settings(tmp_path, smtp[1], database_url=database)
    async with running(settings, clock) as first:
        await setup_org(first)
        task = await post_pay(first)
        rows = await first.hub.store.run(
            lambda c: c.execute(select(notify_outbox.c.task_id, notify_outbox.c.state)).all(),
            readonly=True,
        )
        assert [(r.task_id, r.state) for r in rows] == [(task["id"], "pending")]
    assert smtp[0].messages == []  # the process stopped before sending anything
    async with running(settings, clock) as second:
        await send_all(second)
        assert [m["To"] for m in smtp[0].messages] == ["alice@example.com"]
        page = await second.client.get(local(links(smtp[0].messages[0])["approve"]))
        assert page.status_code == 200  # the token secret is the server's, not the process's


async def test_the_task_and_its_notifications_commit_together(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the notification rows cannot be written, the task is not created either."""

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the outbox is full")

    monkeypatch.setattr(_queue, "queue_notifications", broken)
    transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
    spec = {"kind": "review", "action": {"name": "pay", "args": {"amount": 5}}}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        failed = await c.post("/v1/tasks", json=spec, headers=server.a.requester)
    assert failed.status_code == 500
    listed = await server.client.get("/v1/tasks", headers=server.a.requester)
    assert listed.json()["data"] == []
    rows = await server.hub.store.run(
        lambda c: c.execute(select(notify_outbox.c.id)).all(), readonly=True
    )
    assert rows == []


async def test_a_failed_send_is_retried_and_every_attempt_logged(
    tmp_path: Path, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.replies = [(500, {})]
    settings = make_settings(tmp_path, run_background=False, public_url=BASE)
    async with running(settings, clock) as server:
        c, admin = server.client, server.a.admin
        made = await c.post(
            "/v1/notifications/channels",
            json={"kind": "slack", "name": "ops", "webhook_url": receiver.url},
            headers=admin,
        )
        assert made.status_code == 201, made.text
        task = await post_pay(server)
        await send_all(server)
        await receiver.next()
        clock.advance(4)
        await send_all(server)
        assert receiver.pending() == []  # not yet: the retry is ~5 s later
        clock.advance(2)
        await send_all(server)
        await receiver.next()
        log = await c.get(f"/v1/notifications/deliveries?task_id={task['id']}", headers=admin)
        body = log.json()
        assert [r["state"] for r in body["data"]] == ["delivered"]
        assert sorted(
            (a["attempt"], a["ok"], a["error"] and a["error"][:8]) for a in body["attempts"]
        ) == [
            (1, False, "HTTP 500"),
            (2, True, None),
        ]


# ---------------------------------------------------------------- Slack


@pytest.fixture
async def slack(
    tmp_path: Path, smtp: tuple[Mailbox, int], clock: ManualClock, receiver: Receiver
) -> AsyncIterator[tuple[Server, dict[str, Any]]]:
    settings = notify_settings(tmp_path, smtp[1])
    async with running(settings, clock) as server:
        await setup_org(server)
        made = await server.client.post(
            "/v1/notifications/channels",
            json={
                "kind": "slack",
                "name": "reviews",
                "webhook_url": receiver.url + "/T000/B000/XXXXsecretXXXX",
                "signing_secret": "slack-signing-secret",
                "events": ["task.new"],
            },
            headers=server.a.admin,
        )
        assert made.status_code == 201, made.text
        yield server, made.json()


def signed(
    payload: dict[str, Any], secret: str = "slack-signing-secret", at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(at if at is not None else time.time()))
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": slack_sign(secret, stamp, body),
    }


def click(user: str, task_id: str, action: str, response_url: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "actions": [{"action_id": action, "value": task_id, "type": "button"}],
        "response_url": response_url,
    }


async def test_a_slack_message_carries_block_kit_buttons(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver
) -> None:
    server, channel = slack
    assert channel["webhook_url"] == "http://127.0.0.1/…XXXX"  # a secret: masked
    assert "signing_secret" not in channel and channel["has_signing_secret"] is True
    assert channel["interactions_url"] == f"{BASE}/integrations/slack/{channel['id']}/interactions"
    task = await post_pay(server)
    await send_all(server)
    got = await receiver.next()
    assert got.path.endswith("/T000/B000/XXXXsecretXXXX")
    message = got.json
    assert message["text"] == "Review needed: Approve pay"
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert "<@UALICE>" in sections[0] and "<@UBOB>" not in sections[0]
    assert '"amount": 5' in sections[1]
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    assert [(e["action_id"], e["value"], e["style"]) for e in actions["elements"]] == [
        ("handrail_approve", task["id"], "primary"),
        ("handrail_reject", task["id"], "danger"),
    ]
    assert "confirm" in actions["elements"][1]


async def test_a_signed_click_decides_as_the_mapped_reviewer(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver
) -> None:
    server, channel = slack
    task = await post_pay(server)
    url = f"/integrations/slack/{channel['id']}/interactions"
    body, headers = signed(click("UALICE", task["id"], "handrail_approve", receiver.url))
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["replace_original"] is True
    assert answer.json()["text"].startswith("Approved by alice (<@UALICE> clicked)")
    update = await receiver.next()
    assert update.json == answer.json()
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]["reviewer_id"]) == ("verified", "alice")
    # a replay of the same click (within the window) is harmless
    replay = await server.client.post(url, content=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["text"].startswith("Approved by alice")
    assert await task_of(server, task["id"]) == after


@pytest.mark.parametrize("case", ["bad signature", "other secret", "stale", "no headers"])
async def test_a_click_without_a_good_signature_is_refused(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver, clock: ManualClock, case: str
) -> None:
    server, channel = slack
    task = await post_pay(server)
    body, headers = signed(click("UALICE", task["id"], "handrail_approve", receiver.url))
    if case == "bad signature":
        headers["x-slack-signature"] = "v0=" + "0" * 64
    elif case == "other secret":
        body, headers = signed(
            click("UALICE", task["id"], "handrail_approve", receiver.url), "x" * 20
        )
    elif case == "stale":
        body, headers = signed(
            click("UALICE", task["id"], "handrail_approve", receiver.url),
            at=clock.now().timestamp() - 301,
        )
    else:
        headers = {"content-type": headers["content-type"]}
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 401
    assert (await task_of(server, task["id"]))["status"] == "posted"
    # and a body changed after signing
    body2, headers2 = signed(click("UALICE", task["id"], "handrail_reject", receiver.url))
    tampered = body2.replace(b"handrail_reject", b"handrail_approve")
    assert (await server.client.post(url, content=tampered, headers=headers2)).status_code == 401
    assert (await task_of(server, task["id"]))["status"] == "posted"
    await asyncio.sleep(0)
    assert receiver.pending() == []


@pytest.mark.parametrize(
    ("user", "why"),
    [("UNOBODY", "not linked to a Handrail reviewer"), ("UEVE", "you may not decide it")],
)
async def test_a_click_by_someone_the_policy_does_not_allow_changes_nothing(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver, user: str, why: str
) -> None:
    server, channel = slack
    task = await post_pay(server)
    body, headers = signed(click(user, task["id"], "handrail_approve", receiver.url))
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["replace_original"] is False and reply["response_type"] == "ephemeral"
    assert why in reply["text"] and reply["text"].startswith("Nothing was decided")
    assert (await receiver.next()).json == reply
    assert (await task_of(server, task["id"]))["status"] == "posted"
    if user == "UEVE":  # the engine refused eve, and recorded it
        audit = (await server.client.get("/v1/audit", headers=server.a.admin)).json()["data"]
        refused = [e for e in audit if e["kind"] == "decision.refused"]
        assert [(e["actor"], e["task_id"]) for e in refused] == [("eve", task["id"])]


async def test_a_click_on_another_organisations_channel_decides_nothing_there(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver
) -> None:
    server, channel = slack
    theirs = await server.client.post(
        "/v1/tasks",
        json={"kind": "review", "action": {"name": "pay", "args": {}}},
        headers=server.b.requester,
    )
    body, headers = signed(click("UALICE", theirs.json()["id"], "handrail_approve", receiver.url))
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 200 and "not found" in answer.json()["text"]
    got = await server.client.get(f"/v1/tasks/{theirs.json()['id']}", headers=server.b.admin)
    assert got.json()["status"] == "posted"


# ---------------------------------------------------------------- the admin API


async def test_channels_and_contacts_are_admin_only_and_walled_off(
    slack: tuple[Server, dict[str, Any]],
) -> None:
    server, channel = slack
    c, a, b = server.client, server.a, server.b
    assert (await c.get("/v1/notifications/channels", headers=a.reviewer)).status_code == 403
    assert (
        await c.get(f"/v1/notifications/channels/{channel['id']}", headers=b.admin)
    ).status_code == 404
    assert (await c.get("/v1/notifications/channels", headers=b.admin)).json() == []
    assert (await c.get("/v1/notifications/contacts", headers=b.admin)).json() == []
    listed = (await c.get("/v1/notifications/channels", headers=a.admin)).json()
    assert {ch["kind"] for ch in listed} == {"email", "slack"}
    assert all("XXXXsecretXXXX" not in json.dumps(ch) for ch in listed)
    taken = await c.put(
        "/v1/notifications/contacts/zed", json={"slack_user_id": "UALICE"}, headers=a.admin
    )
    assert taken.status_code == 409
    bad = await c.put("/v1/notifications/contacts/zed", json={"email": "nope"}, headers=a.admin)
    assert bad.status_code == 422
    blank = await c.put("/v1/notifications/contacts/%20zed", json={}, headers=a.admin)
    assert blank.status_code == 422
    patched = await c.patch(
        f"/v1/notifications/channels/{channel['id']}", json={"enabled": False}, headers=a.admin
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    gone = await c.delete(f"/v1/notifications/channels/{channel['id']}", headers=a.admin)
    assert gone.status_code == 204
    after = (await c.get(f"/v1/notifications/channels/{channel['id']}", headers=a.admin)).json()
    assert after["has_signing_secret"] is False


async def test_a_private_slack_url_is_refused(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, allow_private_webhooks=False)) as server:
        made = await server.client.post(
            "/v1/notifications/channels",
            json={"kind": "slack", "name": "x", "webhook_url": "http://127.0.0.1:9/hook"},
            headers=server.a.admin,
        )
        assert made.status_code == 422 and made.json()["code"] == "unsafe_webhook_url"
        mail = await server.client.post(
            "/v1/notifications/channels",
            json={"kind": "email", "name": "m"},
            headers=server.a.admin,
        )
        assert mail.status_code == 422  # no SMTP relay configured


# ---------------------------------------------------------------- bad input, refused cleanly


@pytest.mark.parametrize("token", ["hrdt_a.é", "hrdt_é.é", "hrdt_a.\u2603x"])
async def test_a_link_with_a_non_ascii_token_is_refused_not_a_crash(
    server: Server, token: str
) -> None:
    task = await post_pay(server)
    page = await server.client.get(f"/decide/{task['id']}", params={"token": token})
    assert page.status_code == 403 and "not valid" in page.text
    posted = await server.client.post(
        f"/decide/{task['id']}", data={"token": token, "choice": "approve", "reason": ""}
    )
    assert posted.status_code == 403 and "not valid" in posted.text
    rejected = await server.client.post(
        f"/decide/{task['id']}", data={"token": token, "choice": "reject", "reason": "no"}
    )
    assert rejected.status_code == 403 and "not valid" in rejected.text
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]) == ("posted", None)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-slack-signature", "v0=é"),
        ("x-slack-signature", "v0=" + "\u00e9" * 64),
        ("x-slack-request-timestamp", "9" * 400),
        ("x-slack-request-timestamp", "9" * 13),
        ("x-slack-request-timestamp", "-1"),
        ("x-slack-request-timestamp", "١٢٣"),  # Unicode digits int() would take
    ],
)
async def test_a_click_with_malformed_signature_headers_is_refused_not_a_crash(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver, header: str, value: str
) -> None:
    server, channel = slack
    task = await post_pay(server)
    body, headers = signed(click("UALICE", task["id"], "handrail_approve", receiver.url))
    sent = {**headers, header: value}
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(
        url, content=body, headers=[(k, v.encode()) for k, v in sent.items()]
    )
    assert answer.status_code == 401, answer.text
    assert (await task_of(server, task["id"]))["status"] == "posted"
    await asyncio.sleep(0)
    assert receiver.pending() == []


# ---------------------------------------------------------------- who a click or a link acts for


async def revoke_all(server: Server, org: str, principal: str) -> None:
    now = server.hub.clock.now()

    def revoke(conn: Any) -> None:
        for key in list_keys(conn, org):
            if key.principal == principal:
                revoke_key(conn, key.id, now, org)

    await server.hub.store.run(revoke)


async def test_a_click_for_a_reviewer_whose_key_is_revoked_decides_nothing(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver
) -> None:
    server, channel = slack
    task = await post_pay(server)
    await revoke_all(server, "acme", "alice")
    body, headers = signed(click("UALICE", task["id"], "handrail_approve", receiver.url))
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["replace_original"] is False and reply["response_type"] == "ephemeral"
    assert (
        reply["text"].startswith("Nothing was decided") and "no live reviewer key" in reply["text"]
    )
    assert (await receiver.next()).json == reply
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]) == ("posted", None)


async def test_a_contact_mapped_to_a_requester_decides_nothing(
    slack: tuple[Server, dict[str, Any]], receiver: Receiver
) -> None:
    server, channel = slack
    await contact(server, "acme-other-agent", slack_user_id="UAGENT")
    await server.key("acme", Role.REQUESTER, principal="acme-other-agent")
    # (no reviewer key can be minted for it: one identity, one role)
    task = await post_pay(server)
    body, headers = signed(click("UAGENT", task["id"], "handrail_approve", receiver.url))
    url = f"/integrations/slack/{channel['id']}/interactions"
    answer = await server.client.post(url, content=body, headers=headers)
    assert answer.status_code == 200
    assert "no live reviewer key" in answer.json()["text"]
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]) == ("posted", None)


async def test_no_link_is_minted_for_a_reviewer_without_a_live_key(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    await revoke_all(server, "acme", "alice")
    task = await post_pay(server)
    await send_all(server)
    assert smtp[0].messages == []
    rows = await server.hub.store.run(
        lambda c: (
            c.execute(select(notify_outbox).where(notify_outbox.c.task_id == task["id"]))
            .mappings()
            .all()
        )
    )
    assert [(r["recipient"], r["state"]) for r in rows] == [("alice", "skipped")]
    assert "no live reviewer key" in rows[0]["last_error"]


async def test_a_link_whose_reviewer_was_revoked_since_decides_nothing(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    task = await post_pay(server)
    await send_all(server)
    url = links(smtp[0].messages[0])
    fields = form_of((await server.client.get(local(url["approve"]))).text)
    await revoke_all(server, "acme", "alice")
    page = await server.client.get(local(url["approve"]))
    assert page.status_code == 403 and "no longer decide" in page.text
    for choice, reason in (("approve", ""), ("reject", ""), ("reject", "no")):
        done = await server.client.post(
            f"/decide/{task['id']}", data={**fields, "choice": choice, "reason": reason}
        )
        assert done.status_code == 403 and "no longer decide" in done.text
    after = await task_of(server, task["id"])
    assert (after["status"], after["output"]) == ("posted", None)


# ---------------------------------------------------------------- what a message may carry


async def test_a_title_with_line_breaks_is_one_subject_line(
    server: Server, smtp: tuple[Mailbox, int]
) -> None:
    await post_pay(server, title="Pay\r\nBcc: mallory@example.com\n  now\t!")
    await send_all(server)
    (message,) = smtp[0].messages
    assert message["Subject"] == "[Handrail] Review needed: Pay Bcc: mallory@example.com now !"
    assert message["Bcc"] is None and message["To"] == "alice@example.com"


@pytest.mark.parametrize(
    "address", ["josé@example.com", "a@exämple.com", "a@example.cöm", "a b@example.com", "a@b"]
)
async def test_a_non_ascii_or_malformed_address_is_refused(server: Server, address: str) -> None:
    made = await server.client.put(
        "/v1/notifications/contacts/zed", json={"email": address}, headers=server.a.admin
    )
    assert made.status_code == 422, made.text
    fine = await server.client.put(
        "/v1/notifications/contacts/zed",
        json={"email": "first.last+tag@mail.example.com"},
        headers=server.a.admin,
    )
    assert fine.status_code == 200, fine.text


async def test_a_notification_in_flight_outlives_the_policy_deciding_its_task(
    server: Server, smtp: tuple[Mailbox, int], clock: ManualClock
) -> None:
    """The rule's default decides two reviews at their deadline: the pending notification
    nobody took is dropped, moot; the one a worker has leased and is sending stays under
    it, so that send is recorded (it was deleted under the worker, its send never logged)."""
    c, admin, hub = server.client, server.a.admin, server.hub
    rules = [{"id": "pay", "tools": ["pay"], "outcome": "ask", "reviewers": ["support"],
              "timeout_seconds": 30, "on_timeout": "approve"}]  # fmt: skip
    assert (await c.put("/v1/policy", json={"rules": rules}, headers=admin)).status_code == 200
    held = await post_pay(server)
    now = clock.now()
    (taken,) = await hub.store.run(lambda conn: hub.notifications._lease(conn, now, 50))
    assert taken["task_id"] == held["id"]
    idle = await post_pay(server)
    clock.advance(31)
    await SlaScheduler(hub.engine).tick()
    assert (await task_of(server, held["id"]))["status"] == "verified"
    assert (await task_of(server, idle["id"]))["status"] == "verified"

    def left(conn: Any) -> list[tuple[str, str]]:
        return [
            tuple(r) for r in conn.execute(select(notify_outbox.c.task_id, notify_outbox.c.state))
        ]

    assert await hub.store.run(left, readonly=True) == [(held["id"], "pending")]
    await hub.notifications._send(taken)  # the worker's send ends: moot by now, and logged
    log = (await c.get("/v1/notifications/deliveries", headers=admin)).json()
    assert [(r["task_id"], r["state"]) for r in log["data"]] == [(held["id"], "skipped")]
    assert smtp[0].messages == []
