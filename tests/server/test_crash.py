"""``kill -9`` the server under load, restart it on the same SQLite file: nothing it
acknowledged is lost.

One real ``uvicorn`` process on a SQLite file takes concurrent paid-task creates, review
decisions and deposits over HTTP; every 201/200 it answers is recorded. Long-polls wait
on some tasks; then a webhook endpoint is registered that points at a loopback receiver
which is down, and the load starts. Three seconds after the endpoint is registered the
process is killed with SIGKILL, mid-load.
Then, with the process dead, the outbox is read from the file; the receiver comes up; the
process restarts on the same file, and:

- every acknowledged task exists, and every acknowledged decision stands (``verified``,
  with the decision's type); requests cut off by the crash either happened or not;
- the ledger balances: deposits found = acknowledged ones plus some of those cut off;
  available + held + (reward + fee) × verified tasks = deposits; held = the open tasks'
  holds; the reviewer's pending earnings = reward × verified tasks;
- long-polls cut off by the crash, asked again, return the decisions made before it at
  once, and wake on the decisions made after the restart;
- every outbox row (one per event of every acknowledged change) is delivered, once, with
  a valid signature.

About the webhooks: the first attempt of each event fails (the receiver is down); the
retry schedule's next step is 5 s (±10 %) later, and as the process dies 3 s after the
first event was queued, no row has been tried twice, which the test checks, along with
each row's next attempt being due within that step. The restarted process's delivery
worker retries them all as they come due. Rows the dead process had leased at the moment
it died (``lease_until`` = its lease time + 120 s) would wait out that lease before
another process may take them: the test checks the lease and ends it in the file (as if
the 120 s had passed) instead of waiting two minutes. Nothing else in the file is
touched.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook

from handrail_server.tables import webhook_outbox
from tests.server._live import (
    REVIEW,
    LiveServer,
    Receiver,
    all_items,
    api_key,
    bearer,
    cli_key,
    long_poll,
)

REWARD = {"currency": "USD", "amount": "1.00"}
PER_TASK = 110  # minor units held per paid task: the $1.00 reward + the $0.10 minimum fee
REWARD_MINOR = 100
KILL_AFTER = 3.0  # seconds after the webhook endpoint exists (the first retry is ≥ 4.5 s)
WORKERS = 6
WAITERS = 10
WAKE_BOUND = 2.0


@dataclass
class Load:
    """What the clients asked for, and what the server acknowledged."""

    created: dict[int, str] = field(default_factory=dict)  # n → task id (201)
    tried: set[int] = field(default_factory=set)
    decided: dict[str, str] = field(default_factory=dict)  # task id → decision type (200)
    decision_tried: set[str] = field(default_factory=set)
    deposits: set[str] = field(default_factory=set)  # keys answered 201
    deposit_tried: set[str] = field(default_factory=set)
    cut_off: int = 0  # requests the crash left without an answer
    counter: itertools.count[int] = field(default_factory=itertools.count)


def _decision(n: int) -> dict[str, Any] | None:
    """Every third task stays open; the others are approved or rejected."""
    if n % 3 == 0:
        return None
    return {"type": "approve"} if n % 3 == 1 else {"type": "reject", "message": f"no {n}"}


async def _worker(c: httpx.AsyncClient, requester: str, reviewer: str, load: Load) -> None:
    while True:
        n = next(load.counter)
        load.tried.add(n)
        try:
            made = await c.post(
                "/v1/tasks",
                json={**REVIEW, "payout": REWARD, "metadata": {"n": n}},
                headers=bearer(requester),
            )
            assert made.status_code == 201, made.text
            task_id = made.json()["id"]
            load.created[n] = task_id
            decision = _decision(n)
            if decision is None:
                continue
            load.decision_tried.add(task_id)
            decided = await c.post(
                f"/v1/tasks/{task_id}/decision", json=decision, headers=bearer(reviewer)
            )
            assert decided.status_code == 200, decided.text
            load.decided[task_id] = decision["type"]
        except httpx.TransportError:
            load.cut_off += 1
            return


async def _depositor(c: httpx.AsyncClient, admin: str, load: Load) -> None:
    for i in itertools.count():
        key = f"load-{i}"
        load.deposit_tried.add(key)
        try:
            paid = await c.post(
                "/v1/deposits",
                json={"amount": {"currency": "USD", "amount": "1.00"}},
                headers={**bearer(admin), "Idempotency-Key": key},
            )
        except httpx.TransportError:
            load.cut_off += 1
            return
        assert paid.status_code == 201, paid.text
        load.deposits.add(key)
        await asyncio.sleep(0.02)


def _outbox(url: str, endpoint: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(webhook_outbox).where(webhook_outbox.c.endpoint_id == endpoint)
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _end_leases(url: str, ids: list[str]) -> None:
    """What the 120 s lease's running out would do: the rows may be taken again."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(webhook_outbox)
                .where(webhook_outbox.c.id.in_(ids))
                .values(lease_until=None)
            )
    finally:
        engine.dispose()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _minor(money: dict[str, str]) -> int:
    return round(float(money["amount"]) * 100)


