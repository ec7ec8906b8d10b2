"""The server over real HTTP: wake-up against polling, throughput against the no-op ceiling,
memory per waiter.

Real server processes (``python -m uvicorn handrail_server.main:create_app --factory``,
access log off), on SQLite files in a temporary directory and on fresh PostgreSQL databases
(``CREATE DATABASE``, dropped afterwards; the PostgreSQL rows read "skipped (no
PostgreSQL)" without a server at ``HANDRAIL_BENCH_POSTGRES_URL``). Every process starts at
once (their imports take seconds); each is then measured in turn while the others idle.
The clients are raw asyncio HTTP/1.1 connections with keep-alive (``_http.py``), so that
they cost far less than the server.

- **Wake-up**: 1,000 waiters (``--quick`` 50) parked at once, each on its own connection,
  spread over 300 review tasks (quick 20): each a long-poll (``GET /v1/tasks/{id}/wait``),
  or a server-sent event stream (``GET /v1/tasks/{id}/events``, parked once its first frame
  came). Then the tasks are decided one at a time over HTTP, each decision answering its
  three or four waiters; every waiter must answer, and each figure runs from sending a
  decision to one of its waiters' answer (the long-poll's response, the stream's
  ``verified`` frame): p50 and p99 over all the waiters, anchored to the decision request's
  own latency. On PostgreSQL the same is done **across two server processes**: the waiters
  on one, the decisions sent to the other (the wake-up travels by ``LISTEN/NOTIFY``).
- **Polling, on the same server**: clients that read their task (``GET /v1/tasks/{id}``)
  every 1 s (as Humancheck's server does), 2 s (HumanRail's SDK default) and 3 s
  (HumanLayer's SDK), 40 per interval (quick 8), each starting at a random phase; once
  all are polling, their tasks are decided one at a time in random order, and each figure
  runs from sending the decision to the poller seeing it. Anchored to the long-poll figure.
- **Throughput**, with 1 and with 2 uvicorn worker processes (quick: 1 only): 16
  connections sending ``POST /v1/tasks`` back to back for a fixed time (5 s; quick 1 s),
  anchored to a no-op FastAPI endpoint (``noop_app.py``) served with the same uvicorn
  settings and worker count, measured the same way; the same with a fresh
  ``Idempotency-Key`` on every request, anchored to the plain create; and the **full
  lifecycle** over HTTP,
  16 clients each
  creating a task, sending a long-poll on it, deciding it on a second connection and
  reading the long-poll's answer, anchored to the no-op ceiling divided by the lifecycle's
  three requests. With two workers the kernel hands each new connection to whichever
  worker accepts it first (often the same one), so connections are opened until they are
  spread evenly, as a load balancer would spread them; the figure names the spread.
- **Memory**: 10,000 long-polls (quick 1,000) waiting at once on one SQLite server process
  of their own: its RSS once they are all accepted and it has settled, less its RSS before
  (after a small warm-up round of waiters), per waiter; and the process's CPU while they
  wait. Deciding one task then answers its share of the crowd, to show they were all
  really waiting; the process is killed afterwards (a graceful stop would wait for the rest).

The server's fallback re-read stays at its default (``HANDRAIL_WAIT_BACKSTOP``, 120 s,
beyond the 60 s a long-poll lasts in production: a parked long-poll reads nothing until a
notification wakes it), so the CPU figure is what the crowd costs while it waits. The
file-descriptor limit is raised to its hard limit for the client and the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from _common import NO_POSTGRES, Row, percentile, postgres_available, ratio, row, table
from _http import (
    REVIEW,
    Http,
    Keys,
    Server,
    close_all,
    create_tasks,
    decide,
    fresh_database,
    idle_latency,
    open_many,
    park,
    prepare,
    quiet,
    raise_fd_limit,
    request,
    start_handrail,
    start_noop,
)

BENCH = "http"
_T0 = [0.0]
POLLERS = ((1.0, "Humancheck server"), (2.0, "HumanRail SDK"), (3.0, "HumanLayer SDK"))
CLIENTS = 16
WORKERS = (1, 2)
LIFECYCLE_REQUESTS = 3  # create, wait, decision
MiB = 1024 * 1024
Store = Literal["SQLite file", "PostgreSQL"]
How = Literal["long-poll", "SSE", "long-poll across 2 processes"]
FIGURES: dict[How, str] = {  # what each wake-up figure runs from and to
    "long-poll": "decision → long-poll answer",
    "SSE": "decision → SSE frame",
    "long-poll across 2 processes": "decision on process B → long-poll answer on A",
}


@dataclass(frozen=True)
class Plan:
    crowd: int  # waiters parked at once
    tasks: int  # the tasks they wait on, decided one at a time
    pollers: int  # polling clients per interval
    seconds: float  # per throughput figure
    memory: int  # waiters for the memory figure
    workers: tuple[int, ...]  # worker processes per server, for the throughput figures


QUICK = Plan(crowd=50, tasks=20, pollers=8, seconds=1.0, memory=1_000, workers=(1,))
FULL = Plan(crowd=1_000, tasks=300, pollers=40, seconds=5.0, memory=10_000, workers=(1, 2))
QUICK_SKIPS = "not run with --quick"


# ---------------------------------------------------------------- wake-up


@dataclass
class Wakeup:
    woken: list[float]  # decision sent → waiter answered, seconds
    calls: list[float]  # the decision request itself


async def _stream(conn: Http, key: str, task_id: str, opened: asyncio.Future[None]) -> float:
    """Follow the task's event stream until a frame says it is verified; when it came.
    ``opened`` is set at the first frame (the stream is subscribed by then)."""
    await conn.send(request("GET", f"/v1/tasks/{task_id}/events", key))
    async for _, data in conn.events():
        if not opened.done():
            opened.set_result(None)
        if data.get("status") == "verified":
            return time.perf_counter()
    raise RuntimeError(f"the stream of {task_id} ended before it was verified")


async def wakeup(waiting: Server, deciding: Server, keys: Keys, plan: Plan, sse: bool) -> Wakeup:
    """Park ``plan.crowd`` waiters on ``waiting``, spread over ``plan.tasks`` tasks (so each
    decision answers several), then decide the tasks one at a time on ``deciding``; every
    waiter must answer, and each answer is a sample."""
    baseline = await idle_latency(waiting.port)
    ids = await create_tasks(waiting.port, keys.requester, plan.tasks)
    conns = await open_many(waiting.port, plan.crowd)
    on = [ids[i % len(ids)] for i in range(plan.crowd)]  # the task each waiter waits on
    if sse:
        loop = asyncio.get_running_loop()
        opened = [loop.create_future() for _ in conns]
        waiters = [
            asyncio.create_task(_stream(c, keys.requester, i, o))
            for c, i, o in zip(conns, on, opened, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*opened), 120)
    else:
        waiters = [
            asyncio.create_task(park(c, keys.requester, i)) for c, i in zip(conns, on, strict=True)
        ]
    await quiet(waiting.port, baseline, least=0.5 + plan.crowd / 2000)
    if any(w.done() for w in waiters):
        raise RuntimeError("a waiter answered before any decision")
    decider = await Http.open(deciding.port)
    woken: list[float] = []
    calls: list[float] = []
    for n, task_id in enumerate(ids):
        started = time.perf_counter()
        await decide(decider, task_id, keys.reviewer)
        calls.append(time.perf_counter() - started)
        answered = await asyncio.wait_for(asyncio.gather(*waiters[n :: len(ids)]), 120)
        woken += [at - started for at in answered]
    decider.close()
    if len(woken) != plan.crowd:
        raise RuntimeError(f"{len(woken)} of {plan.crowd} waiters answered")
    close_all(conns)
    return Wakeup(woken, calls)


async def polling(server: Server, keys: Keys, per: int) -> dict[float, list[float]]:
    """decision sent → seen, in seconds, for clients polling at each of ``POLLERS``."""
    rng = random.Random(7)
    plan = [interval for _ in range(per) for interval, _ in POLLERS]
    ids = await create_tasks(server.port, keys.requester, len(plan))
    conns = await open_many(server.port, len(plan))

    async def poll(conn: Http, task_id: str, interval: float) -> float:
        await asyncio.sleep(rng.uniform(0, interval))
        raw = request("GET", f"/v1/tasks/{task_id}", keys.requester)
        while True:
            status, body = await conn.call(raw)
            if status != 200:
                raise RuntimeError(f"poll: {status} {body[:300]!r}")
            if json.loads(body)["status"] == "verified":
                return time.perf_counter()
            await asyncio.sleep(interval)

    pollers = [
        asyncio.create_task(poll(c, i, interval))
        for c, i, interval in zip(conns, ids, plan, strict=True)
    ]
    await asyncio.sleep(max(plan))  # every poller is in its loop
    order = list(range(len(ids)))
    rng.shuffle(order)
    decider = await Http.open(server.port)
    sent: dict[int, float] = {}
    for i in order:
        sent[i] = time.perf_counter()
        await decide(decider, ids[i], keys.reviewer)
    decider.close()
    seen = await asyncio.wait_for(asyncio.gather(*pollers), 60)
    close_all(conns)
    out: dict[float, list[float]] = {interval: [] for interval, _ in POLLERS}
    for i, interval in enumerate(plan):
        out[interval].append(seen[i] - sent[i])
    return out


# ---------------------------------------------------------------- throughput


Got = tuple[float, list[int], float]  # per second, the connections' spread, p99 in ms


async def rate(
    server: Server, clients: int, one: Callable[[Http, Http], Awaitable[None]], seconds: float
) -> Got:
    """``one`` per second, ``clients`` looping it at once (each with two connections), after
    a short warm-up; how the clients' first connections fell among the workers; and the
    99th percentile of one ``one``, in ms."""
    agents, others = await server.connections(clients), await server.connections(clients)
    pairs = list(zip(agents, others, strict=True))
    spread = server.spread(agents)
    took: list[float] = []

    async def loop(a: Http, b: Http, until: float) -> int:
        count = 0
        while (begun := time.perf_counter()) < until:
            await one(a, b)
            took.append(time.perf_counter() - begun)
            count += 1
        return count

    await asyncio.gather(*(loop(a, b, time.perf_counter() + 0.3) for a, b in pairs))
    took.clear()
    started = time.perf_counter()
    counts = await asyncio.gather(*(loop(a, b, started + seconds) for a, b in pairs))
    done = sum(counts) / (time.perf_counter() - started)
    close_all([c for pair in pairs for c in pair])
    return done, spread, _ms(took, 99)


def creating(key: str | None) -> Callable[[Http, Http], Awaitable[None]]:
    raw = request("POST", "/v1/tasks", key, REVIEW)

    async def one(conn: Http, _: Http) -> None:
        status, body = await conn.call(raw)
        if status != 201:
            raise RuntimeError(f"{status} {body[:300]!r}")

    return one


def creating_keyed(key: str) -> Callable[[Http, Http], Awaitable[None]]:
    """``POST /v1/tasks`` with a fresh ``Idempotency-Key`` each time (every one a first
    attempt: the record is written with the task)."""
    head, _, body = request("POST", "/v1/tasks", key, REVIEW).partition(b"\r\n\r\n")
    count = itertools.count()

    async def one(conn: Http, _: Http) -> None:
        raw = head + f"\r\nIdempotency-Key: bench-{next(count)}\r\n\r\n".encode() + body
        status, answer = await conn.call(raw)
        if status != 201:
            raise RuntimeError(f"{status} {answer[:300]!r}")

    return one


def lifecycle(keys: Keys) -> Callable[[Http, Http], Awaitable[None]]:
    """Create a task, long-poll it, decide it on the other connection, read the answer."""
    create = request("POST", "/v1/tasks", keys.requester, REVIEW)

    async def one(agent: Http, reviewer: Http) -> None:
        status, body = await agent.call(create)
        if status != 201:
            raise RuntimeError(f"create: {status} {body[:300]!r}")
        task_id = json.loads(body)["id"]
        await agent.send(request("GET", f"/v1/tasks/{task_id}/wait?timeout=60", keys.requester))
        await decide(reviewer, task_id, keys.reviewer)
        status, body = await agent.answer()
        if status != 200 or json.loads(body)["status"] != "verified":
            raise RuntimeError(f"wait: {status} {body[:300]!r}")

    return one


# ---------------------------------------------------------------- memory


@dataclass
class Memory:
    waiters: int
    before: int  # RSS, bytes
    during: int
    cpu_before: float  # % of one core
    cpu_during: float


async def cpu_percent(server: Server, seconds: float = 1.0) -> float:
    process = psutil.Process(server.pid)
    process.cpu_percent(None)
    await asyncio.sleep(seconds)
    return float(process.cpu_percent(None))


def accepted(server: Server) -> int:
    """Connections the server process has accepted (and not closed)."""
    return sum(
        1
        for c in psutil.Process(server.pid).net_connections("tcp")
        if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
    )


async def settled_rss(server: Server, n: int, limit: float = 60.0) -> int:
    """The RSS once every connection is accepted and it has stopped growing: three
    readings over a second within 0.5 % of each other."""
    deadline = time.monotonic() + limit
    for _ in range(int(limit / 0.2)):
        if accepted(server) >= n:
            break
        await asyncio.sleep(0.2)
    readings = [server.rss()]
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        readings = [*readings[-2:], server.rss()]
        if len(readings) == 3 and max(readings) - min(readings) <= 0.005 * readings[-1]:
            break
    return readings[-1]


async def memory(server: Server, keys: Keys, n: int, spread: int = 50) -> Memory:
    """RSS of the server with ``n`` long-polls parked (on ``spread`` tasks), less before.
    The server is killed afterwards: the crowd's requests would hold a graceful stop."""
    baseline = await idle_latency(server.port)
    tasks = await create_tasks(server.port, keys.requester, spread + 5)
    warm, tasks = tasks[:5], tasks[5:]

    async def crowd(ids: list[str], count: int) -> tuple[list[Http], list[asyncio.Task[float]]]:
        conns = await open_many(server.port, count)
        return conns, [
            asyncio.create_task(park(c, keys.requester, ids[i % len(ids)]))
            for i, c in enumerate(conns)
        ]

    async def decide_each(ids: list[str]) -> None:
        conn = await Http.open(server.port)
        for task_id in ids:
            await decide(conn, task_id, keys.reviewer)
        conn.close()

    # warm-up: a few waiters park and are answered, so the code paths are loaded (few, so
    # that little freed memory is left over for the crowd to reuse)
    conns, waiters = await crowd(warm, 20)
    await quiet(server.port, baseline, least=0.3)
    await decide_each(warm)
    await asyncio.gather(*waiters)
    close_all(conns)
    await quiet(server.port, baseline, least=0.3)
    before = server.rss()
    cpu_before = await cpu_percent(server)

    conns, waiters = await crowd(tasks, n)
    during = await settled_rss(server, n)
    await quiet(server.port, baseline, least=0.5)  # every long-poll taken in and parked
    cpu_during = await cpu_percent(server, 3.0)
    if any(w.done() for w in waiters):
        raise RuntimeError("a waiter answered before any decision")
    # they were really waiting: one task's decision answers its share of the crowd
    await decide_each(tasks[:1])
    await asyncio.wait_for(asyncio.gather(*waiters[::spread]), 60)
    if sum(w.done() for w in waiters) != len(waiters[::spread]):
        raise RuntimeError("waiters of undecided tasks answered")
    server.process.kill()
    server.process.wait(10)
    close_all(conns)
    await asyncio.gather(*waiters, return_exceptions=True)
    return Memory(n, before, during, cpu_before, cpu_during)


