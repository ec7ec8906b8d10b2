"""Real servers for the tests that need them: the app in a thread of this process
(:func:`serve_in_thread`); uvicorn in a subprocess (scale-out, crash), keys made with the
``handrail keys create`` command, and a webhook receiver on loopback that records what it
is sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx

LOOPBACK = "127.0.0.1"
REVIEW: dict[str, Any] = {
    "kind": "review",
    "action": {"name": "send_email", "args": {"to": "a@example.com"}},
}


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick; free until someone binds it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Threaded:
    """An app served on a loopback port by uvicorn in a thread with a loop of its own."""

    url: str
    loop: asyncio.AbstractEventLoop
    stop: Callable[[], None]


def serve_in_thread(
    app: Any, name: str = "uvicorn", port: int = 0, options: dict[str, Any] | None = None
) -> Threaded:
    """``app`` (with its lifespan) on loopback, started: on ``port``, or on a free one;
    ``stop()`` ends it. ``options`` override uvicorn's (``handrail serve``'s:
    ``handrail_server.protocol.server_options()``)."""
    import uvicorn  # noqa: PLC0415 - only the in-process servers need it

    given: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "on",
        "http": "h11",
        "ws": "none",
        "loop": "asyncio",
        "timeout_graceful_shutdown": 1,
        **(options or {}),
    }
    config = uvicorn.Config(app, **given)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(server.serve(sockets=[sock])),
        name=name,
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server took too long to start"
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)
        loop.close()
        sock.close()

    return Threaded(f"http://{LOOPBACK}:{port}", loop, stop)


async def cli_key(database_url: str, org: str, role: str, principal: str | None = None) -> str:
    """``handrail keys create`` in a subprocess (it migrates the database first); its
    output is the key alone."""
    args = ["keys", "create", "--org", org, "--role", role, "--database-url", database_url]
    if principal:
        args += ["--as", principal]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "handrail._cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode:
        raise RuntimeError(f"handrail keys create failed ({proc.returncode}): {err.decode()}")
    key = out.decode().strip()
    assert key.startswith("hr_live_") and "\n" not in key, out
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def long_poll(
    client: httpx.AsyncClient, key: str, task_id: str, timeout: float = 30
) -> tuple[dict[str, Any], float]:
    """``GET /v1/tasks/{id}/wait`` once: the task as answered, and when the answer came."""
    got = await client.get(f"/v1/tasks/{task_id}/wait?timeout={timeout:g}", headers=bearer(key))
    woke = time.perf_counter()
    assert got.status_code == 200, got.text
    task: dict[str, Any] = got.json()
    return task, woke


async def all_items(
    client: httpx.AsyncClient, key: str, path: str, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a paginated list (``data``, ``has_more``, ``next_cursor``)."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, "limit": 500, **({"after": after} if after is not None else {})}
        page = await client.get(path, params=query, headers=bearer(key))
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["data"]
        if not body["has_more"]:
            return items
        after = body["next_cursor"]


async def api_key(
    client: httpx.AsyncClient, admin: str, role: str, principal: str, *, sandbox: bool = False
) -> str:
    """Another key in the admin's organisation (``sandbox``: of its sandbox), made over HTTP
    (faster than the CLI)."""
    made = await client.post(
        "/v1/keys",
        json={"role": role, "principal": principal, "sandbox": sandbox},
        headers=bearer(admin),
    )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


@dataclass
class LiveServer:
    """``python -m uvicorn handrail_server.main:create_app --factory`` on a free port,
    configured through ``HANDRAIL_*`` variables. Its output goes to a log file, shown
    when it fails to start."""

    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.port}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "HANDRAIL_DATABASE_URL": self.database_url,
            "HANDRAIL_ALLOW_PRIVATE_WEBHOOKS": "true",
            "HANDRAIL_UPLOAD_DIR": str(self.workdir / "uploads"),
            "HANDRAIL_RATE_LIMIT_PER_SECOND": "100000",
            "HANDRAIL_RATE_LIMIT_BURST": "100000",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "handrail_server.main:create_app",
                    "--factory",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def ready(self, timeout: float = 30.0) -> None:
        """Until ``/healthz`` answers 200 (fails with the server's log if it died)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=2) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {self.process.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server did not start in {timeout} s:\n{self.log()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup, whatever was in flight is cut off."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    sender: str | None  # which server process sent it, when the receiver could tell


class Receiver:
    """A webhook endpoint on loopback (a thread): answers 200 to every POST and keeps
    each request whose body came whole; one cut short (its sender killed between the
    headers and the body) is dropped, as any HTTP server drops it, and counted in
    ``cut_short``. ``identify(client_port)`` may name the process behind a connection;
    ``respond(request)`` may choose another status, or None to hang up without answering
    (after the request was kept: a receiver that did the work but whose answer was lost)."""

    def __init__(
        self,
        port: int | None = None,
        identify: Callable[[int], str | None] | None = None,
        respond: Callable[[Received], int | None] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.identify = identify
        self.respond = respond
        self.received: list[Received] = []
        self.cut_short = 0  # requests whose body never came whole: not kept, not answered
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/hooks"

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the senders' pools expect

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender hung up (or died) mid-request
                    with owner._lock:
                        owner.cut_short += 1
                    self.close_connection = True
                    return
                port = self.client_address[1]
                sender = owner.identify(port) if owner.identify else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                got = Received(headers.get("webhook-id", ""), headers, body, port, sender)
                with owner._lock:
                    owner.received.append(got)
                status = owner.respond(got) if owner.respond else 200
                if status is None:
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True
            request_queue_size: ClassVar[int] = 128

        self._server = Server((LOOPBACK, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