def _events(task_id: str, decided: bool, posted: bool = True) -> set[tuple[str, str]]:
    """The webhooks a task's changes queue (its creation's only when the endpoint existed
    by then)."""
    later = ("task.assigned", "task.submitted", "task.verified") if decided else ()
    return {(task_id, e) for e in ("task.posted", *later) if posted or e != "task.posted"}


async def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    started = time.perf_counter()
    url = f"sqlite:///{tmp_path / 'handrail.db'}"
    admin = await cli_key(url, "acme", "admin", principal="acme-admin")
    receiver = Receiver()  # its port is chosen; nothing listens there yet
    first = LiveServer(url, tmp_path)
    first.start()
    second = LiveServer(url, tmp_path)
    try:
        await first.ready()
        load = Load()
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=first.url, trust_env=False, timeout=20, limits=limits
        ) as c:
            requester = await api_key(c, admin, "requester", "acme-agent")
            reviewer = await api_key(c, admin, "reviewer", "acme-reviewer")
            paid = await c.post(
                "/v1/deposits",
                json={"amount": {"currency": "USD", "amount": "500.00"}},
                headers={**bearer(admin), "Idempotency-Key": "initial"},
            )
            assert paid.status_code == 201, paid.text
            load.deposits.add("initial")
            load.deposit_tried.add("initial")

            waited: list[str] = []
            for _ in range(WAITERS):
                task = await c.post(
                    "/v1/tasks", json={**REVIEW, "payout": REWARD}, headers=bearer(requester)
                )
                assert task.status_code == 201, task.text
                waited.append(task.json()["id"])
            polls = [asyncio.create_task(long_poll(c, requester, i)) for i in waited]

            made = await c.post("/v1/webhooks", json={"url": receiver.url}, headers=bearer(admin))
            assert made.status_code == 201, made.text
            hooks_from = time.monotonic()  # no outbox row is older than this
            endpoint, secret = made.json()["id"], made.json()["secret"]

            jobs = [
                asyncio.create_task(_worker(c, requester, reviewer, load)) for _ in range(WORKERS)
            ]
            jobs.append(asyncio.create_task(_depositor(c, admin, load)))
            await asyncio.sleep(1.0)
            # half the waiters' tasks are decided before the crash, the rest after it
            early = waited[: WAITERS // 2]
            for decided in await asyncio.gather(
                *(
                    c.post(
                        f"/v1/tasks/{task_id}/decision",
                        json={"type": "approve", "message": "before"},
                        headers=bearer(reviewer),
                    )
                    for task_id in early
                )
            ):
                assert decided.status_code == 200, decided.text
            await asyncio.sleep(max(0.0, hooks_from + KILL_AFTER - time.monotonic()))
            for job in jobs:
                assert not job.done(), job.exception() or "the load stopped before the crash"
            late_by = time.monotonic() - hooks_from - KILL_AFTER
            assert late_by < 1.0, f"the kill comes {late_by:.1f} s late: retries may have begun"
            first.kill()
            killed_at = datetime.now(UTC)
            await asyncio.gather(*jobs)
            before = await asyncio.gather(*polls, return_exceptions=True)

        # answered before the crash: the waiters of the early decisions; cut off: the rest
        for task_id, got in zip(waited, before, strict=True):
            if task_id in early:
                assert not isinstance(got, BaseException), got
                assert got[0]["status"] == "verified"
            else:
                assert isinstance(got, httpx.TransportError), got
        assert load.cut_off >= WORKERS, "the crash should cut requests off mid-flight"

        # -- the outbox, read from the file while no process runs
        rows = _outbox(url, endpoint)
        assert {r["state"] for r in rows} == {"pending"}  # the receiver was down
        assert max(r["attempts"] for r in rows) <= 1, "a second attempt came before 4.5 s"
        for r in rows:
            due = _utc(r["next_attempt_at"])
            if r["attempts"]:
                assert r["last_error"], r
                # the schedule's second step: 5 s ± 10 % after the failed first attempt
                assert _utc(r["created_at"]) + timedelta(seconds=4.5) <= due, r
                assert due <= killed_at + timedelta(seconds=5.5), r
            else:
                assert due == _utc(r["created_at"]), r
        leased = [r["id"] for r in rows if r["lease_until"] and _utc(r["lease_until"]) > killed_at]
        for r in rows:
            if r["id"] in leased:
                assert _utc(r["lease_until"]) <= killed_at + timedelta(seconds=121), r
        queued = {(r["payload"]["data"]["id"], r["event_type"]) for r in rows}
        for task_id in load.created.values():
            assert (task_id, "task.posted") in queued, task_id
        for task_id in [*load.decided, *early]:
            assert _events(task_id, True, task_id not in waited) <= queued, task_id
        _end_leases(url, leased)

        # -- the receiver comes up; the process starts again on the same file
        receiver.start()
        second.start()
        await second.ready()
        restarted = time.perf_counter()
        async with httpx.AsyncClient(
            base_url=second.url, trust_env=False, timeout=20, limits=limits
        ) as c:
            # long-polls asked again: decided before the crash → at once
            again = [asyncio.create_task(long_poll(c, requester, i)) for i in waited]
            await asyncio.sleep(0.5)
            for task_id, poll in zip(waited, again, strict=True):
                if task_id in early:
                    task, _ = await poll
                    assert task["status"] == "verified"
                    assert task["output"]["message"] == "before"
                else:
                    assert not poll.done(), task_id
            # ... and the others wake on decisions made now
            late: list[float] = []
            for task_id, poll in zip(waited, again, strict=True):
                if task_id in early:
                    continue
                sent = time.perf_counter()
                decided = await c.post(
                    f"/v1/tasks/{task_id}/decision",
                    json={"type": "approve", "message": "after"},
                    headers=bearer(reviewer),
                )
                assert decided.status_code == 200, decided.text
                task, woke = await poll
                assert task["status"] == "verified" and task["output"]["message"] == "after"
                late.append(woke - sent)
            assert max(late) < WAKE_BOUND, late

            # -- tasks and decisions
            tasks = {t["id"]: t for t in await all_items(c, requester, "/v1/tasks")}
            for task_id in load.created.values():
                assert task_id in tasks, f"acknowledged task {task_id} is gone"
            for task_id, kind in load.decided.items():
                task = tasks[task_id]
                assert task["status"] == "verified", task
                assert task["output"]["type"] == kind and task["output"]["reviewer_id"]
            loaded = {t["id"] for t in tasks.values()} - set(waited)
            for task_id in loaded:
                task = tasks[task_id]
                assert task["metadata"]["n"] in load.tried
                if task_id in load.decision_tried:  # answered or cut off
                    assert task["status"] in ("posted", "verified"), task
                else:
                    assert task["status"] == "posted", task
            found_unacked = loaded - set(load.created.values())

            # -- the ledger
            entries = await all_items(c, admin, "/v1/ledger/entries", account="org")
            deposit_keys = {
                e["posting_id"].rsplit(":", 1)[1] for e in entries if e["kind"] == "deposit"
            }
            assert load.deposits <= deposit_keys <= load.deposit_tried
            deposited = sum(e["amount"] for e in entries if e["kind"] == "deposit")
            assert deposited == 50_000 + 100 * (len(deposit_keys) - 1)
            balance = (await c.get("/v1/balance", headers=bearer(admin))).json()
            available, held = _minor(balance["available"]), _minor(balance["held"])
            assert available == sum(e["amount"] for e in entries)
            verified = [t for t in tasks.values() if t["status"] == "verified"]
            still_open = [t for t in tasks.values() if t["status"] == "posted"]
            assert len(verified) + len(still_open) == len(tasks)
            assert held == PER_TASK * len(still_open)
            assert available + held + PER_TASK * len(verified) == deposited
            earnings = (await c.get("/v1/earnings", headers=bearer(reviewer))).json()
            assert _minor(earnings["pending"]) == REWARD_MINOR * len(verified)

            # -- webhooks: every queued event is delivered, once, signed
            expected: set[tuple[str, str]] = set()
            for t in tasks.values():
                expected |= _events(t["id"], t["status"] == "verified", t["id"] not in waited)
            deadline = time.monotonic() + 20
            while True:
                rows = _outbox(url, endpoint)
                if rows and all(r["state"] == "delivered" for r in rows):
                    break
                assert time.monotonic() < deadline, Counter(r["state"] for r in rows)
                await asyncio.sleep(0.2)
            delivered_in = time.perf_counter() - restarted
        await asyncio.sleep(0.5)  # room for a duplicate, should there be one
        received = receiver.snapshot()
        times = Counter(r.webhook_id for r in received)
        assert set(times) == {r["id"] for r in rows}
        assert set(times.values()) == {1}, {i: n for i, n in times.items() if n > 1}
        hook = Webhook(secret)
        seen = set()
        for r in received:
            payload = hook.verify(r.body, r.headers)
            seen.add((payload["data"]["id"], payload["type"]))
        assert seen == {(r["payload"]["data"]["id"], r["event_type"]) for r in rows} == expected
        retried = sum(1 for r in rows if r["attempts"] == 2)
        print(
            f"\nbefore the kill: {len(load.created)} creates and {len(load.decided)} decisions"
            f" acknowledged, {len(load.deposits)} deposits; {load.cut_off} requests cut off"
            f" ({len(found_unacked)} of their tasks were committed anyway)\n"
            f"after the restart: {len(tasks)} tasks ({len(verified)} verified), balance"
            f" {available / 100:.2f} + held {held / 100:.2f}; {len(leased)} leases ended;"
            f" {len(received)} webhooks delivered ({retried} on their second attempt) within"
            f" {delivered_in:.1f} s; late waiters woke in {max(late) * 1000:.0f} ms at most;"
            f" {time.perf_counter() - started:.1f} s in all"
        )
    finally:
        first.stop()
        second.stop()
        receiver.stop()
