"""The resumer against a real Handrail server process over HTTP: following the
organisation's event stream (SSE), and receiving the server's signed webhooks on a
FastAPI app of its own (served by uvicorn on loopback). The agent holds a requester's
key, the reviewer a reviewer's, and an admin registers the webhook endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langgraph.checkpoint.memory import InMemorySaver

from handrail import Decision, Handrail, Role
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore
from handrail_langgraph import HandrailResumer
from handrail_server.keys import create_key
from tests.langchain.test_live import run_async
from tests.langgraph.conftest import (
    PAYMENT,
    Ledger,
    Outcomes,
    payment_graph,
    running,
    task_of,
    thread,
)
from tests.server._live import LiveServer, free_port, serve_in_thread


@dataclass
class Live:
    server: LiveServer
    keys: dict[str, str]

    def client(self, who: str) -> Handrail:
        return Handrail(self.server.url, self.keys[who])


async def _start(workdir: Path) -> Live:
    server = LiveServer(f"sqlite:///{workdir / 'handrail.db'}", workdir)
    server.start()
    await server.ready()
    store = await SqlStore.open(server.database_url, create=False)
    keys: dict[str, str] = {}
    try:
        now = SystemClock().now()
        for who, role in (
            ("agent", Role.REQUESTER),
            ("reviewer", Role.REVIEWER),
            ("admin", Role.ADMIN),
        ):
            made = await store.run(
                lambda c, r=role, p=who: create_key(c, org_id="acme", role=r, now=now, principal=p)
            )
            keys[who] = made.key
    finally:
        await store.close()
    return Live(server, keys)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    found = run_async(lambda: _start(tmp_path_factory.mktemp("live-langgraph")))
    try:
        yield found
    finally:
        found.server.stop()


def test_the_resumer_follows_the_servers_event_stream(live: Live, ledger: Ledger) -> None:
    outcomes = Outcomes()
    with live.client("agent") as hr, live.client("reviewer") as rv:
        graph = payment_graph(hr, ledger, InMemorySaver())
        config = thread()
        first = graph.invoke({"action": PAYMENT}, config, version="v2")
        task_id = task_of(first.interrupts[0])
        with running(HandrailResumer(graph, hr, on_resumption=outcomes)):
            rv.tasks.decide(task_id, Decision.modify({"to": "carol", "amount": 40}))
            got = outcomes.until("resumed")
        assert (got.task_id, got.thread_id) == (task_id, config["configurable"]["thread_id"])
        assert graph.get_state(config).values["paid"] == [
            {"name": "pay", "args": {"to": "carol", "amount": 40}}
        ]
    assert ledger.of("pay") == [{"to": "carol", "amount": 40}]


# ---------------------------------------------------------------- webhooks


def test_the_servers_webhooks_resume_the_thread(live: Live, ledger: Ledger) -> None:
    port = free_port()
    admin = httpx.Client(
        base_url=live.server.url, headers={"Authorization": f"Bearer {live.keys['admin']}"}
    )
    with admin:
        made = admin.post(
            "/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{port}/handrail/webhooks",
                "events": ["task.verified", "task.expired", "task.cancelled", "task.failed"],
            },
        )
        assert made.status_code == 201, made.text
        endpoint: dict[str, Any] = made.json()
        outcomes = Outcomes()
        try:
            with live.client("agent") as hr, live.client("reviewer") as rv:
                graph = payment_graph(hr, ledger, InMemorySaver())
                config = thread()
                first = graph.invoke({"action": PAYMENT}, config, version="v2")
                task_id = task_of(first.interrupts[0])
                resumer = HandrailResumer(graph, hr, on_resumption=outcomes)
                app = FastAPI()
                app.include_router(resumer.router(endpoint["secret"]))
                receiver = serve_in_thread(app, "webhook receiver", port)
                try:
                    rv.tasks.decide(task_id, Decision.reject("not this month"))
                    got = outcomes.until("resumed")
                finally:
                    receiver.stop()
                assert got.task_id == task_id
                assert graph.get_state(config).values["refused"] == ["not this month"]
        finally:
            admin.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": False})
    assert ledger.done == []
