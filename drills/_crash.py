"""How a crash drill is staged (the SQLite drill with one process, the PostgreSQL drill
with two, A and B, on one database).

Real ``uvicorn`` processes take a load over HTTP: workers creating paid review tasks
(each with its own ``Idempotency-Key``) and deciding two in three of them, a depositor,
and long-polls parked on tasks of their own, half of which are decided before the crash.
A webhook receiver that deduplicates by ``webhook-id`` is registered for every event.
Process A is killed with SIGKILL mid-load; with two processes, B goes on serving its
share of the load a while longer. A then starts again on the same database, the
long-polls the crash cut off ask again, the other waiters' tasks are decided, and
everything is read back: tasks, decisions, the ledger (over HTTP and as the database's
own sums) and the webhooks.

A sandbox runs beside the live load in the same organisation: a client creating paid tasks
with a sandbox key (funded by the sandbox's own mint, no deposit), answered by the
simulated reviewers. Its tasks must all be there afterwards, in the sandbox only, and its
books must balance on their own, while the live books above stay exact to the cent.

A webhook request the kill cut short (its headers sent, its body not) is no delivery:
the receiver, as any HTTP server would, drops it (the drill says how many), and the row,
never marked delivered, is sent again whole. Each (task, event) pair the read-back does
not explain (received but not expected, expected but missing, under two webhook-ids, or
unsigned) is named in the report.

Rows of the webhook outbox that the dead process had leased (``lease_until``: the lease
time + 120 s) would wait out that lease before another process may take them; the drill
ends those leases in the database, as if the 120 s had passed, and says how many.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError
from tests.server._live import (
    REVIEW,
    LiveServer,
    Receiver,
    all_items,
    api_key,
    bearer,
    cli_key,
)

from handrail.ledger import Ledger
from handrail.store.sql import SqlStore
from handrail_server.tables import webhook_outbox

from ._drill import STARTUP, Check, Say, check, missing, nothing_lost

REWARD = {"currency": "USD", "amount": "1.00"}
PER_TASK = 110  # minor units held per paid task: the $1.00 reward + the $0.10 minimum fee
REWARD_MINOR = 100
FUNDS_MINOR = 50_000
WORKERS = 6
WAITERS = 10
KILL_AFTER = 2.5  # seconds of load before the kill
SURVIVOR_LOAD = 1.5  # seconds more of load on the other process (two processes)
EVENTS = ("task.posted", "task.assigned", "task.submitted", "task.verified")


@dataclass(frozen=True)
class Delivery:
    """One request the webhook receiver got."""

    webhook_id: str
    task_id: str
    event: str
    signed: bool  # the Standard Webhooks signature verified


@dataclass
class CrashOutcome:
    """What the clients were told before the crash, and what was there after it."""

    processes: int
    acked_tasks: dict[str, int] = field(default_factory=dict)  # task id → request number
    acked_decisions: dict[str, str] = field(default_factory=dict)  # task id → decision type
    cut_off: int = 0  # requests the crash left without an answer
    unexpected: list[str] = field(default_factory=list)  # other failures, before the crash
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # after: id → facts
    waiters: dict[str, str] = field(default_factory=dict)  # task id → its decision's message
    answered: dict[str, str | None] = field(default_factory=dict)  # what each waiter got
    deposits_acked: set[str] = field(default_factory=set)
    deposits_tried: set[str] = field(default_factory=set)
    deposits_found: set[str] = field(default_factory=set)
    money: dict[str, int] = field(default_factory=dict)  # minor units and task counts
    totals: dict[str, int] = field(default_factory=dict)  # the ledger's sum per currency
    outbox: dict[str, str] = field(default_factory=dict)  # outbox row id → state
    expected_events: set[tuple[str, str]] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    survivor_served: int = 0  # requests the other process answered after the kill
    survivor_failed: int = 0
    leases_ended: int = 0
    cut_short: int = 0  # webhook requests whose sender died mid-body (never delivered)
    sandbox_acked: set[str] = field(default_factory=set)  # sandbox tasks acknowledged
    sandbox_tasks: dict[str, str] = field(default_factory=dict)  # after: id → status
    sandbox_money: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- the load


@dataclass
class _Keys:
    admin: str
    requester: str
    reviewer: str
    sandbox_admin: str = ""
    sandbox_requester: str = ""


def _decision(n: int) -> dict[str, Any] | None:
    """Every third task stays open; the others are approved or rejected."""
    if n % 3 == 0:
        return None
    return {"type": "approve"} if n % 3 == 1 else {"type": "reject", "message": f"no {n}"}


class _Load:
    def __init__(self, out: CrashOutcome, keys: _Keys, survivor: httpx.AsyncClient | None):
        self.out = out
        self.keys = keys
        self.survivor = survivor
        self.killed = False
        self.stop = asyncio.Event()
        self.counter = itertools.count()

    def _ok(self, c: httpx.AsyncClient) -> None:
        if self.killed and c is self.survivor:
            self.out.survivor_served += 1

    def _failed(self, c: httpx.AsyncClient, what: str) -> None:
        if c is self.survivor:
            self.out.survivor_failed += 1
        elif self.killed:
            self.out.cut_off += 1
        else:
            self.out.unexpected.append(what)

    async def worker(self, c: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            n = next(self.counter)
            try:
                made = await c.post(
                    "/v1/tasks",
                    json={**REVIEW, "payout": REWARD, "metadata": {"n": n}},
                    headers={**bearer(self.keys.requester), "Idempotency-Key": f"create-{n}"},
                )
                if made.status_code != 201:
                    self._failed(c, f"create {n}: {made.status_code} {made.text[:200]}")
                    return
                self._ok(c)
                task_id = made.json()["id"]
                self.out.acked_tasks[task_id] = n
                decision = _decision(n)
                if decision is None:
                    continue
                decided = await c.post(
                    f"/v1/tasks/{task_id}/decision",
                    json=decision,
                    headers=bearer(self.keys.reviewer),
                )
                if decided.status_code != 200:
                    self._failed(c, f"decide {n}: {decided.status_code} {decided.text[:200]}")
                    return
                self._ok(c)
                self.out.acked_decisions[task_id] = decision["type"]
            except httpx.TransportError as exc:
                self._failed(c, f"request {n}: {type(exc).__name__}")
                return

    async def sandbox(self, c: httpx.AsyncClient) -> None:
        """Paid tasks in the organisation's sandbox: no deposit, its mint funds them."""
        for i in itertools.count():
            if self.stop.is_set():
                return
            try:
                made = await c.post(
                    "/v1/tasks",
                    json={**REVIEW, "payout": REWARD, "metadata": {"sandbox": i}},
                    headers={**bearer(self.keys.sandbox_requester), "Idempotency-Key": f"sb-{i}"},
                )
            except httpx.TransportError as exc:
                self._failed(c, f"sandbox create {i}: {type(exc).__name__}")
                return
            if made.status_code != 201:
                self._failed(c, f"sandbox create {i}: {made.status_code} {made.text[:200]}")
                return
            self._ok(c)
            self.out.sandbox_acked.add(made.json()["id"])
            await asyncio.sleep(0.01)

    async def depositor(self, c: httpx.AsyncClient) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            key = f"load-{i}"
            self.out.deposits_tried.add(key)
            try:
                paid = await c.post(
                    "/v1/deposits",
                    json={"amount": {"currency": "USD", "amount": "1.00"}},
                    headers={**bearer(self.keys.admin), "Idempotency-Key": key},
                )
            except httpx.TransportError as exc:
                self._failed(c, f"deposit {i}: {type(exc).__name__}")
                return
            if paid.status_code != 201:
                self._failed(c, f"deposit {i}: {paid.status_code} {paid.text[:200]}")
                return
            self._ok(c)
            self.out.deposits_acked.add(key)
            await asyncio.sleep(0.02)