# ---------------------------------------------------------------- rows


def _ms(samples: Sequence[float], q: float) -> float:
    return percentile(samples, q) * 1000


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n > 1 else ''}"


def _spread(spread: Sequence[int]) -> str:
    return "" if len(spread) < 2 else f" (connections {'/'.join(map(str, spread))})"


def wakeup_rows(store: Store, how: How, n: int, w: Wakeup | None) -> list[Row]:
    head = f"{store}: {FIGURES[how]}"
    if w is None:
        return [row(BENCH, f"{head} p50, {n:,} waiting", None, "ms", note=NO_POSTGRES)]
    return [
        row(
            BENCH,
            f"{head} p{q}, {n:,} waiting on {len(w.calls)} tasks",
            _ms(w.woken, q),
            "ms",
            anchor=f"the decision POST itself, p{q} ({_ms(w.calls, q):.1f} ms)",
            ratio=ratio(_ms(w.woken, q), _ms(w.calls, q)),
            chart="wakeup",
            label=f"{how}, {store}",
            series=f"p{q}",
        )
        for q in (50, 99)
    ]


def polling_rows(
    store: Store, per: int, polled: dict[float, list[float]] | None, pushed: Wakeup | None
) -> list[Row]:
    rows: list[Row] = []
    for interval, who in POLLERS:
        head = f"{store}: polling every {interval:g} s ({who}), decision → seen"
        if polled is None or pushed is None:
            rows.append(row(BENCH, f"{head} p50", None, "ms", note=NO_POSTGRES))
            continue
        for q in (50, 99):
            seen, anchor = _ms(polled[interval], q), _ms(pushed.woken, q)
            rows.append(
                row(
                    BENCH,
                    f"{head} p{q}, {per} clients",
                    seen,
                    "ms",
                    anchor=f"long-poll p{q} ({anchor:.1f} ms)",
                    ratio=ratio(seen, anchor),
                    chart="wakeup",
                    label=f"polling every {interval:g} s ({who}), {store}",
                    series=f"p{q}",
                )
            )
    return rows


