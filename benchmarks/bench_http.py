"""The server over real HTTP: long-poll wake-up, create throughput, memory per waiter.

Real server processes (``python -m uvicorn handrail_server.main:create_app --factory``,
one worker, access log off), on a SQLite file in a temporary directory and on a fresh
PostgreSQL database (``CREATE DATABASE``, dropped afterwards; the rows read "skipped (no
PostgreSQL)" without a server at ``HANDRAIL_BENCH_POSTGRES_URL``). The clients are raw
asyncio HTTP/1.1 connections with keep-alive, so that they cost far less than the server.

- **Wake-up**: N review tasks, one long-poll per task (``GET /v1/tasks/{id}/wait``, N
  connections open at once), then the tasks are decided one at a time over HTTP; the
  figure is from sending a decision to its waiter's answer arriving, p50 and p99,
  anchored to the decision request's own latency. Beside it, what clients polling every
  2 s (HumanRail SDK's default) and 3 s (HumanLayer SDK's) would see on the same server: a
  decision lands at a uniformly random point of the interval, so the q-th percentile is
  q × interval plus one ``GET /v1/tasks/{id}`` (measured in the same run, its mean).
- **Throughput**: 16 connections each sending ``POST /v1/tasks`` back to back for a fixed
  time; anchored to a no-op FastAPI endpoint (``noop_app.py``) served with the same uvicorn
  settings and measured the same way.
- **Memory**: 10,000 long-polls (quick: 2,000) waiting at once on one SQLite server
  process of their own: its RSS once they are all accepted and it has settled, less its
  RSS before (after a small warm-up round of waiters), per waiter; and the process's CPU
  while they wait. Deciding one task then answers its share of the crowd, to show they
  were all really waiting; the process is killed afterwards (a graceful stop would wait
  for the rest).

The server's fallback re-read stays at its default (``HANDRAIL_WAIT_BACKSTOP``, 120 s,
beyond the 60 s a long-poll lasts in production: a parked long-poll reads nothing until a
notification wakes it), so the CPU figure is what the crowd costs while it waits. The
file-descriptor limit is raised to its hard limit for the client and the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from sqlalchemy.engine import make_url

from _common import (
    NO_POSTGRES,
    POSTGRES_URL,
    Row,
    percentile,
    postgres_available,
    ratio,
    row,
    table,
)

BENCH = "http"
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ORG = "bench"
# the same settings for every server process, the no-op app included
UVICORN = ("--host", HOST, "--log-level", "warning", "--no-access-log", "--backlog", "4096")
REVIEW = {"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}}
SDK_POLLS = ((2.0, "HumanRail SDK"), (3.0, "HumanLayer SDK"))
CLIENTS = 16
BATCH = 250  # connections opened at once
WAIT = 300  # seconds a long-poll may wait (the server is told it may wait that long)
MiB = 1024 * 1024


# ---------------------------------------------------------------- raw HTTP/1.1


def request(method: str, path: str, key: str | None = None, body: Any = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    data = b""
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Http:
    """One keep-alive HTTP/1.1 connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Http:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not expected here")
        return status, await self.reader.readexactly(length) if length else b""

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        await self.send(raw)
        return await self.answer()

    def close(self) -> None:
        self.writer.close()


async def open_many(port: int, n: int) -> list[Http]:
    conns: list[Http] = []
    while len(conns) < n:
        conns += await asyncio.gather(*(Http.open(port) for _ in range(min(BATCH, n - len(conns)))))
    return conns


def close_all(conns: Sequence[Http]) -> None:
    for conn in conns:
        conn.close()


# ---------------------------------------------------------------- server processes


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')}")
            with contextlib.suppress(OSError):
                conn = await Http.open(self.port)
                try:
                    status, _ = await conn.call(request("GET", "/healthz"))
                finally:
                    conn.close()
                if status == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start: {self.log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start(app: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *app, *UVICORN, "--port", str(port)],
            env={**os.environ, **(env or {})},
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, port, log)


def start_handrail(database_url: str, workdir: Path) -> Server:
    return start(
        ("handrail_server.main:create_app", "--factory"),
        workdir,
        {
            "HANDRAIL_DATABASE_URL": database_url,
            "HANDRAIL_UPLOAD_DIR": str(workdir / "uploads"),
            "HANDRAIL_RATE_LIMIT_PER_SECOND": "1000000000",
            "HANDRAIL_RATE_LIMIT_BURST": "1000000000",
            "HANDRAIL_WAIT_MAX_SECONDS": str(WAIT),
        },
    )


def start_noop(workdir: Path) -> Server:
    return start(("noop_app:app", "--app-dir", str(HERE)), workdir)


