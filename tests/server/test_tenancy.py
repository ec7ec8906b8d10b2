"""Tenant isolation: another organisation's ids answer 404 on every endpoint that takes one
(never 403, never its data, never a change), lists never show another organisation's
objects, and the organisation's event stream never carries another's events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.server.conftest import Org, Server, SseEvent, review, sse, sse_events

MARKER = "acme-confidential-7f3a"  # in every acme object: must never reach rival


@dataclass
class AcmeObjects:
    task: str
    done: str  # a verified task
    upload: str
    endpoint: str
    worker: str
    key: str


async def _acme(server: Server) -> AcmeObjects:
    c, a = server.client, server.a
    spec = review(payload={"note": MARKER}, title=MARKER)
    task = (await c.post("/v1/tasks", json=spec, headers=a.requester)).json()
    done = (await c.post("/v1/tasks", json=spec, headers=a.requester)).json()
    decided = await c.post(
        f"/v1/tasks/{done['id']}/decision", json={"type": "approve"}, headers=a.reviewer
    )
    assert decided.status_code == 200, decided.text
    upload = await c.post(
        "/v1/uploads",
        files={"file": ("proof.txt", MARKER.encode(), "text/plain")},
        data={"task_id": task["id"]},
        headers=a.requester,
    )
    assert upload.status_code == 201, upload.text
    endpoint = await c.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/acme", "description": MARKER, "enabled": False},
        headers=a.admin,
    )
    assert endpoint.status_code == 201
    worker = await c.put("/v1/workers/acme-auditor", json={"skills": [MARKER]}, headers=a.admin)
    assert worker.status_code == 200
    keys = (await c.get("/v1/keys", headers=a.admin)).json()
    key = next(k["id"] for k in keys if k["principal"] == "acme-agent")
    return AcmeObjects(
        task["id"], done["id"], upload.json()["id"], endpoint.json()["id"], "acme-auditor", key
    )


def _calls(acme: AcmeObjects, b: Org) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """Every endpoint that takes an id, with acme's ids, each with the rival key whose role
    may call it (so a 403 could not hide behind the role check)."""
    t, d = acme.task, acme.done
    reason = {"json": {"reason": "because"}}
    return [
        ("GET", f"/v1/tasks/{t}", b.requester, {}),
        ("GET", f"/v1/tasks/{d}", b.admin, {}),
        ("GET", f"/v1/tasks/{t}/history", b.requester, {}),
        ("GET", f"/v1/tasks/{t}/wait", b.requester, {"params": {"timeout": 5}}),
        ("GET", f"/v1/tasks/{d}/wait", b.requester, {"params": {"timeout": 5}}),
        ("GET", f"/v1/tasks/{t}/events", b.requester, {}),
        ("GET", f"/v1/tasks/{d}/events", b.requester, {}),
        ("POST", f"/v1/tasks/{t}/claim", b.reviewer, {}),
        ("POST", f"/v1/tasks/{t}/release", b.reviewer, {}),
        ("POST", f"/v1/tasks/{t}/decision", b.reviewer, {"json": {"type": "approve"}}),
        ("POST", f"/v1/tasks/{t}/decision", b.admin, {"json": {"type": "approve"}}),
        ("POST", f"/v1/tasks/{t}/submissions", b.reviewer, {"json": {"output": {"ok": 1}}}),
        ("POST", f"/v1/tasks/{t}/estimate", b.reviewer, {"json": {"eta_seconds": 60}}),
        ("POST", f"/v1/tasks/{t}/cancel", b.requester, {}),
        ("POST", f"/v1/tasks/{t}/cancel", b.admin, reason),
        ("POST", f"/v1/tasks/{d}/dispute", b.requester, reason),
        ("POST", f"/v1/tasks/{d}/verify", b.admin, {"json": {"output": {"type": "approve"}}}),
        ("POST", f"/v1/tasks/{d}/fail", b.admin, reason),
        (
            "POST",
            f"/v1/tasks/{d}/resolve-dispute",
            b.admin,
            {"json": {"uphold": False, "reason": "x"}},
        ),
        ("POST", f"/v1/tasks/{t}/estimate/approve", b.requester, {}),
        ("POST", f"/v1/tasks/{t}/estimate/reject", b.requester, reason),
        ("GET", f"/v1/uploads/{acme.upload}", b.requester, {}),
        ("GET", f"/v1/uploads/{acme.upload}/content", b.requester, {}),
        ("GET", f"/v1/uploads/{acme.upload}", b.admin, {}),
        (
            "POST",
            "/v1/uploads",
            b.requester,
            {"files": {"file": ("x.txt", b"x", "text/plain")}, "data": {"task_id": t}},
        ),
        ("GET", f"/v1/webhooks/{acme.endpoint}", b.admin, {}),
        ("PATCH", f"/v1/webhooks/{acme.endpoint}", b.admin, {"json": {"enabled": True}}),
        ("DELETE", f"/v1/webhooks/{acme.endpoint}", b.admin, {}),
        ("GET", f"/v1/webhooks/{acme.endpoint}/deliveries", b.admin, {}),
        ("POST", "/v1/webhooks/test", b.admin, {"json": {"endpoint_id": acme.endpoint}}),
        ("GET", f"/v1/workers/{acme.worker}", b.admin, {}),
        ("DELETE", f"/v1/keys/{acme.key}", b.admin, {}),
    ]


async def _snapshot(server: Server, acme: AcmeObjects) -> list[Any]:
    c, a = server.client, server.a
    return [
        (await c.get(f"/v1/tasks/{acme.task}", headers=a.requester)).json(),
        (await c.get(f"/v1/tasks/{acme.done}/history", headers=a.requester)).json(),
        (await c.get(f"/v1/uploads/{acme.upload}", headers=a.requester)).json(),
        (await c.get(f"/v1/webhooks/{acme.endpoint}", headers=a.admin)).json(),
        (await c.get(f"/v1/webhooks/{acme.endpoint}/deliveries", headers=a.admin)).json(),
        (await c.get(f"/v1/workers/{acme.worker}", headers=a.admin)).json(),
        (await c.get("/v1/keys", headers=a.admin)).json(),
    ]


async def test_another_organisations_ids_are_404_everywhere(server: Server) -> None:
    c, b = server.client, server.b
    acme = await _acme(server)
    before = await _snapshot(server, acme)
    for method, path, headers, extra in _calls(acme, b):
        answer = await asyncio.wait_for(c.request(method, path, headers=headers, **extra), 10)
        where = f"{method} {path}"
        assert answer.status_code == 404, f"{where}: {answer.status_code} {answer.text}"
        assert answer.headers["content-type"] == "application/problem+json", where
        assert answer.json()["code"] == "not_found", where
        assert MARKER not in answer.text, where
        # exactly what a made-up id gets: nothing tells "theirs" from "nobody's"
        made_up = await c.request(
            method,
            path.replace(acme.task, "0" * 36)
            .replace(acme.done, "0" * 36)
            .replace(acme.upload, "0" * 36)
            .replace(acme.endpoint, "0" * 36)
            .replace(acme.worker, "nobody")
            .replace(acme.key, "0" * 36),
            headers=headers,
            **{
                k: (
                    {"endpoint_id": "0" * 36}
                    if k == "json" and "endpoint_id" in v
                    else {**v, "task_id": "0" * 36}
                    if k == "data"
                    else v
                )
                for k, v in extra.items()
            },
        )
        assert made_up.status_code == 404, where
        assert _shape(made_up) == _shape(answer), where
    assert await _snapshot(server, acme) == before  # nothing of acme's changed
    still = await c.get("/v1/tasks", headers=server.a.requester)  # acme's key still works
    assert still.status_code == 200


def _shape(answer: httpx.Response) -> tuple[Any, ...]:
    body = answer.json()
    return (body["code"], body["title"], body.get("resource"), sorted(body))


async def test_worker_stats_and_earnings_show_nothing_of_another_organisation(
    server: Server,
) -> None:
    c, a, b = server.client, server.a, server.b
    await _acme(server)
    worker = "acme-reviewer"  # who verified acme's task
    mine = await c.get(f"/v1/workers/{worker}/stats", headers=a.admin)
    assert mine.status_code == 200 and mine.json()  # acme learned about its reviewer
    theirs = await c.get(f"/v1/workers/{worker}/stats", headers=b.admin)
    assert theirs.status_code == 200 and theirs.json() == []
    earnings = await c.get("/v1/earnings", params={"worker_id": worker}, headers=b.admin)
    assert earnings.json()["total"]["amount"] == "0.00"
    payouts = await c.get("/v1/payouts", params={"worker_id": worker}, headers=b.admin)
    assert payouts.json() == {"data": []}


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/v1/tasks", "requester"),
        ("/v1/tasks?order=desc&limit=500", "admin"),
        ("/v1/tasks?status=verified", "requester"),
        ("/v1/queue", "reviewer"),
        ("/v1/queue", "admin"),
        ("/v1/webhooks", "admin"),
        ("/v1/keys", "admin"),
        ("/v1/workers", "admin"),
        ("/v1/ledger/entries", "requester"),
        ("/v1/ledger/entries?account=pending", "reviewer"),
        ("/v1/balance", "requester"),
        ("/v1/payouts", "reviewer"),
        ("/v1/earnings", "reviewer"),
    ],
)
async def test_lists_never_show_another_organisations_objects(
    server: Server, path: str, role: str
) -> None:
    c, a = server.client, server.a
    await c.post(
        "/v1/deposits",
        json={"amount": {"currency": "USD", "amount": "50.00"}, "reference": MARKER},
        headers={**a.admin, "Idempotency-Key": "d"},
    )
    paid = review(payout={"currency": "USD", "amount": "1.00"}, title=MARKER)
    await c.post("/v1/tasks", json=paid, headers=a.requester)
    await _acme(server)
    answer = await c.get(path, headers=getattr(server.b, role))
    assert answer.status_code == 200, answer.text
    assert MARKER not in answer.text
    assert "acme" not in answer.text
    body = answer.json()
    data = body.get("data", body) if isinstance(body, dict) else body
    if isinstance(data, list):
        assert len(data) <= 4  # rival's own keys, at most


async def test_a_cursor_from_another_organisation_reveals_nothing(server: Server) -> None:
    c, b = server.client, server.b
    acme = await _acme(server)
    mine = (await c.post("/v1/tasks", json=review(), headers=b.requester)).json()
    page = await c.get("/v1/tasks", params={"after": acme.task}, headers=b.requester)
    assert page.status_code == 200
    assert MARKER not in page.text
    assert {t["org_id"] for t in page.json()["data"]} <= {"rival"}
    assert [t["id"] for t in page.json()["data"]] in ([], [mine["id"]])


async def test_the_org_stream_never_carries_another_organisations_events(
    server: Server,
) -> None:
    c, a, b = server.client, server.a, server.b
    got: list[SseEvent] = []
    async with sse(server, "/v1/events", headers=b.requester, params={"after": 0}) as response:
        assert response.status_code == 200
        rival_tasks = []
        for _ in range(2):  # interleaved: acme's events come first each time
            await _acme(server)
            task = (await c.post("/v1/tasks", json=review(), headers=b.requester)).json()
            await c.post(f"/v1/tasks/{task['id']}/cancel", headers=b.requester)
            rival_tasks.append(task["id"])

        async def read() -> None:
            async for event in sse_events(response):
                got.append(event)
                if len(got) == 4:
                    return

        await asyncio.wait_for(read(), 20)
    assert [(e.data["task_id"], e.event) for e in got] == [
        (rival_tasks[0], "create"),
        (rival_tasks[0], "cancel"),
        (rival_tasks[1], "create"),
        (rival_tasks[1], "cancel"),
    ]
    assert all(e.data["org_id"] == "rival" for e in got)
    # and acme's own stream has acme's
    async with sse(server, "/v1/events", headers=a.requester, params={"after": 0}) as response:
        event = await asyncio.wait_for(anext(aiter(sse_events(response))), 20)
    assert event.data["org_id"] == "acme"


async def test_the_same_names_in_two_organisations_are_two_objects(server: Server) -> None:
    c, a, b = server.client, server.a, server.b
    for org, skills in ((a, ["acme-only"]), (b, ["rival-only"])):
        answer = await c.put("/v1/workers/alice", json={"skills": skills}, headers=org.admin)
        assert answer.status_code == 200
    assert (await c.get("/v1/workers/alice", headers=a.admin)).json()["skills"] == ["acme-only"]
    assert (await c.get("/v1/workers/alice", headers=b.admin)).json()["skills"] == ["rival-only"]