def noop_row(workers: int, value: float | None, spread: Sequence[int]) -> Row:
    if value is None:
        figure = f"no-op FastAPI: POST /v1/tasks, {_workers(workers)}"
        return row(BENCH, figure, None, "req/s", note=QUICK_SKIPS)
    return row(
        BENCH,
        f"no-op FastAPI: POST /v1/tasks, {_workers(workers)}, {CLIENTS} connections"
        + _spread(spread),
        value,
        "req/s",
        anchor="the ceiling for the rows below",
        chart="http-create",
        label="no-op FastAPI (ceiling)",
        series=_workers(workers),
    )


def create_rows(store: Store, workers: int, got: Got | None, noop: Got, why: str) -> list[Row]:
    figure = f"{store}: POST /v1/tasks, {_workers(workers)}, {CLIENTS} connections"
    latency = f"{store}: POST /v1/tasks p99 latency, {_workers(workers)}, {CLIENTS} connections"
    if got is None:
        return [
            row(BENCH, figure, None, "req/s", note=why),
            row(BENCH, latency, None, "ms", note=why),
        ]
    value, spread, p99 = got
    return [
        row(
            BENCH,
            figure + _spread(spread),
            value,
            "req/s",
            anchor=f"no-op FastAPI POST, {_workers(workers)} ({noop[0]:,.0f} req/s)",
            ratio=ratio(value, noop[0]),
            chart="http-create",
            label=store,
            series=_workers(workers),
        ),
        row(
            BENCH,
            latency,
            p99,
            "ms",
            anchor=f"the no-op POST's p99 ({noop[2]:.1f} ms)",
            ratio=ratio(p99, noop[2]),
        ),
    ]


