"""The queue and task pages over ASGI: what they show, tenancy, decisions and answers
through the engine, and server-side validation (invalid input changes nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import httpx

from tests.server.conftest import Server, sse, sse_events
from tests.server.web._ui import csrf_of, signed_in

JUDGMENT: dict[str, Any] = {
    "kind": "judgment",
    "task_type": "triage",
    "title": "Is this invoice a duplicate?",
    "payload": {"invoice": {"number": "INV-7", "amount": 120}},
    "output_schema": {
        "type": "object",
        "required": ["duplicate", "confidence"],
        "properties": {
            "duplicate": {"type": "boolean"},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            "category": {"enum": ["fraud", "mistake", "other"]},
        },
    },
}


def review(**more: Any) -> dict[str, Any]:
    return {
        "kind": "review",
        "task_type": "payments",
        "title": "Refund the customer",
        "risk_tier": "high",
        "agent_reasoning": "The order <b>never</b> arrived.",
        "confidence": 0.82,
        "payload": {"order": "A-1", "note": "<script>alert(1)</script>"},
        "action": {
            "name": "refund",
            "args": {"order": "A-1", "amount": 30},
            "args_schema": {
                "type": "object",
                "required": ["order", "amount"],
                "properties": {
                    "order": {"type": "string"},
                    "amount": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            },
        },
        **more,
    }


def ui(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app), base_url="http://handrail.test"
    )


async def post_task(server: Server, spec: dict[str, Any], org: str = "a") -> dict[str, Any]:
    headers = (server.a if org == "a" else server.b).requester
    made = await server.client.post("/v1/tasks", json=spec, headers=headers)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def api_task(server: Server, task_id: str) -> dict[str, Any]:
    got = await server.client.get(f"/v1/tasks/{task_id}", headers=server.a.requester)
    body: dict[str, Any] = got.json()
    return body


async def test_the_queue_lists_open_tasks_with_filters(server: Server) -> None:
    refund = await post_task(server, review())
    triage = await post_task(server, JUDGMENT)
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        page = (await client.get("/queue")).text
        assert refund["id"] in page and triage["id"] in page
        high = (await client.get("/queue?risk=high")).text
        assert refund["id"] in high and triage["id"] not in high
        typed = (await client.get("/queue/rows?task_type=triage")).text
        assert triage["id"] in typed and refund["id"] not in typed
        assert "<html" not in typed  # a fragment
        bad = await client.get("/queue?risk=extreme")
        assert bad.status_code == 422 and "unknown risk tier" in bad.text


async def test_requesters_get_no_queue(server: Server) -> None:
    async with ui(server) as client:
        await signed_in(client, server.a.requester)
        page = await client.get("/queue")
        assert page.status_code == 403
        assert "text/html" in page.headers["content-type"]


async def test_the_queue_stream_says_when_something_changed(server: Server) -> None:
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        cookies = {"handrail_session": client.cookies["handrail_session"]}
    async with sse(server, "/queue/events", cookies=cookies) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)

        async def first() -> str:
            async for event in events:
                return event.event
            return ""

        waiting = asyncio.create_task(first())
        await asyncio.sleep(0.2)
        await post_task(server, review())
        assert await asyncio.wait_for(waiting, 10) == "change"
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


async def test_the_task_page_shows_the_context_escaped(server: Server) -> None:
    task = await post_task(server, review())
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        page = await client.get(f"/tasks/{task['id']}")
        assert page.status_code == 200
        html = page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
        assert "The order &lt;b&gt;never&lt;/b&gt; arrived." in html
        assert "82%" in html and "data-countdown" in html
        assert 'value="approve"' in html and 'value="modify"' in html
        assert 'value="reject"' in html and 'value="respond"' not in html  # not allowed
        assert 'id="args-schema"' in html
        # every form on the page carries the session's token
        hidden = re.findall(r'name="csrf_token" value="([^"]*)"', html)
        assert len(hidden) >= 2 and set(hidden) == {csrf_of(html)} and csrf_of(html)


async def test_json_for_the_page_scripts_cannot_end_its_element(server: Server) -> None:
    spec = review()
    spec["action"]["args"] = {"order": "</script><script>alert(1)</script>", "amount": 3}
    task = await post_task(server, spec)
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        html = (await client.get(f"/tasks/{task['id']}")).text
        found = re.search(
            r'<script type="application/json" id="args-original">(.*?)</script>', html
        )
        assert found is not None
        assert json.loads(found.group(1))["order"] == "</script><script>alert(1)</script>"


async def test_another_organisations_task_is_not_found(server: Server) -> None:
    theirs = await post_task(server, review(), org="b")
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        page = await client.get(f"/tasks/{theirs['id']}")
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]
        decided = await client.post(
            f"/tasks/{theirs['id']}/decision", data={"csrf_token": csrf, "decision": "approve"}
        )
        assert decided.status_code == 404
        files = await client.get(f"/tasks/{theirs['id']}/files/anything")
        assert files.status_code == 404
    got = await server.client.get(f"/v1/tasks/{theirs['id']}", headers=server.b.requester)
    assert got.json()["status"] == "posted"


async def test_modify_goes_through_the_engine(server: Server) -> None:
    task = await post_task(server, review())
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        done = await client.post(
            f"/tasks/{task['id']}/decision",
            data={
                "csrf_token": csrf,
                "decision": "modify",
                "args_json": '{"order": "A-1", "amount": 25}',
                "message": "partial refund",
            },
        )
        assert done.status_code == 303 and done.headers["location"].endswith("done=decided")
        page = (await client.get(done.headers["location"])).text
        assert "Your decision was recorded" in page and "/amount" in page  # the patch
    after = await api_task(server, task["id"])
    assert after["status"] == "verified"
    assert after["output"]["type"] == "modify"
    assert after["output"]["args"] == {"order": "A-1", "amount": 25}
    assert after["output"]["reviewer_id"] == "acme-reviewer"


async def test_invalid_decisions_change_nothing(server: Server) -> None:
    task = await post_task(server, review())
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        cases = [
            ({"decision": "modify", "args_json": '{"order": "A-1", "amount": 500}'}, "$.args"),
            ({"decision": "modify", "args_json": "{not json"}, "not valid JSON"),
            ({"decision": "modify", "args_json": "[1]"}, "must be a JSON object"),
            ({"decision": "reject", "message": "  "}, "needs a message"),
            ({"decision": "respond", "message": "hi"}, "not allowed"),
            ({"decision": "explode"}, "choose approve"),
        ]
        for form, expected in cases:
            page = await client.post(
                f"/tasks/{task['id']}/decision", data={"csrf_token": csrf, **form}
            )
            assert page.status_code == 422, (form, page.status_code)
            assert expected in page.text, (form, expected)
            assert 'role="alert"' in page.text
    after = await api_task(server, task["id"])
    assert after["status"] == "posted" and after["assignments"] == []


async def test_the_requester_cannot_decide_its_own_review(server: Server) -> None:
    admin_task = await server.client.post("/v1/tasks", json=review(), headers=server.a.admin)
    task = admin_task.json()
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.admin)
        page = await client.post(
            f"/tasks/{task['id']}/decision", data={"csrf_token": csrf, "decision": "approve"}
        )
        assert page.status_code == 403
        assert "text/html" in page.headers["content-type"]
    assert (await api_task(server, task["id"]))["status"] == "posted"


async def test_a_judgment_answer_is_checked_before_anything_is_claimed(server: Server) -> None:
    task = await post_task(server, JUDGMENT)
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        page = await client.get(f"/tasks/{task['id']}")
        assert 'id="output-schema"' in page.text and "data-answer-form" in page.text
        bad = await client.post(
            f"/tasks/{task['id']}/answer",
            data={"csrf_token": csrf, "output_json": '{"duplicate": true, "confidence": 300}'},
        )
        assert bad.status_code == 422 and "$.output.confidence" in bad.text
        assert (await api_task(server, task["id"]))["assignments"] == []
        good = await client.post(
            f"/tasks/{task['id']}/answer",
            data={"csrf_token": csrf, "output_json": '{"duplicate": true, "confidence": 90}'},
        )
        assert good.status_code == 303
    after = await api_task(server, task["id"])
    assert after["status"] == "verified"
    assert after["output"] == {"duplicate": True, "confidence": 90}


async def test_decisions_need_the_csrf_token(server: Server) -> None:
    task = await post_task(server, review())
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        refused = await client.post(f"/tasks/{task['id']}/decision", data={"decision": "approve"})
        assert refused.status_code == 403
    assert (await api_task(server, task["id"]))["status"] == "posted"


async def test_attachments_download_from_the_task(server: Server) -> None:
    task = await post_task(server, review())
    made = await server.client.post(
        "/v1/uploads",
        files={"file": ("receipt.txt", b"paid 30", "text/plain")},
        data={"task_id": task["id"]},
        headers=server.a.requester,
    )
    assert made.status_code == 201, made.text
    upload = made.json()
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        page = (await client.get(f"/tasks/{task['id']}")).text
        assert "receipt.txt" in page
        got = await client.get(f"/tasks/{task['id']}/files/{upload['id']}")
        assert got.status_code == 200 and got.content == b"paid 30"
        assert got.headers["content-disposition"].startswith("attachment")
