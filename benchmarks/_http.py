"""Real HTTP for the benchmarks: a raw HTTP/1.1 client and server processes to aim it at.

The client is hand-written asyncio (keep-alive connections, ``Content-Length`` answers and
chunked server-sent event streams) so that it costs far less than the server it measures.
Servers are ``python -m uvicorn`` processes (the Handrail server, or the no-op FastAPI app
in ``noop_app.py``) with the same settings, one or several worker processes each.
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

from _common import POSTGRES_URL

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ORG = "bench"
# the same settings for every server process, the no-op app included
UVICORN = (
    *("--host", HOST, "--log-level", "warning", "--no-access-log"),
    *("--backlog", "4096", "--timeout-keep-alive", "60"),
)
REVIEW = {"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}}
BATCH = 250  # connections opened at once
WAIT = 300  # seconds a long-poll may wait (the server is told it may wait that long)


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


def decision(task_id: str, key: str) -> bytes:
    return request("POST", f"/v1/tasks/{task_id}/decision", key, {"type": "approve"})


def _headers(head: bytes) -> dict[bytes, bytes]:
    found = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found[name.strip().lower()] = value.strip()
    return found


class Http:
    """One keep-alive HTTP/1.1 connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Http:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        headers = _headers(head)
        if b"transfer-encoding" in headers:
            raise RuntimeError("chunked answers are read with events()")
        length = int(headers.get(b"content-length", b"0"))
        return int(head[9:12]), await self.reader.readexactly(length) if length else b""

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        await self.send(raw)
        return await self.answer()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """The server-sent events of a chunked answer (after ``send``), as they come:
        (event name, parsed data); comments are skipped. Ends with the stream."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        if int(head[9:12]) != 200:
            raise RuntimeError(f"event stream: {head[:200]!r}")
        buffer = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return
            buffer += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                event, data = "message", []
                for line in frame.decode().split("\n"):
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                if data:
                    yield event, json.loads("\n".join(data))

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
    workers: int = 1

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the uvicorn process itself, or its children
        when it supervises several workers."""
        if self.workers == 1:
            return [self.pid]
        return [
            p.pid
            for p in psutil.Process(self.pid).children()
            if any(c.laddr.port == self.port for c in p.net_connections("tcp"))
        ]

    def owner(self, conn: Http) -> int | None:
        """The worker process holding the server end of ``conn``."""
        mine = conn.local_port
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(pid).net_connections("tcp"):
                    if c.raddr and c.raddr.port == mine and c.laddr.port == self.port:
                        return pid
        return None

    async def connections(self, n: int, limit: float = 20.0) -> list[Http]:
        """``n`` connections, spread evenly over the workers as a load balancer would
        (the kernel hands each to whichever worker accepts first, often the same one):
        a connection beyond its worker's share is closed and another opened, for up to
        ``limit`` seconds."""
        if self.workers == 1:
            return [await Http.open(self.port) for _ in range(n)]
        share = -(-n // self.workers)
        held: dict[int, list[Http]] = {}
        deadline = time.monotonic() + limit
        while sum(map(len, held.values())) < n:
            conn = await Http.open(self.port)
            await conn.call(request("GET", "/healthz"))  # accepted by now
            pid = self.owner(conn) or 0
            if len(held.get(pid, ())) < share or time.monotonic() > deadline:
                held.setdefault(pid, []).append(conn)
            else:
                conn.close()
        return [c for conns in held.values() for c in conns]

    def spread(self, conns: Sequence[Http]) -> list[int]:
        """How many of ``conns`` each worker holds (most first)."""
        counts: dict[int, int] = dict.fromkeys(self.worker_pids(), 0)
        for conn in conns:
            pid = self.owner(conn)
            if pid is not None:
                counts[pid] = counts.get(pid, 0) + 1
        return sorted(counts.values(), reverse=True)

    async def ready(self, timeout: float = 120.0) -> None:
        """Until every worker answers ``/healthz`` (each new connection goes to whichever
        worker accepts it first, so they are tried until each has been seen)."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')}")
            with contextlib.suppress(OSError):
                conn = await Http.open(self.port)
                try:
                    status, _ = await conn.call(request("GET", "/healthz"))
                    if status == 200:
                        seen.add((self.owner(conn) if self.workers > 1 else self.pid) or 0)
                finally:
                    conn.close()
                if len(seen & set(self.worker_pids())) >= self.workers:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start: {self.log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start(
    app: Sequence[str], workdir: Path, env: dict[str, str] | None = None, workers: int = 1
) -> Server:
    port = free_port()
    log = workdir / f"server-{port}.log"
    extra = ("--workers", str(workers)) if workers > 1 else ()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *app, *UVICORN, "--port", str(port), *extra],
            env={**os.environ, **(env or {})},
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, port, log, workers)


def start_handrail(database_url: str, workdir: Path, workers: int = 1) -> Server:
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
        workers,
    )


def start_noop(workdir: Path, workers: int = 1) -> Server:
    return start(("noop_app:app", "--app-dir", str(HERE)), workdir, workers=workers)


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


# ---------------------------------------------------------------- pacing and tasks


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


async def create_tasks(port: int, key: str, n: int, clients: int = 16) -> list[str]:
    conns = [await Http.open(port) for _ in range(min(clients, n))]
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


async def decide(conn: Http, task_id: str, key: str) -> None:
    status, body = await conn.call(decision(task_id, key))
    if status != 200:
        raise RuntimeError(f"decision: {status} {body[:300]!r}")


async def park(conn: Http, key: str, task_id: str) -> float:
    """Long-poll until the task is verified; when the answer arrived."""
    raw = request("GET", f"/v1/tasks/{task_id}/wait?timeout={WAIT}", key)
    while True:
        status, body = await conn.call(raw)
        if status != 200:
            raise RuntimeError(f"wait: {status} {body[:300]!r}")
        if json.loads(body)["status"] == "verified":
            return time.perf_counter()
