"""A webhook receiver away, then back: every event is delivered, and a receiver that
deduplicates by ``webhook-id`` handles none twice.

One server process (SQLite) with an endpoint registered for every event, and a load
creating review tasks and deciding half of them. The receiver is first **down** (nothing
listens on its port: connections are refused), then **failing** (it answers 503), then
**losing answers** (it takes each new event in, then hangs up before answering, so the
server cannot know it arrived and must send it again), then **up**. Every event must
arrive; the receiver keeps the first request of each ``webhook-id`` and drops the rest,
which only works if every retry of an event carries the same id and body, and no event
is ever queued twice under different ids.

The bad spell lasts under the retry schedule's first step (5 s), so that each event fails
at most once: the next step is 5 minutes. The schedule itself is tested with a manual
clock in ``tests/server/test_webhooks.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError
from tests.server._live import REVIEW, LiveServer, Received, Receiver, api_key, bearer, cli_key

from handrail_server.tables import webhook_deliveries

from ._crash import EVENTS, in_store, outbox_states
from ._drill import STARTUP, Check, Say, check, missing, nothing_lost

TITLE = "webhook receiver down, then up"
# seconds from the endpoint's registration: down until DOWN, 503 until FAILING, answers
# lost until LOSING (before the first retry of anything refused, 4.5 s at the earliest)
DOWN, FAILING, LOSING = 1.5, 2.7, 4.1
LOAD = 5.0  # seconds of load
WORKERS = 2


@dataclass(frozen=True)
class Seen:
    """One request the receiver got."""

    webhook_id: str
    task_id: str
    event: str
    body: str  # its SHA-256
    signed: bool


@dataclass
class OutageOutcome:
    acked_tasks: set[str] = field(default_factory=set)
    acked_decisions: set[str] = field(default_factory=set)
    expected_events: set[tuple[str, str]] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # delivery log: outcome → count
    outbox: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # load requests that failed
    timings: dict[str, float] = field(default_factory=dict)


class _Spell:
    """The receiver's moods, by the time since ``t0``."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first: set[str] = set()

    def respond(self, got: Received) -> int | None:
        since = time.monotonic() - self.t0
        new = got.webhook_id not in self.first
        self.first.add(got.webhook_id)
        if since < FAILING:
            return 503
        if since < LOSING and new:
            return None
        return 200


def _attempts(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(webhook_deliveries.c.status_code, webhook_deliveries.c.error))
    kinds: Counter[str] = Counter()
    for status, error in rows:
        kinds[f"HTTP {status}" if status is not None else (error or "?").split(":")[0]] += 1
    return dict(kinds)