def keyed_row(store: Store, workers: int, got: Got | None, plain: Got | None, why: str) -> Row:
    figure = (
        f"{store}: POST /v1/tasks with an Idempotency-Key, {_workers(workers)}, "
        f"{CLIENTS} connections"
    )
    if got is None or plain is None:
        return row(BENCH, figure, None, "req/s", note=why)
    return row(
        BENCH,
        figure,
        got[0],
        "req/s",
        anchor=f"the same without a key ({plain[0]:,.0f} req/s)",
        ratio=ratio(got[0], plain[0]),
    )


def lifecycle_row(store: Store, workers: int, got: Got | None, noop: float, why: str) -> Row:
    figure = (
        f"{store}: lifecycle over HTTP (create → long-poll → decision → answered), "
        f"{_workers(workers)}, {CLIENTS} clients"
    )
    if got is None:
        return row(BENCH, figure, None, "tasks/s", note=why)
    value, spread, _ = got
    ceiling = noop / LIFECYCLE_REQUESTS
    return row(
        BENCH,
        figure + _spread(spread),
        value,
        "tasks/s",
        anchor=f"no-op ceiling ÷ {LIFECYCLE_REQUESTS} requests, {_workers(workers)} "
        f"({ceiling:,.0f}/s)",
        ratio=ratio(value, ceiling),
        chart="http-lifecycle",
        label=store,
        series=_workers(workers),
    )


