"""``HandrailResumer``: each decision resumes its thread exactly once, from events, from
webhooks, after a restart, when an event never came, and with resumes racing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from standardwebhooks import Webhook

from handrail import Decision, Handrail
from handrail_langgraph import (
    CheckpointCursor,
    HandrailResumer,
    MemoryCursor,
    PostgresThreadLock,
)
from handrail_langgraph._locks import advisory_key
from tests.langgraph.conftest import (
    PAYMENT,
    Ledger,
    Outcomes,
    SaverFactory,
    WatchedCursor,
    payment_graph,
    postgres_saver,
    postgres_schema_url,
    running,
    task_of,
    thread,
)

START_STATE = {"action": PAYMENT}


def pause_one(graph: Any) -> tuple[str, str]:
    """Run a new thread to its pause; its thread id and task id."""
    config = thread()
    first = graph.invoke(START_STATE, config, version="v2")
    return config["configurable"]["thread_id"], task_of(first.interrupts[0])


def last_seq(hr: Handrail, task_id: str) -> int:
    return max(e.seq or 0 for e in hr.tasks.history(task_id))


# ---------------------------------------------------------------- one task


def test_what_a_resume_comes_to(hr: Handrail, ledger: Ledger, outcomes: Outcomes) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    resumer = HandrailResumer(graph, hr, on_resumption=outcomes)
    thread_id, task_id = pause_one(graph)
    assert resumer.resume_task("0" * 32).status == "not_found"
    assert resumer.resume_task(task_id).status == "undecided"
    other = hr.tasks.create(kind="review", action={"name": "x"})  # no graph paused on it
    assert resumer.resume_task(other.id).status == "not_paused"
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    done = resumer.resume_task(task_id)
    assert (done.status, done.task_id, done.thread_id) == ("resumed", task_id, thread_id)
    assert done.tasks == (task_id,) and len(done.interrupts) == 1
    assert resumer.resume_task(task_id).status == "not_pending"
    assert ledger.of("pay") == [PAYMENT["args"]]
    assert [o.status for o in outcomes.pending()] == [
        "not_found",
        "undecided",
        "not_paused",
        "resumed",
        "not_pending",
    ]


def test_racing_resumes_resume_once(hr: Handrail, ledger: Ledger) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    _, task_id = pause_one(graph)
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    resumers = [HandrailResumer(graph, hr) for _ in range(2)]  # two, as in two routes
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda i: resumers[i % 2].resume_task(task_id), range(8)))
    assert sorted(o.status for o in found) == ["not_pending"] * 7 + ["resumed"]
    assert ledger.of("pay") == [PAYMENT["args"]]


class NoLock:
    def acquire(self, thread_id: str) -> None:
        pass

    def release(self, thread_id: str) -> None:
        pass


def test_without_the_lock_racing_resumes_would_pay_twice(hr: Handrail, ledger: Ledger) -> None:
    """The control for the test above: two resumes that both read the thread before either
    resumes it run the payment twice. The lock is what prevents it."""
    graph = payment_graph(hr, ledger, InMemorySaver())
    _, task_id = pause_one(graph)
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    both_read = threading.Barrier(2, timeout=10)

    class ReadThenWait:
        checkpointer = graph.checkpointer

        def get_state(self, config: Any) -> Any:
            state = graph.get_state(config)
            if state.interrupts:
                both_read.wait()
            return state

        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            return graph.invoke(*args, **kwargs)

    resumer = HandrailResumer(ReadThenWait(), hr, lock=NoLock())  # type: ignore[arg-type]
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda _: resumer.resume_task(task_id), range(2)))
    assert [o.status for o in found] == ["resumed", "resumed"]
    assert len(ledger.of("pay")) == 2


# ---------------------------------------------------------------- following events


def test_run_follows_decisions_and_a_restart_goes_on_from_its_cursor(
    durable_saver: SaverFactory, ledger: Ledger, outcomes: Outcomes
) -> None:
    """SQLite and PostgreSQL checkpointers: the resumer follows the event stream, keeps its
    cursor in the checkpointer, and a new resumer (a restarted process: new connections)
    resumes what was decided while none ran, once."""
    with Handrail.local() as hr:
        alice = hr.as_reviewer("alice")
        with durable_saver() as saver:
            graph = payment_graph(hr, ledger, saver)
            first_thread, first = pause_one(graph)
            resumer = HandrailResumer(graph, hr, on_resumption=outcomes)
            with running(resumer):
                alice.tasks.decide(first, Decision.approve())
                got = outcomes.until("resumed")
                assert (got.task_id, got.thread_id) == (first, first_thread)
                assert ledger.of("pay") == [PAYMENT["args"]]
            assert CheckpointCursor(saver).load() == last_seq(hr, first)
            second_thread, second = pause_one(graph)
        alice.tasks.decide(second, Decision.modify({"to": "dan", "amount": 5}))  # none runs
        with durable_saver() as saver:  # the restart
            graph = payment_graph(hr, ledger, saver)
            resumer = HandrailResumer(graph, hr, on_resumption=outcomes)
            with running(resumer):
                got = outcomes.until("resumed")  # reconciling on connect found it
                assert (got.thread_id, got.tasks) == (second_thread, (second,))
                replayed = outcomes.until("not_pending")  # the decision's event, from the cursor
                assert replayed.task_id == second
            assert CheckpointCursor(saver).load() == last_seq(hr, second)
            assert graph.get_state({"configurable": {"thread_id": second_thread}}).next == ()
    assert ledger.of("pay") == [PAYMENT["args"], {"to": "dan", "amount": 5}]
    resumed = [o.thread_id for o in outcomes.seen + outcomes.pending() if o.status == "resumed"]
    assert resumed == [first_thread, second_thread]


def test_a_decision_whose_event_never_came_is_found_by_reconciling(
    hr: Handrail, ledger: Ledger, outcomes: Outcomes
) -> None:
    """The cursor is already past the decision's event (as when the stream skipped it):
    reconciling on connect finds the thread waiting on a decided task and resumes it."""
    graph = payment_graph(hr, ledger, InMemorySaver())
    thread_id, task_id = pause_one(graph)
    undecided_thread, _ = pause_one(graph)
    hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
    cursor = MemoryCursor(last_seq(hr, task_id))
    resumer = HandrailResumer(graph, hr, cursor=cursor, on_resumption=outcomes)
    with running(resumer):
        got = outcomes.until("resumed")
    assert (got.thread_id, got.task_id, got.tasks) == (thread_id, None, (task_id,))
    assert ledger.of("pay") == [PAYMENT["args"]]
    assert graph.get_state({"configurable": {"thread_id": undecided_thread}}).interrupts


def test_a_decision_the_stream_skips_is_found_while_connected(
    hr: Handrail, ledger: Ledger, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on PostgreSQL when a transaction that took its event's sequence number first
    commits last: the stream never delivers the decision. Reconciling now and then (here
    every 0.2 s) still resumes the thread."""
    graph = payment_graph(hr, ledger, InMemorySaver())
    thread_id, task_id = pause_one(graph)
    streams = hr.tasks.aevents

    class Skipping:
        def __init__(self, after: int | None = None) -> None:
            self.inner = streams(after)

        async def __aenter__(self) -> Skipping:
            await self.inner.__aenter__()
            return self

        async def __aexit__(self, *exc: object) -> None:
            await self.inner.__aexit__(None, None, None)

        def __aiter__(self) -> Skipping:
            return self

        async def __anext__(self) -> Any:
            while True:
                event = await anext(self.inner)
                if event.task_id != task_id:
                    return event

    monkeypatch.setattr(hr.tasks, "aevents", Skipping)
    resumer = HandrailResumer(graph, hr, reconcile_every=0.2, on_resumption=outcomes)
    with running(resumer):
        hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
        got = outcomes.until("resumed")
    assert (got.thread_id, got.task_id, got.tasks) == (thread_id, None, (task_id,))
    assert ledger.of("pay") == [PAYMENT["args"]]