async def _wait(c: httpx.AsyncClient, key: str, task_id: str) -> str | None:
    """Long-poll (20 s at a time, within the client's timeout) until the task is terminal:
    the message of its decision."""
    while True:
        got = await c.get(f"/v1/tasks/{task_id}/wait?timeout=20", headers=bearer(key))
        got.raise_for_status()
        task = got.json()
        if task["status"] == "verified":
            message: str | None = (task.get("output") or {}).get("message")
            return message


# ---------------------------------------------------------------- the database


async def in_store(url: str, step: Callable[[sa.Connection], Any]) -> Any:
    store = await SqlStore.open(url, create=False)
    try:
        return await store.run(step)
    finally:
        await store.close()


async def ledger_totals(url: str) -> dict[str, int]:
    store = await SqlStore.open(url, create=False)
    try:
        return {str(k): v for k, v in (await Ledger(store).totals()).items()}
    finally:
        await store.close()


def outbox_states(conn: sa.Connection) -> dict[str, str]:
    rows = conn.execute(sa.select(webhook_outbox.c.id, webhook_outbox.c.state))
    return {r.id: r.state for r in rows}


def _end_leases(after: datetime) -> Callable[[sa.Connection], int]:
    """Pending rows leased beyond ``after`` may be taken again (what the lease's running
    out would do); how many there were."""

    def step(conn: sa.Connection) -> int:
        leased = (
            webhook_outbox.c.state == "pending",
            webhook_outbox.c.lease_until.is_not(None),
            webhook_outbox.c.lease_until > after,
        )
        done = conn.execute(sa.update(webhook_outbox).where(*leased).values(lease_until=None))
        return int(done.rowcount or 0)

    return step


