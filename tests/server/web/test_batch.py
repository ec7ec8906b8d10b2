"""Batch review: the parallel calls of one agent turn, decided one by one or all at once,
each through the engine."""

from __future__ import annotations

import re
from typing import Any

from tests.server.conftest import Server
from tests.server.web._ui import signed_in
from tests.server.web.test_pages import api_task, post_task, ui


def shown(page: str) -> list[str]:
    """The reviews an approve-all form vouches for: its hidden ``task`` fields."""
    return re.findall(r'name="task" value="([^"]+)"', page)


def call(name: str, batch: str, **more: Any) -> dict[str, Any]:
    return {
        "kind": "review",
        "title": f"call {name}",
        "batch_id": batch,
        "action": {"name": name, "args": {"n": name}},
        **more,
    }


async def test_approve_all_decides_every_open_call(server: Server) -> None:
    tasks = [await post_task(server, call(n, "turn-1")) for n in ("a", "b", "c")]
    other = await post_task(server, call("z", "turn-2"))
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        page = await client.get("/batches/turn-1")
        assert page.status_code == 200
        assert all(t["id"] in page.text for t in tasks) and other["id"] not in page.text
        assert "Approve all 3 open" in page.text
        assert sorted(shown(page.text)) == sorted(f"{t['id']}@1" for t in tasks)
        done = await client.post(
            "/batches/turn-1/approve-all",
            data={"csrf_token": csrf, "message": "fine", "task": shown(page.text)},
        )
        assert done.status_code == 200 and done.text.count("approved") >= 3
    for t in tasks:
        after = await api_task(server, t["id"])
        assert after["status"] == "verified"
        assert after["output"]["type"] == "approve"
        assert after["output"]["reviewer_id"] == "acme-reviewer"
    assert (await api_task(server, other["id"]))["status"] == "posted"


async def test_no_approve_all_when_a_call_does_not_allow_it(server: Server) -> None:
    ok = await post_task(server, call("a", "turn-3"))
    strict = await post_task(server, call("b", "turn-3", allowed_decisions=["reject", "respond"]))
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        page = await client.get("/batches/turn-3")
        assert "/approve-all" not in page.text and "do not allow an approve" in page.text
        both = [f"{ok['id']}@1", f"{strict['id']}@1"]
        refused = await client.post(
            "/batches/turn-3/approve-all", data={"csrf_token": csrf, "task": both}
        )
        assert refused.status_code == 422
        one = await client.post(
            f"/tasks/{ok['id']}/decision",
            data={"csrf_token": csrf, "decision": "approve", "back": "/batches/turn-3"},
        )
        assert one.status_code == 303
        assert one.headers["location"] == "/batches/turn-3?done=decided"
    assert (await api_task(server, ok["id"]))["status"] == "verified"
    assert (await api_task(server, strict["id"]))["status"] == "posted"


async def test_approve_all_approves_only_what_the_page_showed(server: Server) -> None:
    """A call that joins the batch after the page loaded, or changes since, is never
    approved unseen: the reviewer is told and sees it."""
    seen = [await post_task(server, call(n, "turn-5")) for n in ("a", "b")]
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        page = await client.get("/batches/turn-5")
        vouched = shown(page.text)
        late = await post_task(server, call("c", "turn-5"))  # the agent adds a call
        done = await client.post(
            "/batches/turn-5/approve-all", data={"csrf_token": csrf, "task": vouched}
        )
        assert done.status_code == 207
        assert "new since the page loaded: not approved" in done.text
        stale = await client.post(  # versions the page never showed
            "/batches/turn-5/approve-all",
            data={"csrf_token": csrf, "task": [f"{late['id']}@9"]},
        )
        assert stale.status_code == 207 and "changed since the page loaded" in stale.text
        nothing = await client.post("/batches/turn-5/approve-all", data={"csrf_token": csrf})
        assert nothing.status_code == 409
        garbled = await client.post(
            "/batches/turn-5/approve-all", data={"csrf_token": csrf, "task": "no-version"}
        )
        assert garbled.status_code == 422
    assert [(await api_task(server, t["id"]))["status"] for t in seen] == ["verified"] * 2
    assert (await api_task(server, late["id"]))["status"] == "posted"


async def test_another_organisations_batch_is_not_found(server: Server) -> None:
    await post_task(server, call("a", "turn-9"), org="b")
    async with ui(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        assert (await client.get("/batches/turn-9")).status_code == 404
        refused = await client.post("/batches/turn-9/approve-all", data={"csrf_token": csrf})
        assert refused.status_code == 404


async def test_approve_all_needs_the_csrf_token(server: Server) -> None:
    task = await post_task(server, call("a", "turn-4"))
    async with ui(server) as client:
        await signed_in(client, server.a.reviewer)
        refused = await client.post("/batches/turn-4/approve-all", data={})
        assert refused.status_code == 403
    assert (await api_task(server, task["id"]))["status"] == "posted"