def test_a_thread_that_fails_to_resume_does_not_hold_up_the_others(
    hr: Handrail, ledger: Ledger
) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    broken_thread, broken = pause_one(graph)
    fine_thread, fine = pause_one(graph)
    alice = hr.as_reviewer("alice")
    for task_id in (broken, fine):
        alice.tasks.decide(task_id, Decision.approve())

    class Failing:
        checkpointer = graph.checkpointer
        get_state = staticmethod(graph.get_state)

        def invoke(self, command: Any, config: Any, **kwargs: Any) -> Any:
            if config["configurable"]["thread_id"] == broken_thread:
                raise RuntimeError("the checkpointer is down for this one")
            return graph.invoke(command, config, **kwargs)

    resumer = HandrailResumer(Failing(), hr)  # type: ignore[arg-type]
    assert [r.thread_id for r in resumer.reconcile()] == [fine_thread]
    assert ledger.of("pay") == [PAYMENT["args"]]
    with pytest.raises(RuntimeError, match="down"):
        resumer.resume_task(broken)  # still waiting: the next try (or reconcile) goes on
    assert HandrailResumer(graph, hr).reconcile()[0].thread_id == broken_thread
    assert len(ledger.of("pay")) == 2


def test_events_in_flight_hold_the_cursor_back(
    hr: Handrail, ledger: Ledger, outcomes: Outcomes
) -> None:
    """The cursor passes an event only once it is handled: a resume still running keeps
    it before its event, though a later event is handled already."""
    graph = payment_graph(hr, ledger, InMemorySaver())
    _, slow = pause_one(graph)
    release, started = threading.Event(), threading.Event()

    class Slow:
        checkpointer = graph.checkpointer
        get_state = staticmethod(graph.get_state)

        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            started.set()
            assert release.wait(20)
            return graph.invoke(*args, **kwargs)

    cursor = WatchedCursor()
    resumer = HandrailResumer(Slow(), hr, cursor=cursor, on_resumption=outcomes)  # type: ignore[arg-type]
    with running(resumer):
        hr.as_reviewer("alice").tasks.decide(slow, Decision.approve())
        assert started.wait(20)
        later = hr.tasks.create(kind="review", action={"name": "later"})
        hr.tasks.cancel(later.id, "not needed")
        assert outcomes.until("not_paused").task_id == later.id  # handled meanwhile
        assert (cursor.load() or 0) < last_seq(hr, slow)
        release.set()
        assert outcomes.until("resumed").task_id == slow
        assert cursor.wait_for(lambda seq: seq == last_seq(hr, later.id))
    assert ledger.of("pay") == [PAYMENT["args"]]