async def run(workdir: Path, say: Say) -> OutageOutcome:
    out = OutageOutcome()
    url = f"sqlite:///{workdir / 'handrail.db'}"
    admin = await cli_key(url, "acme", "admin", principal="acme-admin")
    server = LiveServer(url, workdir, env={"HANDRAIL_WEBHOOK_TIMEOUT": "5"})
    spell = _Spell()
    receiver = Receiver(respond=spell.respond)
    started = time.perf_counter()
    try:
        server.start()
        await server.ready(STARTUP)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as c:
            requester = await api_key(c, admin, "requester", "acme-agent")
            reviewer = await api_key(c, admin, "reviewer", "acme-reviewer")
            spell.t0 = time.monotonic()
            made = await c.post("/v1/webhooks", json={"url": receiver.url}, headers=bearer(admin))
            made.raise_for_status()
            secret = made.json()["secret"]
            say(f"endpoint registered; nothing listens on port {receiver.port} yet")
            counter = itertools.count()

            async def worker() -> None:
                while time.monotonic() - spell.t0 < LOAD:
                    n = next(counter)
                    task = await c.post("/v1/tasks", json=REVIEW, headers=bearer(requester))
                    if task.status_code != 201:
                        out.failures.append(f"create {n}: {task.status_code}")
                        return
                    task_id = task.json()["id"]
                    out.acked_tasks.add(task_id)
                    if n % 2:
                        decided = await c.post(
                            f"/v1/tasks/{task_id}/decision",
                            json={"type": "approve"},
                            headers=bearer(reviewer),
                        )
                        if decided.status_code != 200:
                            out.failures.append(f"decide {n}: {decided.status_code}")
                            return
                        out.acked_decisions.add(task_id)
                    await asyncio.sleep(0.05)

            load = [asyncio.create_task(worker()) for _ in range(WORKERS)]
            await asyncio.sleep(max(0.0, spell.t0 + DOWN - time.monotonic()))
            receiver.start()
            say(f"receiver down (connections refused) for {DOWN:g} s, then up answering 503")
            await asyncio.sleep(max(0.0, spell.t0 + FAILING - time.monotonic()))
            say(
                f"from {FAILING:g} s it takes each new event in and hangs up before answering;"
                f" from {LOSING:g} s it answers 200"
            )
            await asyncio.gather(*load)
            say(
                f"load for {LOAD:g} s: {len(out.acked_tasks)} tasks created, "
                f"{len(out.acked_decisions)} decided"
            )
            deadline = time.monotonic() + 30
            while True:
                out.outbox = await in_store(url, outbox_states)
                done = all(s == "delivered" for s in out.outbox.values())
                if done or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # room for a late duplicate
            out.timings["delivered"] = time.monotonic() - spell.t0
            out.attempts = await in_store(url, _attempts)
    finally:
        server.stop()
        receiver.stop()
    hook = Webhook(secret)
    for r in receiver.snapshot():
        try:
            payload, signed = hook.verify(r.body, r.headers), True
        except WebhookVerificationError:
            payload, signed = {"data": {"id": "?"}, "type": "?"}, False
        out.seen.append(
            Seen(
                r.webhook_id,
                payload["data"]["id"],
                payload["type"],
                hashlib.sha256(r.body).hexdigest(),
                signed,
            )
        )
    for task_id in out.acked_tasks:
        later = EVENTS[1:] if task_id in out.acked_decisions else ()
        out.expected_events |= {(task_id, e) for e in (EVENTS[0], *later)}
    out.timings["total"] = time.perf_counter() - started
    say(
        f"all {len(out.outbox)} outbox rows delivered {out.timings['delivered']:.1f} s after "
        f"the endpoint was registered; the receiver got {len(out.seen)} requests; delivery "
        "log: " + ", ".join(f"{k} × {v}" for k, v in sorted(out.attempts.items()))
    )
    return out


def checks(o: OutageOutcome) -> list[Check]:
    ids: dict[tuple[str, str], set[str]] = {}
    bodies: dict[str, set[str]] = {}
    for s in o.seen:
        ids.setdefault((s.task_id, s.event), set()).add(s.webhook_id)
        bodies.setdefault(s.webhook_id, set()).add(s.body)
    processed = {s.webhook_id: (s.task_id, s.event) for s in reversed(o.seen)}  # first kept
    repeated = len(o.seen) - len(bodies)
    refused = sum(v for k, v in o.attempts.items() if k.startswith("ConnectError"))
    failing = o.attempts.get("HTTP 503", 0)
    lost = sum(v for k, v in o.attempts.items() if "Protocol" in k or "Read" in k)
    undelivered = sorted(o.expected_events - set(processed.values()))
    split = [k for k, v in ids.items() if len(v) > 1]
    changed = [i for i, b in bodies.items() if len(b) > 1]
    return nothing_lost(
        [
            check(
                "the load ran without a failure",
                bool(o.acked_tasks) and not o.failures,
                f"{len(o.acked_tasks)} tasks, {len(o.acked_decisions)} decisions"
                + (f"; failed: {missing(o.failures)}" if o.failures else ""),
            ),
            check(
                "the receiver was really away: attempts were refused, then answered 503",
                refused > 0 and failing > 0,
                f"{refused} refused, {failing} answered 503",
            ),
            check(
                "answers were lost, and those events came again",
                lost > 0 and repeated > 0,
                f"{lost} attempts hung up on, {repeated} repeated deliveries",
            ),
            check(
                "every event was delivered",
                bool(o.expected_events)
                and not undelivered
                and bool(o.outbox)
                and all(s == "delivered" for s in o.outbox.values()),
                f"{len(o.expected_events)} events expected, {len(set(processed.values()))} "
                f"processed; outbox: "
                + ", ".join(f"{k} {v}" for k, v in Counter(o.outbox.values()).items())
                + (f"; never delivered: {missing(undelivered)}" if undelivered else ""),
            ),
            check(
                "deduplicating by webhook-id, none was handled twice",
                not split and not changed and len(processed) == len(set(processed.values())),
                f"{len(processed)} ids for {len(set(processed.values()))} events; "
                f"{len(split)} events under several ids, {len(changed)} ids with changed bodies",
            ),
            check(
                "every delivery was signed",
                bool(o.seen) and all(s.signed for s in o.seen),
                f"{sum(s.signed for s in o.seen)} of {len(o.seen)} verified",
            ),
        ]
    )