def minor(money: dict[str, str]) -> int:
    return round(float(money["amount"]) * 100)


# ---------------------------------------------------------------- the drill


async def crash(database_url: str, workdir: Path, processes: int, say: Say) -> CrashOutcome:
    """The drill on ``database_url`` with ``processes`` server processes (1 or 2)."""
    out = CrashOutcome(processes)
    started = time.perf_counter()
    admin = await cli_key(database_url, "acme", "admin", principal="acme-admin")
    servers = [LiveServer(database_url, workdir) for _ in range(processes)]
    receiver = Receiver()
    restarted = LiveServer(database_url, workdir)
    try:
        for s in servers:
            s.start()
        await asyncio.gather(*(s.ready(STARTUP) for s in servers))
        receiver.start()
        out.timings["start"] = time.perf_counter() - started
        say(f"started {processes} server process(es) on {database_url.split(':')[0]}")
        await _drill(out, servers, restarted, receiver, admin, say, database_url)
    finally:
        for s in (*servers, restarted):
            s.stop()
        receiver.stop()
    out.timings["total"] = time.perf_counter() - started
    return out


async def _drill(
    out: CrashOutcome,
    servers: list[LiveServer],
    restarted: LiveServer,
    receiver: Receiver,
    admin: str,
    say: Say,
    url: str,
) -> None:
    limits = httpx.Limits(max_connections=100)

    def client(server: LiveServer) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30, limits=limits)

    clients = [client(s) for s in servers]
    first, last = clients[0], clients[-1]
    try:
        keys = _Keys(
            admin,
            await api_key(first, admin, "requester", "acme-agent"),
            await api_key(first, admin, "reviewer", "acme-reviewer"),
            await api_key(first, admin, "admin", "acme-sandbox-admin", sandbox=True),
            await api_key(first, admin, "requester", "acme-sandbox-agent", sandbox=True),
        )
        made = await first.post("/v1/webhooks", json={"url": receiver.url}, headers=bearer(admin))
        made.raise_for_status()
        secret = made.json()["secret"]
        paid = await first.post(
            "/v1/deposits",
            json={"amount": {"currency": "USD", "amount": f"{FUNDS_MINOR / 100:.2f}"}},
            headers={**bearer(admin), "Idempotency-Key": "initial"},
        )
        paid.raise_for_status()
        out.deposits_acked.add("initial")
        out.deposits_tried.add("initial")

        # long-polls, each on one process, on tasks of their own
        waited: list[tuple[str, httpx.AsyncClient]] = []
        for i in range(WAITERS):
            c = clients[i % len(clients)]
            task = await c.post(
                "/v1/tasks", json={**REVIEW, "payout": REWARD}, headers=bearer(keys.requester)
            )
            task.raise_for_status()
            waited.append((task.json()["id"], c))
        polls = {t: asyncio.create_task(_wait(c, keys.requester, t)) for t, c in waited}
        early = [t for t, _ in waited[: WAITERS // 2]]
        out.waiters = {t: ("before" if t in early else "after") for t, _ in waited}

        load = _Load(out, keys, last if len(clients) > 1 else None)
        jobs = [asyncio.create_task(load.worker(clients[i % len(clients)])) for i in range(WORKERS)]
        jobs.append(asyncio.create_task(load.depositor(first)))
        jobs.append(asyncio.create_task(load.sandbox(first)))
        say(
            f"load: {WORKERS} clients creating paid review tasks and deciding two in three, a "
            f"depositor, and {WAITERS} long-polls, spread over {len(clients)} process(es)"
        )
        await asyncio.sleep(1.0)
        for task_id in early:  # decided before the crash (on the last process)
            decided = await last.post(
                f"/v1/tasks/{task_id}/decision",
                json={"type": "approve", "message": "before"},
                headers=bearer(keys.reviewer),
            )
            decided.raise_for_status()
        await asyncio.sleep(KILL_AFTER - 1.0)
        if any(j.done() for j in jobs):
            out.unexpected.append("the load stopped before the crash")
        load.killed = True
        servers[0].kill()
        say(
            f"kill -9 process A (pid {servers[0].pid}) after {KILL_AFTER:g} s of load: "
            f"{len(out.acked_tasks)} creates and {len(out.acked_decisions)} decisions "
            "acknowledged so far"
        )
        if len(clients) > 1:
            await asyncio.sleep(SURVIVOR_LOAD)
            say(
                f"process B kept taking load for {SURVIVOR_LOAD:g} s: "
                f"{out.survivor_served} requests answered, {out.survivor_failed} failed"
            )
        load.stop.set()
        await asyncio.gather(*jobs)
        await asyncio.sleep(0.2)
        for task_id, poll in polls.items():
            if poll.done() and not poll.exception():
                out.answered[task_id] = poll.result()
        cut = [t for t, p in polls.items() if p.done() and p.exception() is not None]
        say(
            f"{out.cut_off} requests cut off by the crash; {len(out.answered)} long-polls had "
            f"their answer, {len(cut)} were cut off"
        )

        # the dead process's leases, once the living have finished what they took
        await asyncio.sleep(2.0 if len(clients) > 1 else 0.0)
        out.leases_ended = await in_store(url, _end_leases(datetime.now(UTC)))

        restarted.start()
        await restarted.ready(STARTUP)
        say(f"process A started again (pid {restarted.pid}) on the same database")
        again = client(restarted)
        clients.append(again)
        for task_id in cut:  # the cut-off long-polls ask again
            polls[task_id] = asyncio.create_task(_wait(again, keys.requester, task_id))
        for task_id, _ in waited[WAITERS // 2 :]:
            decided = await again.post(
                f"/v1/tasks/{task_id}/decision",
                json={"type": "approve", "message": "after"},
                headers=bearer(keys.reviewer),
            )
            decided.raise_for_status()
        for task_id, poll in polls.items():
            try:
                out.answered[task_id] = await asyncio.wait_for(poll, 30)
            except (TimeoutError, httpx.HTTPError):
                out.answered.setdefault(task_id, None)
        say("the long-polls cut off asked again; the rest of the waiters' tasks were decided")

        await _read_back(out, again, keys, url)
        await _webhooks(out, url, receiver, secret)
        say(
            f"read back {len(out.tasks)} tasks, the ledger and {len(out.deliveries)} webhook "
            f"deliveries ({out.leases_ended} outbox lease(s) of the dead process ended)"
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


async def _read_back(out: CrashOutcome, c: httpx.AsyncClient, keys: _Keys, url: str) -> None:
    for t in await all_items(c, keys.requester, "/v1/tasks"):
        output = t.get("output") or {}
        out.tasks[t["id"]] = {
            "status": t["status"],
            "decision": output.get("type"),
            "n": (t.get("metadata") or {}).get("n"),
        }
    entries = await all_items(c, keys.admin, "/v1/ledger/entries", account="org")
    out.deposits_found = {
        e["posting_id"].rsplit(":", 1)[1] for e in entries if e["kind"] == "deposit"
    }
    balance = (await c.get("/v1/balance", headers=bearer(keys.admin))).json()
    earnings = (await c.get("/v1/earnings", headers=bearer(keys.reviewer))).json()
    statuses = Counter(t["status"] for t in out.tasks.values())
    out.money = {
        "deposited": sum(e["amount"] for e in entries if e["kind"] == "deposit"),
        "entries": sum(e["amount"] for e in entries),
        "available": minor(balance["available"]),
        "held": minor(balance["held"]),
        "pending": minor(earnings["pending"]),
        "verified": statuses["verified"],
        "open": statuses["posted"],
        "other": len(out.tasks) - statuses["verified"] - statuses["posted"],
    }
    out.totals = await ledger_totals(url)
    await _sandbox_back(out, c, keys)
    for task_id, facts in out.tasks.items():
        later = EVENTS[1:] if facts["status"] == "verified" else ()
        out.expected_events |= {(task_id, e) for e in (EVENTS[0], *later)}


async def _sandbox_back(out: CrashOutcome, c: httpx.AsyncClient, keys: _Keys) -> None:
    """The sandbox's tasks (once the simulated reviewers have answered, or 30 s) and books."""
    deadline = time.monotonic() + 30
    while True:
        listed = await all_items(c, keys.sandbox_requester, "/v1/tasks")
        out.sandbox_tasks = {t["id"]: t["status"] for t in listed}
        if all(s != "posted" for s in out.sandbox_tasks.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    entries = await all_items(c, keys.sandbox_admin, "/v1/ledger/entries", account="org")
    balance = (await c.get("/v1/balance", headers=bearer(keys.sandbox_admin))).json()
    statuses = Counter(out.sandbox_tasks.values())
    out.sandbox_money = {
        "minted": sum(e["amount"] for e in entries if e["kind"] in ("top_up", "deposit")),
        "entries": sum(e["amount"] for e in entries),
        "available": minor(balance["available"]),
        "held": minor(balance["held"]),
        "verified": statuses["verified"],
        "open": statuses["posted"],
        "other": len(out.sandbox_tasks) - statuses["verified"] - statuses["posted"],
    }


def sandbox_checks(o: CrashOutcome) -> list[Check]:
    """The sandbox beside the live load: its tasks kept, in its own world, its books
    balanced on their own."""
    lost = [t for t in o.sandbox_acked if t not in o.sandbox_tasks]
    crossed = [t for t in o.sandbox_tasks if t in o.tasks]
    m = o.sandbox_money
    books = {
        "sandbox entries = available": m.get("entries") == m.get("available"),
        "available + held + 1.10 × verified = minted": m.get("available", 0)
        + m.get("held", 0)
        + PER_TASK * m.get("verified", 0)
        == m.get("minted"),
        "held = 1.10 × open tasks": m.get("held") == PER_TASK * m.get("open", -1),
        "every sandbox task verified or open": m.get("other") == 0,
    }
    return [
        check(
            "every acknowledged sandbox task is there, in the sandbox only",
            bool(o.sandbox_acked) and not lost and not crossed,
            f"{len(o.sandbox_acked)} acknowledged, missing {missing(lost)}, "
            f"in the live world {missing(crossed)}"
            if lost or crossed
            else f"all {len(o.sandbox_acked)} found among {len(o.sandbox_tasks)} sandbox tasks, "
            "none among the live ones",
        ),
        check(
            "the sandbox's books balance on their own",
            all(books.values()) and m.get("minted", 0) > 0,
            "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in books.items())
            + f" (minted {m.get('minted', 0) / 100:.2f}, {m.get('verified', 0)} verified, "
            f"{m.get('open', 0)} open)",
        ),
    ]


async def _webhooks(out: CrashOutcome, url: str, receiver: Receiver, secret: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        out.outbox = await in_store(url, outbox_states)
        if all(s == "delivered" for s in out.outbox.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # room for a late duplicate, should there be one
    hook = Webhook(secret)
    out.cut_short = receiver.cut_short
    for r in receiver.snapshot():
        try:
            payload = hook.verify(r.body, r.headers)
            signed = True
        except WebhookVerificationError:
            payload, signed = _unverified(r.body), False
        out.deliveries.append(
            Delivery(r.webhook_id, payload["data"]["id"], payload["type"], signed)
        )


def _unverified(body: bytes) -> dict[str, Any]:
    """What a delivery whose signature failed says it is about, as far as it can be read."""
    try:
        payload = json.loads(body)
        return {"data": {"id": str(payload["data"]["id"])}, "type": str(payload["type"])}
    except (ValueError, TypeError, KeyError):
        return {"data": {"id": "?"}, "type": "?"}


# ---------------------------------------------------------------- the checks


def acknowledged_checks(
    acked_tasks: dict[str, int], acked_decisions: dict[str, str], tasks: dict[str, dict[str, Any]]
) -> list[Check]:
    """Every acknowledged task is there, every acknowledged decision stands, and no request
    (by its number, kept in the task's metadata) made two tasks."""
    lost = [t for t in acked_tasks if t not in tasks]
    overturned = [
        t
        for t, kind in acked_decisions.items()
        if (tasks.get(t) or {}).get("status") != "verified"
        or (tasks.get(t) or {}).get("decision") != kind
    ]
    made = Counter(f["n"] for f in tasks.values() if f["n"] is not None)
    twice = [n for n, times in made.items() if times > 1]
    return [
        check(
            "every acknowledged task is still there",
            bool(acked_tasks) and not lost,
            f"{len(acked_tasks)} acknowledged, missing {missing(lost)}"
            if lost
            else f"all {len(acked_tasks)} found among {len(tasks)}",
        ),
        check(
            "every acknowledged decision stands",
            not overturned,
            f"overturned or gone: {missing(overturned)}"
            if overturned
            else f"all {len(acked_decisions)} verified with their decision",
        ),
        check(
            "no request made two tasks",
            not twice,
            f"made twice: {missing(twice)}" if twice else "one task per request number",
        ),
    ]


def _pairs(pairs: Any) -> str:
    return missing(sorted(f"{task} {event}" for task, event in pairs))


def _unexplained(o: CrashOutcome, by_event: dict[tuple[str, str], set[str]]) -> str:
    """The (task, event) pairs the read-back state does not explain, named: received but not
    expected (a task absent from the read-back, or an event of a change it does not show),
    expected but never received, received under two webhook-ids, or unsigned."""
    parts = []
    if extra := set(by_event) - o.expected_events:
        named = [f"{t} {e} (webhook-id {', '.join(sorted(by_event[t, e]))})" for t, e in extra]
        parts.append(f"received, not explained by the read-back: {missing(sorted(named))}")
    if lost := o.expected_events - set(by_event):
        parts.append(f"expected, never received: {_pairs(lost)}")
    if twice := [pair for pair, ids in by_event.items() if len(ids) > 1]:
        parts.append(f"under two webhook-ids: {_pairs(twice)}")
    if unsigned := [d for d in o.deliveries if not d.signed]:
        shown = [f"{d.webhook_id} ({d.task_id} {d.event})" for d in unsigned]
        parts.append(f"signature failed: {missing(shown)}")
    if (undelivered := [i for i, s in o.outbox.items() if s != "delivered"]) and o.outbox:
        parts.append(f"outbox rows not delivered: {missing(sorted(undelivered))}")
    return "".join(f"; {p}" for p in parts)


def crash_checks(o: CrashOutcome) -> list[Check]:
    unanswered = [t for t, message in o.waiters.items() if o.answered.get(t) != message]
    m = o.money
    books = {
        "the ledger's accounts sum to zero in every currency": bool(o.totals)
        and not any(o.totals.values()),
        "org entries = available": m.get("entries") == m.get("available"),
        "available + held + 1.10 × verified = deposited": m.get("available", 0)
        + m.get("held", 0)
        + PER_TASK * m.get("verified", 0)
        == m.get("deposited"),
        "held = 1.10 × open tasks": m.get("held") == PER_TASK * m.get("open", -1),
        "reviewer's pending earnings = 1.00 × verified": m.get("pending")
        == REWARD_MINOR * m.get("verified", -1),
        "every task verified or open": m.get("other") == 0,
        "acknowledged deposits ⊆ found ⊆ tried": o.deposits_acked
        <= o.deposits_found
        <= o.deposits_tried,
    }
    by_event: dict[tuple[str, str], set[str]] = {}
    for d in o.deliveries:
        by_event.setdefault((d.task_id, d.event), set()).add(d.webhook_id)
    events_ok = (
        o.expected_events
        and set(by_event) == o.expected_events
        and all(len(ids) == 1 for ids in by_event.values())
        and all(d.signed for d in o.deliveries)
        and o.outbox
        and all(s == "delivered" for s in o.outbox.values())
    )
    checks = [
        check(
            "the load ran until the crash, and only the crash failed requests",
            o.acked_tasks and not o.unexpected,
            f"{len(o.acked_tasks)} creates and {len(o.acked_decisions)} decisions acknowledged,"
            f" {o.cut_off} requests cut off"
            + (f"; unexpected: {'; '.join(o.unexpected[:3])}" if o.unexpected else ""),
        ),
        *acknowledged_checks(o.acked_tasks, o.acked_decisions, o.tasks),
        check(
            "every waiter got its task's decision",
            not unanswered,
            f"wrong or no answer: {missing(unanswered)}"
            if unanswered
            else f"all {len(o.waiters)} long-polls answered (half decided before the crash)",
        ),
        check(
            "the books balance",
            all(books.values()),
            "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in books.items()),
        ),
        *sandbox_checks(o),
        check(
            "every webhook event was delivered, each under one webhook-id, signed",
            events_ok,
            f"{len(o.expected_events)} events expected, {len(by_event)} received in "
            f"{len(o.deliveries)} deliveries ({len(o.deliveries) - len(by_event)} duplicates "
            f"for the receiver to drop); outbox: "
            + ", ".join(f"{k} {v}" for k, v in Counter(o.outbox.values()).items())
            + (
                f"; {o.cut_short} request(s) cut short by the kill, not delivered"
                if o.cut_short
                else ""
            )
            + _unexplained(o, by_event),
        ),
    ]
    if o.processes > 1:
        checks.append(
            check(
                "the other process went on serving through the crash",
                o.survivor_served > 0 and o.survivor_failed == 0,
                f"{o.survivor_served} requests answered after the kill, {o.survivor_failed} failed",
            )
        )
    return nothing_lost(checks)