async def test_an_async_graph_on_an_async_saver_follows_events_on_its_loop(
    tmp_path: Path, hr: Handrail, ledger: Ledger, outcomes: Outcomes
) -> None:
    """``asynchronous=True``: ``arun()`` on the caller's loop, ``ainvoke`` and an
    ``AsyncSqliteSaver`` (whose connection belongs to that loop)."""
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        graph = payment_graph(hr, ledger, saver)
        config = thread()
        first = await graph.ainvoke({"action": PAYMENT}, config, version="v2")
        task_id = task_of(first.interrupts[0])
        resumer = HandrailResumer(graph, hr, asynchronous=True, on_resumption=outcomes)
        following = asyncio.create_task(resumer.arun())
        assert await asyncio.to_thread(resumer.connected.wait, 20)
        await hr.as_reviewer("alice").tasks.adecide(task_id, Decision.approve())
        got = await asyncio.to_thread(outcomes.until, "resumed")
        resumer.stop()
        await asyncio.wait_for(following, 20)  # returns once stopped
        assert got.task_id == task_id
        assert (await graph.aget_state(config)).values["paid"] == [PAYMENT]
        saved = await asyncio.to_thread(CheckpointCursor(saver).load)  # from a thread
        assert saved == last_seq(hr, task_id)
    assert ledger.of("pay") == [PAYMENT["args"]]


