"""PostgreSQL restarted under load: the servers reconnect by themselves, the clients' retries
carry them across, and no acknowledged write is lost.

A PostgreSQL cluster of the drill's own (``_pgcluster.py``: never the machine's shared
one) and two server processes on it, A and B. Clients use the Python SDK
(``Handrail(url, api_key)``) with a retry policy patient enough for an outage: each
logical call keeps one idempotency key across its retries. Workers create paid review
tasks on A and B in turn and decide two in three on the other process; a depositor pays in;
long-polls wait on A for tasks of their own. After a stretch of load the cluster is
stopped at once (``pg_ctl stop -m immediate``: every connection dies, as in a crash),
left down for a few seconds, and started again, while the load goes on. Then the
waiters' tasks are decided on B, so each waiter on A can only learn of it through A's
``LISTEN`` connection, which must have come back by itself. Everything is read back.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.server._live import REVIEW, LiveServer, all_items, api_key, bearer, cli_key

from handrail import Handrail, HandrailError, Money, RetryPolicy

from ._crash import PER_TASK, acknowledged_checks, ledger_totals, minor
from ._drill import STARTUP, Check, Say, check, missing, nothing_lost
from ._pgcluster import PrivateCluster

TITLE = "PostgreSQL restarted under load"
WORKERS = 4
WAITERS = 6
BEFORE = 2.0  # seconds of load before the database goes down
DOWN = 3.0  # seconds it stays down
AFTER = 3.0  # seconds of load once it is back
SETTLE = 6.0  # seconds after it is back before the waiters' tasks are decided
WAKE_BOUND = 10.0  # a waiter woken later than this was not woken by LISTEN/NOTIFY
PATIENT = RetryPolicy(max_attempts=300, base=0.05, cap=1.0, max_retry_after=5.0)
REWARD = {"currency": "USD", "amount": "1.00"}


@dataclass
class RestartOutcome:
    acked_tasks: dict[str, int] = field(default_factory=dict)  # task id → request number
    acked_decisions: dict[str, str] = field(default_factory=dict)
    deposits_acked: set[str] = field(default_factory=set)
    deposits_found: set[str] = field(default_factory=set)
    gave_up: list[str] = field(default_factory=list)  # calls whose retries ran out
    acked_during: int = 0  # acknowledged while the database was down
    acked_after: int = 0  # acknowledged after it came back
    first_write_after: float | None = None  # seconds from "back" to the next acknowledged write
    slowest_call: float = 0.0  # seconds, the longest acknowledged call (retries included)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    woken: dict[str, float | None] = field(default_factory=dict)  # waiter → decision→answer s
    money: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    alive: dict[str, bool] = field(default_factory=dict)  # server process → still running
    timings: dict[str, float] = field(default_factory=dict)


class _Load:
    def __init__(self, out: RestartOutcome) -> None:
        self.out = out
        self.stop = asyncio.Event()
        self.counter = itertools.count()
        self.down_at: float | None = None
        self.back_at: float | None = None

    def acked(self, started: float) -> None:
        now = time.perf_counter()
        self.out.slowest_call = max(self.out.slowest_call, now - started)
        if self.back_at is not None and now >= self.back_at:
            self.out.acked_after += 1
            if self.out.first_write_after is None:
                self.out.first_write_after = now - self.back_at
        elif self.down_at is not None:
            self.out.acked_during += 1

    async def worker(self, agent: Handrail, reviewer: Handrail) -> None:
        while not self.stop.is_set():
            n = next(self.counter)
            started = time.perf_counter()
            try:
                task = await agent.tasks.acreate({**REVIEW, "payout": REWARD, "metadata": {"n": n}})
                self.acked(started)
                self.out.acked_tasks[task.id] = n
                if n % 3 == 0:
                    continue
                kind = "approve" if n % 3 == 1 else "reject"
                started = time.perf_counter()
                decision = {"type": kind} if kind == "approve" else {"type": kind, "message": "no"}
                await reviewer.tasks.adecide(task.id, decision)
                self.acked(started)
                self.out.acked_decisions[task.id] = kind
            except HandrailError as exc:
                self.out.gave_up.append(f"request {n}: {exc}")

    async def depositor(self, admin: Handrail) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            key = f"load-{i}"
            started = time.perf_counter()
            try:
                await admin.ledger.adeposit(Money.parse("1.00", "USD"), key=key)
                self.acked(started)
                self.out.deposits_acked.add(key)
            except HandrailError as exc:
                self.out.gave_up.append(f"deposit {i}: {exc}")
            await asyncio.sleep(0.05)


async def run(workdir: Path, say: Say) -> RestartOutcome:
    out = RestartOutcome()
    cluster = PrivateCluster(workdir / "postgres")
    started = time.perf_counter()
    try:
        await cluster.init()
        await cluster.start()
        url = await cluster.create_database("handrail")
        say(f"a private PostgreSQL cluster on port {cluster.port} (initdb + pg_ctl)")
        admin = await cli_key(url, "acme", "admin", principal="acme-admin")
        a, b = LiveServer(url, workdir), LiveServer(url, workdir)
        try:
            a.start()
            b.start()
            await asyncio.gather(a.ready(STARTUP), b.ready(STARTUP))
            out.timings["start"] = time.perf_counter() - started
            say(f"two server processes on it, A (pid {a.pid}) and B (pid {b.pid})")
            await _drill(out, cluster, a, b, admin, say)
            out.alive = {"A": a.process is not None and a.process.poll() is None}
            out.alive["B"] = b.process is not None and b.process.poll() is None
            await _read_back(out, a, admin, url)
        finally:
            a.stop()
            b.stop()
    finally:
        await cluster.close()
    out.timings["total"] = time.perf_counter() - started
    return out


async def _drill(
    out: RestartOutcome, cluster: PrivateCluster, a: LiveServer, b: LiveServer, admin: str, say: Say
) -> None:
    async with httpx.AsyncClient(base_url=a.url, trust_env=False, timeout=30) as c:
        requester = await api_key(c, admin, "requester", "acme-agent")
        reviewer = await api_key(c, admin, "reviewer", "acme-reviewer")
    clients = {
        name: Handrail(server.url, key, retry=PATIENT, timeout=30)
        for name, server, key in (
            ("agent A", a, requester),
            ("agent B", b, requester),
            ("reviewer A", a, reviewer),
            ("reviewer B", b, reviewer),
            ("admin", a, admin),
        )
    }
    try:
        admin_sdk = clients["admin"]
        await admin_sdk.ledger.adeposit(Money.parse("500.00", "USD"), key="initial")
        out.deposits_acked.add("initial")
        agent = clients["agent A"]
        waited = [
            (await agent.tasks.acreate({**REVIEW, "payout": REWARD})).id for _ in range(WAITERS)
        ]
        waits = {t: asyncio.create_task(agent.tasks.await_(t, timeout=300)) for t in waited}

        load = _Load(out)
        sides = (("agent A", "reviewer B"), ("agent B", "reviewer A"))
        jobs = [
            asyncio.create_task(load.worker(clients[sides[i % 2][0]], clients[sides[i % 2][1]]))
            for i in range(WORKERS)
        ]
        jobs.append(asyncio.create_task(load.depositor(admin_sdk)))
        say(
            f"load through the SDK: {WORKERS} clients creating and deciding on A and B in "
            f"turn, a depositor, {WAITERS} long-polls waiting on A"
        )
        await asyncio.sleep(BEFORE)
        before = len(out.acked_tasks)
        load.down_at = time.perf_counter()
        await cluster.stop("immediate")
        say(f"pg_ctl stop -m immediate after {BEFORE:g} s ({before} creates acknowledged)")
        await asyncio.sleep(DOWN)
        await cluster.start()
        load.back_at = time.perf_counter()
        say(f"pg_ctl start after {DOWN:g} s down; the load went on throughout")
        await asyncio.sleep(AFTER)
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 300)
        say(
            f"load stopped {AFTER:g} s after the restart: {len(out.acked_tasks)} creates and "
            f"{len(out.acked_decisions)} decisions acknowledged ({out.acked_during} writes "
            f"during the outage, {out.acked_after} after); slowest call "
            f"{out.slowest_call:.1f} s"
        )
        await asyncio.sleep(max(0.0, load.back_at + SETTLE - time.perf_counter()))
        if any(w.done() for w in waits.values()):
            say("a waiter returned before its task was decided")
        decide = clients["reviewer B"]
        for task_id, wait in waits.items():
            sent = time.perf_counter()
            await decide.tasks.adecide(task_id, {"type": "approve", "message": "after"})
            try:
                task = await asyncio.wait_for(wait, 90)
                ok = task.status.value == "verified"
                out.woken[task_id] = time.perf_counter() - sent if ok else None
            except (TimeoutError, HandrailError):
                out.woken[task_id] = None
        slowest = max((w for w in out.woken.values() if w is not None), default=0.0)
        say(
            f"decided the waiters' tasks on B, {SETTLE:g} s after the restart: the waiters on A "
            f"answered within {slowest * 1000:.0f} ms"
        )
    finally:
        for sdk in clients.values():
            await sdk.aclose()


async def _read_back(out: RestartOutcome, a: LiveServer, admin: str, url: str) -> None:
    async with httpx.AsyncClient(base_url=a.url, trust_env=False, timeout=30) as c:
        for t in await all_items(c, admin, "/v1/tasks"):
            out.tasks[t["id"]] = {
                "status": t["status"],
                "decision": (t.get("output") or {}).get("type"),
                "n": (t.get("metadata") or {}).get("n"),
            }
        entries = await all_items(c, admin, "/v1/ledger/entries", account="org")
        balance = (await c.get("/v1/balance", headers=bearer(admin))).json()
    out.deposits_found = {
        e["posting_id"].rsplit(":", 1)[1] for e in entries if e["kind"] == "deposit"
    }
    statuses = Counter(t["status"] for t in out.tasks.values())
    out.money = {
        "deposited": sum(e["amount"] for e in entries if e["kind"] == "deposit"),
        "available": minor(balance["available"]),
        "held": minor(balance["held"]),
        "verified": statuses["verified"],
        "open": statuses["posted"],
    }
    out.totals = await ledger_totals(url)


def checks(o: RestartOutcome) -> list[Check]:
    late = {t: w for t, w in o.woken.items() if w is None or w > WAKE_BOUND}
    m = o.money
    return nothing_lost(
        [
            check(
                "both server processes lived through the outage",
                bool(o.alive) and all(o.alive.values()),
                ", ".join(f"{k} {'running' if v else 'GONE'}" for k, v in o.alive.items()),
            ),
            check(
                "the servers reconnected: writes were acknowledged again after the restart",
                o.first_write_after is not None and o.acked_after > 0,
                f"first acknowledged write {o.first_write_after:.1f} s after the database "
                f"was back; {o.acked_after} after it, {o.acked_during} while it was down"
                if o.first_write_after is not None
                else "no write acknowledged after the restart",
            ),
            check(
                "every call of the load was acknowledged in the end (the SDK's retries)",
                not o.gave_up,
                f"gave up: {missing(o.gave_up)}"
                if o.gave_up
                else f"slowest {o.slowest_call:.1f} s",
            ),
            *acknowledged_checks(o.acked_tasks, o.acked_decisions, o.tasks),
            check(
                f"waiters on A woke within {WAKE_BOUND:g} s of a decision on B (LISTEN is back)",
                bool(o.woken) and not late,
                f"late or unanswered: {missing(list(late))}"
                if late
                else f"slowest {max(o.woken.values(), default=0) or 0:.3f} s, "
                "against a 60 s long-poll and a 120 s backstop",
            ),
            check(
                "the books balance",
                bool(o.totals)
                and not any(o.totals.values())
                and m.get("available", 0) + m.get("held", 0) + PER_TASK * m.get("verified", 0)
                == m.get("deposited")
                and m.get("held") == PER_TASK * m.get("open", -1)
                and o.deposits_acked <= o.deposits_found,
                f"ledger sums {o.totals}; deposited {m.get('deposited')} = available "
                f"{m.get('available')} + held {m.get('held')} + 1.10 × {m.get('verified')} "
                f"verified; {len(o.deposits_acked)} acknowledged deposits, "
                f"{len(o.deposits_found)} found",
            ),
        ]
    )