def memory_rows(m: Memory) -> list[Row]:
    per = (m.during - m.before) / m.waiters / 1024
    return [
        row(
            BENCH,
            f"SQLite file: server RSS per open long-poll waiter, {m.waiters:,} waiting",
            per,
            "KiB",
            anchor=f"RSS {m.before / MiB:.0f} MiB before, {m.during / MiB:.0f} MiB while they wait",
        ),
        row(
            BENCH,
            f"SQLite file: server CPU while {m.waiters:,} long-polls are parked",
            m.cpu_during,
            "% of a core",
            anchor=f"before they came ({m.cpu_before:.1f} %)",
        ),
    ]


# ---------------------------------------------------------------- run


async def run(quick: bool) -> list[Row]:
    plan = QUICK if quick else FULL
    limit = raise_fd_limit()  # before any server starts: they inherit it
    crowd = min(plan.memory, max(100, limit - 1_000))
    have_postgres = await postgres_available()
    stores: tuple[Store, ...] = ("SQLite file", "PostgreSQL") if have_postgres else ("SQLite file",)
    with tempfile.TemporaryDirectory(prefix="handrail-bench-http-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            urls: dict[str, str] = {"memory": f"sqlite:///{workdir / 'memory.db'}"}
            for workers in plan.workers:
                urls[f"SQLite file/{workers}"] = f"sqlite:///{workdir / f'bench-{workers}.db'}"
                if have_postgres:
                    urls[f"PostgreSQL/{workers}"] = await stack.enter_async_context(
                        fresh_database()
                    )
            keys = {name: await prepare(url) for name, url in urls.items()}
            servers = {
                name: start_handrail(url, workdir, int(name.rsplit("/", 1)[-1]))
                for name, url in urls.items()
                if name != "memory"
            }
            servers["memory"] = start_handrail(urls["memory"], workdir)
            if have_postgres:  # a second process on the first database: across processes
                servers["PostgreSQL/1b"] = start_handrail(urls["PostgreSQL/1"], workdir)
            for workers in plan.workers:
                servers[f"noop/{workers}"] = start_noop(workdir, workers)
            try:
                _T0[0] = time.perf_counter()
                await asyncio.gather(*(s.ready() for s in servers.values()))
                _progress(f"{len(servers)} servers ready")
                rows = await _measure(servers, keys, stores, plan)
                rows += memory_rows(await memory(servers["memory"], keys["memory"], crowd))
                _progress("memory")
            finally:
                for server in servers.values():
                    server.stop()
    return rows


def _progress(what: str) -> None:
    """A line per step on the way, with the seconds since the previous one."""
    now = time.perf_counter()
    print(f"  http: {what} ({now - _T0[0]:.1f} s)", flush=True)
    _T0[0] = now


async def _measure(
    servers: dict[str, Server], keys: dict[str, Keys], stores: tuple[Store, ...], plan: Plan
) -> list[Row]:
    rows: list[Row] = []
    for store in ("SQLite file", "PostgreSQL"):
        name = f"{store}/1"
        if store not in stores:
            for how in ("long-poll", "SSE", "long-poll across 2 processes"):
                rows += wakeup_rows(store, how, plan.crowd, None)
            rows += polling_rows(store, plan.pollers, None, None)
            continue
        server, key = servers[name], keys[name]
        pushed = await wakeup(server, server, key, plan, sse=False)
        rows += wakeup_rows(store, "long-poll", plan.crowd, pushed)
        _progress(f"{store}: long-poll wake-up")
        sse = await wakeup(server, server, key, plan, sse=True)
        rows += wakeup_rows(store, "SSE", plan.crowd, sse)
        _progress(f"{store}: SSE wake-up")
        if store == "PostgreSQL":
            across = await wakeup(server, servers[f"{name}b"], key, plan, sse=False)
            rows += wakeup_rows(store, "long-poll across 2 processes", plan.crowd, across)
            _progress(f"{store}: wake-up across processes")
        rows += polling_rows(store, plan.pollers, await polling(server, key, plan.pollers), pushed)
        _progress(f"{store}: polling clients")

    for workers in WORKERS:
        if workers not in plan.workers:
            rows.append(noop_row(workers, None, ()))
            for store in ("SQLite file", "PostgreSQL"):
                rows += create_rows(store, workers, None, (0.0, [], 0.0), QUICK_SKIPS)
                rows.append(keyed_row(store, workers, None, None, QUICK_SKIPS))
                rows.append(lifecycle_row(store, workers, None, 0, QUICK_SKIPS))
            continue
        noop = servers[f"noop/{workers}"]
        floor = await rate(noop, CLIENTS, creating(None), plan.seconds)
        ceiling, spread, _ = floor
        rows.append(noop_row(workers, ceiling, spread))
        for store in ("SQLite file", "PostgreSQL"):
            name = f"{store}/{workers}"
            made = keyed = lived = None
            if store in stores:
                server, key = servers[name], keys[name]
                made = await rate(server, CLIENTS, creating(key.requester), plan.seconds)
                keyed = await rate(server, CLIENTS, creating_keyed(key.requester), plan.seconds)
                lived = await rate(server, CLIENTS, lifecycle(key), plan.seconds)
            rows += create_rows(store, workers, made, floor, NO_POSTGRES)
            rows.append(keyed_row(store, workers, keyed, made, NO_POSTGRES))
            rows.append(lifecycle_row(store, workers, lived, ceiling, NO_POSTGRES))
        _progress(f"throughput, {_workers(workers)}")
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
    print(f"{time.perf_counter() - started:.1f} s")
