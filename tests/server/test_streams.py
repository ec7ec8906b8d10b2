"""Waiting without polling: the task long-poll, the queue long-poll, a task's SSE stream and
the organisation's SSE stream (resumed from ``Last-Event-ID`` without gaps or repeats)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from handrail_server.routes import waiting
from tests.server.conftest import Server, SseEvent, review, sse, sse_events

APPROVE = {"type": "approve"}
SAFETY = 20  # seconds: a safety net only; every wait below ends on an event


async def _post(server: Server, **more: Any) -> dict[str, Any]:
    created = await server.client.post("/v1/tasks", json=review(**more), headers=server.a.requester)
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def test_long_poll_returns_as_soon_as_the_task_is_terminal(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server)
    started = time.monotonic()
    waiting = asyncio.create_task(
        c.get(f"/v1/tasks/{task['id']}/wait?timeout=30", headers=a.requester)
    )
    await asyncio.sleep(0.1)  # let it park (not a synchronisation: it wakes on the change)
    assert not waiting.done()
    decided = await c.post(f"/v1/tasks/{task['id']}/decision", json=APPROVE, headers=a.reviewer)
    assert decided.status_code == 200, decided.text
    answer = await asyncio.wait_for(waiting, SAFETY)
    assert answer.status_code == 200
    assert answer.json()["status"] == "verified"
    assert time.monotonic() - started < 5  # far inside its 30 s timeout


async def test_long_poll_answers_the_task_as_it_stands_at_its_timeout(server: Server) -> None:
    task = await _post(server)
    started = time.monotonic()
    answer = await server.client.get(
        f"/v1/tasks/{task['id']}/wait?timeout=0.2", headers=server.a.requester
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == "posted"
    assert 0.15 < time.monotonic() - started < 5


async def test_long_poll_on_a_terminal_task_returns_at_once(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server)
    await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    started = time.monotonic()
    answer = await c.get(f"/v1/tasks/{task['id']}/wait?timeout=30", headers=a.requester)
    assert answer.json()["status"] == "cancelled"
    assert time.monotonic() - started < 2


async def test_wait_timeouts_are_validated(server: Server) -> None:
    task = await _post(server)
    for bad in ("0", "-1", "301", "soon"):
        answer = await server.client.get(
            f"/v1/tasks/{task['id']}/wait?timeout={bad}", headers=server.a.requester
        )
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0]["path"] == "query:timeout"


async def test_queue_long_poll_wakes_when_work_arrives(server: Server) -> None:
    c, a = server.client, server.a
    empty = await c.get("/v1/queue", headers=a.reviewer)
    assert empty.json()["data"] == []
    started = time.monotonic()
    polling = asyncio.create_task(c.get("/v1/queue?wait=30", headers=a.reviewer))
    await asyncio.sleep(0.1)
    assert not polling.done()
    task = await _post(server)
    answer = await asyncio.wait_for(polling, SAFETY)
    assert answer.status_code == 200
    assert [t["id"] for t in answer.json()["data"]] == [task["id"]]
    assert time.monotonic() - started < 5


async def test_queue_leaves_out_skipped_tasks_and_long_polls_past_them(server: Server) -> None:
    c, a = server.client, server.a
    first = await _post(server)
    skipped = await c.get(f"/v1/queue?skip={first['id']}", headers=a.reviewer)
    assert skipped.status_code == 200
    assert skipped.json()["data"] == []  # no wait: answered at once, without the skipped
    polling = asyncio.create_task(
        c.get(f"/v1/queue?wait=30&skip={first['id']}&skip=other", headers=a.reviewer)
    )
    await asyncio.sleep(0.2)
    assert not polling.done()  # only skipped work is queued: the long-poll holds
    second = await _post(server)
    answer = await asyncio.wait_for(polling, SAFETY)
    assert [t["id"] for t in answer.json()["data"]] == [second["id"]]
    too_many = "&".join(f"skip=t{i}" for i in range(501))
    assert (await c.get(f"/v1/queue?{too_many}", headers=a.reviewer)).status_code == 422


async def test_queue_long_poll_is_not_woken_by_another_organisations_work(server: Server) -> None:
    c = server.client
    started = time.monotonic()
    polling = asyncio.create_task(c.get("/v1/queue?wait=0.5", headers=server.b.reviewer))
    await _post(server)  # in acme
    answer = await asyncio.wait_for(polling, SAFETY)
    assert answer.json()["data"] == []
    assert time.monotonic() - started >= 0.45


async def test_queue_long_poll_answers_empty_after_wait(server: Server) -> None:
    started = time.monotonic()
    answer = await server.client.get("/v1/queue?wait=0.2", headers=server.a.reviewer)
    assert answer.status_code == 200
    assert answer.json() == {"data": [], "has_more": False, "next_cursor": None}
    assert 0.15 < time.monotonic() - started < 5


async def test_a_tasks_stream_sends_each_version_and_ends_when_terminal(server: Server) -> None:
    a = server.a
    task = await _post(server)
    seen: list[SseEvent] = []
    async with sse(server, f"/v1/tasks/{task['id']}/events", headers=a.requester) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-request-id"]

        async def read() -> None:
            async for event in sse_events(response):
                seen.append(event)
                if len(seen) == 1:  # the task as it is now: act on it
                    claim = await server.client.post(
                        f"/v1/tasks/{task['id']}/claim", headers=a.reviewer
                    )
                    assert claim.status_code == 200
                elif event.data["status"] == "assigned":
                    decided = await server.client.post(
                        f"/v1/tasks/{task['id']}/decision", json=APPROVE, headers=a.reviewer
                    )
                    assert decided.status_code == 200

        await asyncio.wait_for(read(), SAFETY)  # returns: the stream ended by itself
    assert [e.event for e in seen] == ["task"] * len(seen)
    assert seen[0].data["status"] == "posted"
    assert seen[1].data["status"] == "assigned"
    assert seen[-1].data["status"] == "verified"
    versions = [int(e.id or 0) for e in seen]
    assert versions == sorted(set(versions))  # each version once, in order


async def test_a_stream_of_a_terminal_task_sends_it_once_and_ends(server: Server) -> None:
    c, a = server.client, server.a
    task = await _post(server)
    await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    answer = await c.get(f"/v1/tasks/{task['id']}/events", headers=a.requester)  # buffered
    assert answer.status_code == 200
    frames = [f for f in answer.text.split("\n\n") if f]
    assert len(frames) == 1 and "event: task" in frames[0] and '"cancelled"' in frames[0]


async def _first(response: Any) -> SseEvent:
    async for event in sse_events(response):
        return event
    raise AssertionError("the stream ended")


async def _org_events(
    server: Server, headers: dict[str, str], count: int, **request: Any
) -> list[SseEvent]:
    """The first ``count`` events of the organisation's stream, then hang up."""
    got: list[SseEvent] = []
    async with sse(server, "/v1/events", headers=headers, **request) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")

        async def read() -> None:
            async for event in sse_events(response):
                got.append(event)
                if len(got) == count:
                    return

        await asyncio.wait_for(read(), SAFETY)
    return got