@dataclass
class Keys:
    requester: str
    reviewer: str


async def prepare(database_url: str) -> Keys:
    """Migrate the database and make the keys (before any server starts on it)."""
    from handrail import Role
    from handrail.clock import SystemClock
    from handrail.store.sql import SqlStore
    from handrail_server.keys import create_key
    from handrail_server.migrate import migrate

    store = await SqlStore.open(database_url, create=False)
    try:
        await migrate(store)
        now = SystemClock().now()
        made = [
            await store.run(
                lambda c, role=role: create_key(
                    c, org_id=ORG, role=role, now=now, principal=role.value
                )
            )
            for role in (Role.REQUESTER, Role.REVIEWER)
        ]
    finally:
        await store.close()
    return Keys(made[0].key, made[1].key)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    name = f"handrail_b_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- the measures


async def create_tasks(port: int, key: str, n: int) -> list[str]:
    conns = [await Http.open(port) for _ in range(min(CLIENTS, n))]
    ids: list[str] = []
    raw = request("POST", "/v1/tasks", key, REVIEW)

    async def make(conn: Http) -> None:
        while len(ids) < n:
            status, body = await conn.call(raw)
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:300]!r}")
            ids.append(json.loads(body)["id"])

    await asyncio.gather(*(make(c) for c in conns))
    close_all(conns)
    return ids[:n]


async def quiet(port: int, baseline: float, least: float, limit: float = 60.0) -> None:
    """Until the server has taken in what was sent: after ``least`` seconds, three
    ``/healthz`` in a row answered within about its idle latency (``baseline``)."""
    await asyncio.sleep(least)
    probe = await Http.open(port)
    raw = request("GET", "/healthz")
    calm, deadline = 0, time.monotonic() + limit
    try:
        while calm < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            await probe.call(raw)
            calm = calm + 1 if time.perf_counter() - started < 3 * baseline + 0.005 else 0
            await asyncio.sleep(0.05)
    finally:
        probe.close()


async def idle_latency(port: int, n: int = 50) -> float:
    probe = await Http.open(port)
    raw = request("GET", "/healthz")
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await probe.call(raw)
        samples.append(time.perf_counter() - started)
    probe.close()
    return statistics.median(samples)


async def park(conn: Http, key: str, task_id: str) -> float:
    """Long-poll until the task is verified; when the answer arrived."""
    raw = request("GET", f"/v1/tasks/{task_id}/wait?timeout={WAIT}", key)
    while True:
        status, body = await conn.call(raw)
        if status != 200:
            raise RuntimeError(f"wait: {status} {body[:300]!r}")
        if json.loads(body)["status"] == "verified":
            return time.perf_counter()


@dataclass
class Wakeup:
    woken: list[float]  # decision sent → waiter answered, seconds
    calls: list[float]  # the decision request itself
    read: float  # one GET /v1/tasks/{id}, mean


async def wakeup(server: Server, keys: Keys, n: int) -> Wakeup:
    baseline = await idle_latency(server.port)
    ids = await create_tasks(server.port, keys.requester, n)
    conns = await open_many(server.port, n)
    waiters = [
        asyncio.create_task(park(c, keys.requester, i)) for c, i in zip(conns, ids, strict=True)
    ]
    await quiet(server.port, baseline, least=0.5 + n / 2000)
    if any(w.done() for w in waiters):
        raise RuntimeError("a waiter answered before any decision")
    decider = await Http.open(server.port)
    woken: list[float] = []
    calls: list[float] = []
    for task_id, waiter in zip(ids, waiters, strict=True):
        started = time.perf_counter()
        status, body = await decider.call(
            request("POST", f"/v1/tasks/{task_id}/decision", keys.reviewer, {"type": "approve"})
        )
        calls.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"decision: {status} {body[:300]!r}")
        woken.append(await waiter - started)
    close_all(conns)
    # a polling client's read, on the same server once the waiters are gone
    raw = request("GET", f"/v1/tasks/{ids[0]}", keys.requester)
    reads = 200
    started = time.perf_counter()
    for _ in range(reads):
        status, _ = await decider.call(raw)
    read = (time.perf_counter() - started) / reads
    decider.close()
    return Wakeup(woken, calls, read)