# ---------------------------------------------------------------- across processes


@pytest.mark.postgres
def test_postgres_locks_keep_other_processes_out(postgres_url: str, ledger: Ledger) -> None:
    """Another session holding the thread's advisory lock (as another resumer process
    would) holds the resume back until it lets go; then the thread resumes, once."""
    with Handrail.local() as hr, postgres_schema_url(postgres_url) as url, postgres_saver(url) as s:
        graph = payment_graph(hr, ledger, s)
        thread_id, task_id = pause_one(graph)
        hr.as_reviewer("alice").tasks.decide(task_id, Decision.approve())
        lock = PostgresThreadLock(postgres_url)
        resumer = HandrailResumer(graph, hr, lock=lock)
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (advisory_key(thread_id),))
            with ThreadPoolExecutor(1) as pool:
                resuming = pool.submit(resumer.resume_task, task_id)
                deadline = time.monotonic() + 20
                while not _waiting_for_advisory_lock(other) and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert _waiting_for_advisory_lock(other) and not resuming.done()
                assert ledger.done == []
                other.execute("SELECT pg_advisory_unlock(%s)", (advisory_key(thread_id),))
                assert resuming.result(timeout=20).status == "resumed"
        assert resumer.resume_task(task_id).status == "not_pending"
        lock.close()
    assert ledger.of("pay") == [PAYMENT["args"]]


def _waiting_for_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return bool(row and row[0])


# ---------------------------------------------------------------- webhooks

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def signed(body: dict[str, Any], secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, Any]:
    content = json.dumps(body)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, content),
    }
    return {"content": content, "headers": headers}


async def test_webhooks_resume_once_and_only_when_signed(
    hr: Handrail, ledger: Ledger, outcomes: Outcomes
) -> None:
    graph = payment_graph(hr, ledger, InMemorySaver())
    thread_id, task_id = pause_one(graph)
    resumer = HandrailResumer(graph, hr, on_resumption=outcomes)
    app = FastAPI()
    app.include_router(resumer.router(SECRET))
    await hr.as_reviewer("alice").tasks.adecide(task_id, Decision.approve())
    event = {"type": "task.verified", "data": {"id": task_id, "status": "verified"}}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        forged = await client.post(
            "/handrail/webhooks", **signed(event, secret="whsec_" + "A" * 32)
        )
        assert forged.status_code == 401
        assert forged.json()["code"] == "invalid_signature" and ledger.done == []
        unsigned = await client.post("/handrail/webhooks", json=event)
        assert unsigned.status_code == 401 and ledger.done == []
        posted = {"type": "task.posted", "data": {"id": task_id}}
        ignored = await client.post("/handrail/webhooks", **signed(posted))
        assert ignored.json() == {"status": "ignored", "type": "task.posted"}
        first = await client.post("/handrail/webhooks", **signed(event))
        assert first.status_code == 200
        assert first.json()["status"] == "resumed" and first.json()["thread_id"] == thread_id
        again = await client.post("/handrail/webhooks", **signed(event, msg_id="msg_2"))
        assert again.json()["status"] == "not_pending"  # a retried delivery: nothing runs
    assert ledger.of("pay") == [PAYMENT["args"]]


# ---------------------------------------------------------------- configuration


def test_configuration(hr: Handrail, ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="checkpointer"):
        HandrailResumer(payment_graph(hr, ledger, None), hr)
    graph = payment_graph(hr, ledger, InMemorySaver())
    merged = HandrailResumer(
        graph, hr, config={"recursion_limit": 9, "configurable": {"user": "u1"}}
    )
    assert merged.config_for("t1") == {
        "recursion_limit": 9,
        "configurable": {"user": "u1", "thread_id": "t1"},
    }
    custom = HandrailResumer(graph, hr, config=lambda t: {"configurable": {"thread_id": t * 2}})
    assert custom.config_for("ab") == {"configurable": {"thread_id": "abab"}}
    with pytest.raises(ValueError, match="concurrency"):
        HandrailResumer(graph, hr, concurrency=0)