async def test_the_org_stream_resumes_from_last_event_id_without_gaps_or_repeats(
    server: Server,
) -> None:
    c, a = server.client, server.a
    first = await _post(server)
    await c.post(f"/v1/tasks/{first['id']}/claim", headers=a.reviewer)
    await c.post(f"/v1/tasks/{first['id']}/decision", json=APPROVE, headers=a.reviewer)
    everything = [
        e["id"]
        for e in (await c.get(f"/v1/tasks/{first['id']}/history", headers=a.requester)).json()[
            "data"
        ]
    ]
    # from the beginning: the first three events, then hang up
    head = await _org_events(server, a.requester, 3, params={"after": 0})
    assert [e.data["id"] for e in head] == everything[:3]
    assert [e.event for e in head] == ["create", "claim", "submit"]
    # more happens while nobody listens
    second = await _post(server)
    await c.post(f"/v1/tasks/{second['id']}/cancel", headers=a.requester)
    rest = await _org_events(
        server, {**a.requester, "Last-Event-ID": head[-1].id or ""}, len(everything) - 3 + 2
    )
    events = head + rest
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # no repeats, in order
    assert [e.data["seq"] for e in events] == ids
    assert [e.data["id"] for e in events[: len(everything)]] == everything  # no gaps
    assert [(e.data["task_id"], e.event) for e in events[len(everything) :]] == [
        (second["id"], "create"),
        (second["id"], "cancel"),
    ]


async def test_the_org_stream_without_a_position_starts_now(server: Server) -> None:
    old = await _post(server)
    got: list[SseEvent] = []
    async with sse(server, "/v1/events", headers=server.a.requester) as response:

        async def read() -> None:
            async for event in sse_events(response):
                got.append(event)
                return

        reading = asyncio.create_task(read())
        new = await _post(server)  # the stream took its starting point before answering
        await asyncio.wait_for(reading, SAFETY)
    assert got[0].data["task_id"] == new["id"] != old["id"]


async def test_the_org_stream_ignores_a_last_event_id_that_is_not_one_of_ours(
    server: Server,
) -> None:
    await _post(server)
    for odd in (b"\xb2", b"12a", b"9" * 25):  # "²" (latin-1) passes str.isdigit()
        headers = {**server.a.requester, "Last-Event-ID": odd}
        async with sse(server, "/v1/events", headers=headers) as response:
            assert response.status_code == 200
            reading = asyncio.create_task(_first(response))
            new = await _post(server)
            first = await asyncio.wait_for(reading, SAFETY)
        assert first.data["task_id"] == new["id"]  # started now, not at the beginning