async def throughput(port: int, raw: bytes, seconds: float, warmup: float = 0.3) -> float:
    """Answers per second with ``CLIENTS`` connections sending ``raw`` back to back."""
    conns = [await Http.open(port) for _ in range(CLIENTS)]

    async def loop(conn: Http, until: float) -> int:
        count = 0
        while time.perf_counter() < until:
            status, body = await conn.call(raw)
            if status != 201:
                raise RuntimeError(f"{status} {body[:300]!r}")
            count += 1
        return count

    await asyncio.gather(*(loop(c, time.perf_counter() + warmup) for c in conns))
    started = time.perf_counter()
    counts = await asyncio.gather(*(loop(c, started + seconds) for c in conns))
    rate = sum(counts) / (time.perf_counter() - started)
    close_all(conns)
    return rate


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

    async def decide(ids: list[str]) -> None:
        conn = await Http.open(server.port)
        for task_id in ids:
            raw = request(
                "POST", f"/v1/tasks/{task_id}/decision", keys.reviewer, {"type": "approve"}
            )
            status, body = await conn.call(raw)
            if status != 200:
                raise RuntimeError(f"decision: {status} {body[:300]!r}")
        conn.close()

    # warm-up: a few waiters park and are answered, so the code paths are loaded (few, so
    # that little freed memory is left over for the crowd to reuse)
    conns, waiters = await crowd(warm, 20)
    await quiet(server.port, baseline, least=0.3)
    await decide(warm)
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
    await decide(tasks[:1])
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


def wakeup_rows(store: str, n: int, w: Wakeup | None) -> list[Row]:
    head = f"{store}: decision → long-poll answer"
    if w is None:
        return [row(BENCH, f"{head} p50, {n:,} waiters", None, "ms", note=NO_POSTGRES)]
    rows = [
        row(
            BENCH,
            f"{head} p{q}, {n:,} waiters",
            _ms(w.woken, q),
            "ms",
            anchor=f"the decision POST itself, p{q} ({_ms(w.calls, q):.1f} ms)",
            ratio=ratio(_ms(w.woken, q), _ms(w.calls, q)),
        )
        for q in (50, 99)
    ]
    for interval, who in SDK_POLLS:
        for q in (50, 99):
            seen = (q / 100 * interval + w.read) * 1000
            rows.append(
                row(
                    BENCH,
                    f"{store}: polling every {interval:g} s ({who}), p{q} = "
                    f"{q / 100 * interval:g} s + one GET ({w.read * 1000:.1f} ms)",
                    seen,
                    "ms",
                    anchor=f"long-poll p{q}",
                    ratio=ratio(seen, _ms(w.woken, q)),
                )
            )
    return rows


def throughput_row(store: str, rate: float | None, noop: float) -> Row:
    figure = f"{store}: POST /v1/tasks throughput, {CLIENTS} connections"
    if rate is None:
        return row(BENCH, figure, None, "req/s", note=NO_POSTGRES)
    return row(
        BENCH,
        figure,
        rate,
        "req/s",
        anchor=f"no-op FastAPI POST, same uvicorn ({noop:,.0f} req/s)",
        ratio=ratio(rate, noop),
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
    waiters, crowd, seconds = (200, 2_000, 1.0) if quick else (1_000, 10_000, 5.0)
    limit = raise_fd_limit()  # before any server starts: they inherit it
    if limit < crowd + 1_000:
        crowd = max(100, limit - 1_000)
    body = request("POST", "/v1/tasks", None, REVIEW)
    have_postgres = await postgres_available()
    with tempfile.TemporaryDirectory(prefix="handrail-bench-http-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            urls = {
                "SQLite file": f"sqlite:///{workdir / 'bench.db'}",
                "memory": f"sqlite:///{workdir / 'memory.db'}",
            }
            if have_postgres:
                urls["PostgreSQL"] = await stack.enter_async_context(fresh_database())
            keys = {name: await prepare(url) for name, url in urls.items()}
            # every process starts at once (their imports take seconds), then each is
            # measured in turn while the others idle
            servers = {name: start_handrail(url, workdir) for name, url in urls.items()}
            servers["noop"] = start_noop(workdir)
            try:
                await asyncio.gather(*(s.ready() for s in servers.values()))
                noop = await throughput(servers["noop"].port, body, seconds)
                rows: list[Row] = []
                through: list[Row] = []
                for store in ("SQLite file", "PostgreSQL"):
                    if store not in servers:
                        rows += wakeup_rows(store, waiters, None)
                        through.append(throughput_row(store, None, noop))
                        continue
                    server, key = servers[store], keys[store]
                    rows += wakeup_rows(store, waiters, await wakeup(server, key, waiters))
                    raw = request("POST", "/v1/tasks", key.requester, REVIEW)
                    rate = await throughput(server.port, raw, seconds)
                    through.append(throughput_row(store, rate, noop))
                rows += through
                rows += memory_rows(await memory(servers["memory"], keys["memory"], crowd))
            finally:
                for server in servers.values():
                    server.stop()
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
    print(f"{time.perf_counter() - started:.1f} s")