async def test_the_org_stream_refuses_a_position_past_64_bits(server: Server) -> None:
    answer = await server.client.get(
        "/v1/events", params={"after": 2**64}, headers=server.a.requester
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "query:after"


async def test_last_event_id_wins_over_the_url_a_reconnecting_client_still_has(
    server: Server,
) -> None:
    """A browser's EventSource reconnects to the URL it started with (``?after=0``) and adds
    ``Last-Event-ID``: it must resume after the header's event, not replay from 0."""
    c, a = server.client, server.a
    first = await _post(server)
    await c.post(f"/v1/tasks/{first['id']}/cancel", headers=a.requester)
    head = await _org_events(server, a.requester, 2, params={"after": 0})
    second = await _post(server)
    resumed = await _org_events(
        server, {**a.requester, "Last-Event-ID": head[-1].id or ""}, 1, params={"after": 0}
    )
    assert [(e.data["task_id"], e.event) for e in resumed] == [(second["id"], "create")]


async def test_streams_send_keepalives_while_nothing_happens(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waiting, "KEEPALIVE", 0.05)
    task = await _post(server)
    for path in ("/v1/events", f"/v1/tasks/{task['id']}/events"):
        async with sse(server, path, headers=server.a.requester) as response:

            async def keepalive(response: Any = response) -> str:
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        return str(line)
                raise AssertionError("the stream ended")

            assert await asyncio.wait_for(keepalive(), SAFETY) == ": keepalive"


async def test_the_lean_long_poll_answers_as_the_route_does(server: Server) -> None:
    """``ParkedWaits`` answers the plain long-poll below the routing layer; a request it
    does not take (here, with an extra query parameter) goes to the FastAPI route. Both
    give the same body, problems and headers."""
    c, a = server.client, server.a
    task = await _post(server)
    await c.post(f"/v1/tasks/{task['id']}/cancel", headers=a.requester)
    counted = await _waits_counted(c)
    lean = await c.get(f"/v1/tasks/{task['id']}/wait?timeout=5", headers=a.requester)
    routed = await c.get(f"/v1/tasks/{task['id']}/wait?timeout=5&via=route", headers=a.requester)
    assert lean.status_code == routed.status_code == 200
    assert lean.json() == routed.json() and lean.json()["status"] == "cancelled"
    assert lean.headers["content-type"] == routed.headers["content-type"]
    assert "x-request-id" in lean.headers
    assert await _waits_counted(c) == counted + 2  # both under the route's label
    for path, headers in (
        (f"/v1/tasks/{task['id']}/wait", server.b.requester),  # another organisation's
        (f"/v1/tasks/{task['id']}/wait", {"Authorization": "Bearer hr_live_nope"}),
        ("/v1/tasks/nope/wait", a.requester),
    ):
        one = await c.get(path + "?timeout=1", headers=headers)
        other = await c.get(path + "?timeout=1&via=route", headers=headers)
        assert one.status_code == other.status_code and one.status_code in (401, 404)
        drop = ("instance", "request_id")
        assert {k: v for k, v in one.json().items() if k not in drop} == {
            k: v for k, v in other.json().items() if k not in drop
        }
        assert one.headers.get("www-authenticate") == other.headers.get("www-authenticate")


async def _waits_counted(c: httpx.AsyncClient) -> float:
    """The metrics' count of answered long-polls (200) so far."""
    wanted = 'route="/v1/tasks/{task_id}/wait",status="200"'
    for line in (await c.get("/metrics")).text.splitlines():
        if line.startswith("handrail_http_requests_total{") and wanted in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_parked_long_poll_holds_few_frames(server: Server) -> None:
    """What a parked long-poll holds, counted as the chain of coroutines its request awaits
    through: the lean path parks below the routing, dependency and exception layers (a
    count, not a timing)."""
    c, a = server.client, server.a
    task = await _post(server)

    def parked_depth() -> int:
        deepest = 0
        for running in asyncio.all_tasks():
            chain = _chain(running.get_coro())
            if any(getattr(co, "__name__", "") == "wait_reply" for co in chain):
                deepest = max(deepest, len(chain))
        return deepest

    depths = []
    for query in ("timeout=30", "timeout=30&via=route"):
        parked = asyncio.create_task(
            c.get(f"/v1/tasks/{task['id']}/wait?{query}", headers=a.requester)
        )
        await asyncio.sleep(0.2)
        depths.append(parked_depth())
        parked.cancel()
    lean, routed = depths
    # in front of every middleware: 15 deep through httpx's ASGI transport (21 when it sat
    # inside the request-id, metrics, crash and header-limit layers), 37 through the route
    assert 0 < lean <= 15 and routed - lean >= 20, depths


def _chain(coro: Any) -> list[Any]:
    """A coroutine and every coroutine or async generator it awaits through, outermost
    first."""
    found = []
    while coro is not None:
        found.append(coro)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return found
