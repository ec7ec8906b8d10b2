"""The reviewer web UI over real HTTP: how soon a new task shows in a signed-in reviewer's
live queue, against a polling page, and what its pages cost against the JSON API.

Real server processes as in the ``http`` benchmark (``python -m uvicorn
handrail_server.main:create_app --factory``), one on a SQLite file and one on a fresh
PostgreSQL database (not with ``--quick``; its rows read "skipped (no PostgreSQL)" without a
server at ``HANDRAIL_BENCH_POSTGRES_URL``); both start at once, then each is measured in
turn. The reviewer signs in as a browser does: ``GET /signin`` for the form's token and
cookie, then ``POST /signin`` with the API key, which sets the session cookie every page
below is fetched with. The clients are the raw keep-alive HTTP/1.1 connections of
``_http.py``. The organisation holds 199 open review tasks besides the one being measured,
so the queue shows 200 rows (the page's limit) whenever a new task is in it.

- **Page cost**: with 200 open tasks, the full queue page (``GET /queue``, which asks the
  engine's queue twice: for the rows, and for every task type, for its filter) and a task
  page (``GET /tasks/{id}``: the task, its history and its files), p50 over 100 requests
  each (``--quick`` 20), taken in turns on one connection with the JSON queue they are
  anchored to (``GET /v1/queue?limit=200``, the same 200 tasks), so a busy moment weighs
  on all three alike.
- **Live queue**: the session holds the queue's event stream (``GET /queue/events``) open
  while a requester creates 200 review tasks (quick 20) one at a time (``POST /v1/tasks``).
  The reviewer fetches the table's rows (``GET /queue/rows``) on each ``change`` event, and
  each figure runs from sending the POST to having the rows that hold the new task's id
  (p50 and p99), anchored to that POST's own latency in the same run. Each task is then
  approved over the API, and once its events have passed the rows are fetched once more,
  so every sample starts from a quiet stream. The browser's page waits 150 ms after an
  event before it fetches (to batch bursts); that wait is not counted here.
- **Polling page, on the same server**: 20 pages (tabs of the same session) fetching
  ``GET /queue/rows`` every 2 s, each from a random phase, see 5 new tasks (quick 1),
  each created at a random moment and approved once every page has seen it; each figure
  runs from sending the POST to one page's rows holding the id (20 samples a task).
  Anchored to the live queue's figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

from _common import NO_POSTGRES, Row, percentile, postgres_available, ratio, row, table
from _http import (
    HOST,
    REVIEW,
    Http,
    Keys,
    Server,
    close_all,
    decide,
    fresh_database,
    prepare,
    request,
    start_handrail,
)

BENCH = "ui"
Store = Literal["SQLite file", "PostgreSQL"]
STORES: tuple[Store, ...] = ("SQLite file", "PostgreSQL")
BACKGROUND = 199  # open tasks before any is measured: the queue shows 200 with a new one
QUEUE_LIMIT = 200  # rows the queue page shows (web/pages/queue.py)
INTERVAL = 2.0  # seconds between a polling page's fetches
DEBOUNCE_MS = 150  # the browser page's wait after an event (static/app.js), not counted
_SIGNIN_TOKEN = re.compile(rb'name="signin_token" value="([^"]+)"')


@dataclass(frozen=True)
class Plan:
    live: int  # tasks created one at a time under the live queue
    pollers: int  # polling reviewer sessions
    rounds: int  # tasks they each see
    pages: int  # requests per page figure


QUICK_SKIPS = "not run with --quick"
QUICK = Plan(live=20, pollers=20, rounds=1, pages=20)
FULL = Plan(live=200, pollers=20, rounds=5, pages=100)


# ---------------------------------------------------------------- signing in


def page(method: str, path: str, cookie: str, form: dict[str, str] | None = None) -> bytes:
    """A browser's request: the cookie, and a form body for a POST."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Cookie: {cookie}"]
    data = b""
    if form is not None:
        data = urlencode(form).encode()
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def _exchange(conn: Http, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request; the status, the cookies it sets (name → value) and the body."""
    await conn.send(raw)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    cookies: dict[str, str] = {}
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "set-cookie":
            pair = value.strip().split(";", 1)[0]
            key, _, val = pair.partition("=")
            cookies[key] = val
        elif name.strip().lower() == "content-length":
            length = int(value)
    body = await conn.reader.readexactly(length) if length else b""
    return int(head[9:12]), cookies, body


async def sign_in(port: int, key: str) -> str:
    """Sign in through the form as a browser does; the session cookie (``name=value``)."""
    conn = await Http.open(port)
    try:
        status, cookies, body = await _exchange(conn, request("GET", "/signin"))
        found = _SIGNIN_TOKEN.search(body)
        if status != 200 or found is None or "handrail_signin" not in cookies:
            raise RuntimeError(f"sign-in form: {status} {body[:300]!r}")
        form = {"api_key": key, "signin_token": found.group(1).decode(), "next": "/queue"}
        raw = page("POST", "/signin", f"handrail_signin={cookies['handrail_signin']}", form)
        status, cookies, body = await _exchange(conn, raw)
        if status != 303 or not cookies.get("handrail_session"):
            raise RuntimeError(f"sign in: {status} {body[:300]!r}")
        return f"handrail_session={cookies['handrail_session']}"
    finally:
        conn.close()


async def rows(conn: Http, cookie: str) -> bytes:
    status, body = await conn.call(page("GET", "/queue/rows", cookie))
    if status != 200:
        raise RuntimeError(f"queue rows: {status} {body[:300]!r}")
    return body


async def open_tasks(port: int, key: str, n: int, clients: int = 8) -> list[str]:
    """Exactly ``n`` review tasks (``create_tasks`` may make a few more, which would push
    the measured ones out of the queue's 200 rows)."""
    conns = [await Http.open(port) for _ in range(clients)]
    raw = request("POST", "/v1/tasks", key, REVIEW)
    ids: list[str] = []
    left = [n]

    async def make(conn: Http) -> None:
        while left[0] > 0:
            left[0] -= 1
            status, body = await conn.call(raw)
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:300]!r}")
            ids.append(json.loads(body)["id"])

    try:
        await asyncio.gather(*(make(c) for c in conns))
    finally:
        close_all(conns)
    return ids


# ---------------------------------------------------------------- live queue


@dataclass
class Live:
    seen: list[float]  # POST sent → rows holding the task fetched, seconds
    calls: list[float]  # the POST itself


async def _follow(conn: Http, cookie: str, events: asyncio.Queue[str]) -> None:
    """Read the queue's event stream, handing each event's name on."""
    await conn.send(page("GET", "/queue/events", cookie))
    async for name, _ in conn.events():
        events.put_nowait(name)
    raise RuntimeError("the queue's event stream ended")


async def _next(events: asyncio.Queue[str], follower: asyncio.Task[None]) -> None:
    """Until the next event (or the stream's failure)."""
    getter = asyncio.ensure_future(events.get())
    await asyncio.wait({getter, follower}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not getter.done():
        getter.cancel()
        if follower.done():
            follower.result()
        raise TimeoutError("no event came from the queue's stream in 30 s")


async def _settle(events: asyncio.Queue[str], fetch: Http, cookie: str) -> None:
    """Let the events of a task's approval come until the stream is quiet for a moment,
    then fetch the rows once (as the page does after a burst)."""
    with contextlib.suppress(TimeoutError):
        while True:
            await asyncio.wait_for(events.get(), 0.05)
    await rows(fetch, cookie)


async def live(server: Server, keys: Keys, cookie: str, n: int) -> Live:
    """``n`` tasks created one at a time while the session holds the event stream open."""
    events: asyncio.Queue[str] = asyncio.Queue()
    stream, fetch, agent, decider = [await Http.open(server.port) for _ in range(4)]
    follower = asyncio.create_task(_follow(stream, cookie, events))
    create = request("POST", "/v1/tasks", keys.requester, REVIEW)
    seen: list[float] = []
    calls: list[float] = []
    try:
        await rows(fetch, cookie)  # warm
        await asyncio.sleep(0.2)  # the stream subscribes just after its first (comment) frame
        for _ in range(n):
            while not events.empty():
                events.get_nowait()
            started = time.perf_counter()
            status, body = await agent.call(create)
            calls.append(time.perf_counter() - started)
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:300]!r}")
            task_id = json.loads(body)["id"].encode()
            while True:
                await _next(events, follower)
                fetched = await rows(fetch, cookie)
                if task_id in fetched:
                    seen.append(time.perf_counter() - started)
                    break
            if fetched.count(b"<tr data-task=") != QUEUE_LIMIT:
                raise RuntimeError(f"the queue shows {fetched.count(b'<tr data-task=')} rows")
            await decide(decider, task_id.decode(), keys.reviewer)
            await _settle(events, fetch, cookie)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
        close_all([stream, fetch, agent, decider])
    return Live(seen, calls)


# ---------------------------------------------------------------- polling page


async def polling(server: Server, keys: Keys, cookie: str, plan: Plan) -> list[float]:
    """POST sent → a polling page's rows hold the task, for every poller and task. The
    pollers share the session, as tabs of one browser would."""
    rng = random.Random(11)
    conns = [await Http.open(server.port) for _ in range(plan.pollers)]
    looking: dict[bytes, float] = {}  # the task being looked for, and when its POST was sent
    found: list[dict[bytes, float]] = [{} for _ in conns]  # per poller: task → when seen

    async def poll(i: int) -> None:
        await asyncio.sleep(rng.uniform(0, INTERVAL))
        while True:
            body = await rows(conns[i], cookie)
            at = time.perf_counter()
            for task_id in looking:
                if task_id in body and task_id not in found[i]:
                    found[i][task_id] = at
            await asyncio.sleep(INTERVAL)

    pollers = [asyncio.create_task(poll(i)) for i in range(len(conns))]
    agent, decider = await Http.open(server.port), await Http.open(server.port)
    create = request("POST", "/v1/tasks", keys.requester, REVIEW)
    samples: list[float] = []
    try:
        for n in range(plan.rounds):
            # the first right away: each poller's first fetch is at a random phase already
            await asyncio.sleep(rng.uniform(0, INTERVAL) if n else 0)
            started = time.perf_counter()
            status, body = await agent.call(create)
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:300]!r}")
            task_id = json.loads(body)["id"].encode()
            looking[task_id] = started
            deadline = started + 4 * INTERVAL
            while sum(task_id in f for f in found) < len(conns):
                if time.perf_counter() > deadline:
                    raise RuntimeError("a polling page never saw its task")
                if any(p.done() for p in pollers):
                    next(p for p in pollers if p.done()).result()
                await asyncio.sleep(0.05)
            samples += [f[task_id] - started for f in found]
            del looking[task_id]
            await decide(decider, task_id.decode(), keys.reviewer)
    finally:
        for p in pollers:
            p.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        close_all([*conns, agent, decider])
    return samples


# ---------------------------------------------------------------- page cost


@dataclass
class Pages:
    queue: list[float]  # GET /queue, seconds
    task: list[float]  # GET /tasks/{id}
    api: list[float]  # GET /v1/queue?limit=200


async def pages(server: Server, keys: Keys, cookie: str, ids: Sequence[str], n: int) -> Pages:
    """The three requests taken in turn on one connection, ``n`` times each (after a few
    unmeasured turns), so that a busy moment weighs on all three alike."""
    conn = await Http.open(server.port)
    api = request("GET", f"/v1/queue?limit={QUEUE_LIMIT}", keys.reviewer)
    queue = page("GET", "/queue", cookie)
    out = Pages([], [], [])
    try:
        for turn in range(n + 5):
            task = page("GET", f"/tasks/{ids[turn % len(ids)]}", cookie)
            for raw, into, want in ((queue, out.queue, b"<tr data-task="), (task, out.task, None)):
                started = time.perf_counter()
                status, body = await conn.call(raw)
                took = time.perf_counter() - started
                if status != 200 or (want is not None and body.count(want) != len(ids)):
                    raise RuntimeError(
                        f"page: {status} {body.count(b'<tr data-task=')} {body[:300]!r}"
                    )
                if turn >= 5:
                    into.append(took)
            started = time.perf_counter()
            status, body = await conn.call(api)
            took = time.perf_counter() - started
            if status != 200 or len(json.loads(body)["data"]) != len(ids):
                raise RuntimeError(f"api queue: {status} {body[:300]!r}")
            if turn >= 5:
                out.api.append(took)
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------- rows


def _ms(samples: Sequence[float], q: float) -> float:
    return percentile(samples, q) * 1000


def live_rows(
    store: Store, live_: Live | None, polled: list[float] | None, why: str = NO_POSTGRES
) -> list[Row]:
    head = f"{store}: new task → in the reviewer's queue rows"
    if live_ is None or polled is None:
        return [
            row(BENCH, f"{head}, live (SSE) p50", None, "ms", note=why),
            row(BENCH, f"{head}, polling every {INTERVAL:g} s p50", None, "ms", note=why),
        ]
    made: list[Row] = []
    for q in (50, 99):
        value, anchor = _ms(live_.seen, q), _ms(live_.calls, q)
        made.append(
            row(
                BENCH,
                f"{head}, live (SSE → GET /queue/rows) p{q}, {len(live_.seen)} tasks",
                value,
                "ms",
                anchor=f"the POST /v1/tasks itself, p{q} ({anchor:.1f} ms)",
                ratio=ratio(value, anchor),
                chart="ui-live",
                label=f"live (SSE), {store}",
                series=f"p{q}",
            )
        )
    for q in (50, 99):
        value, anchor = _ms(polled, q), _ms(live_.seen, q)
        made.append(
            row(
                BENCH,
                f"{head}, polling GET /queue/rows every {INTERVAL:g} s p{q}, {len(polled)} samples",
                value,
                "ms",
                anchor=f"live (SSE) p{q} ({anchor:.1f} ms)",
                ratio=ratio(value, anchor),
                chart="ui-live",
                label=f"polling every {INTERVAL:g} s, {store}",
                series=f"p{q}",
            )
        )
    return made


def page_rows(store: Store, got: Pages | None, why: str = NO_POSTGRES) -> list[Row]:
    figures = (("GET /queue (full page)", "queue"), ("GET /tasks/{id} (task page)", "task"))
    if got is None:
        return [row(BENCH, f"{store}: {what} p50", None, "ms", note=why) for what, _ in figures]
    anchor = statistics.median(got.api) * 1000
    made: list[Row] = []
    for what, name in figures:
        samples: list[float] = getattr(got, name)
        value = statistics.median(samples) * 1000
        made.append(
            row(
                BENCH,
                f"{store}: {what} p50, {QUEUE_LIMIT} open tasks, {len(samples)} requests",
                value,
                "ms",
                anchor=f"GET /v1/queue?limit={QUEUE_LIMIT} (JSON) p50 ({anchor:.1f} ms)",
                ratio=ratio(value, anchor),
                chart="ui-pages",
                label=what,
                series=store,
            )
        )
    return made


# ---------------------------------------------------------------- run


async def measure(
    server: Server, keys: Keys, store: Store, plan: Plan
) -> tuple[Live, list[float], Pages]:
    ids = await open_tasks(server.port, keys.requester, BACKGROUND + 1)
    cookie = await sign_in(server.port, keys.reviewer)
    got = await pages(server, keys, cookie, ids, plan.pages)
    _progress(f"{store}: pages")
    conn = await Http.open(server.port)  # back to 199 open: each new task makes 200
    await decide(conn, ids.pop(), keys.reviewer)
    conn.close()
    pushed = await live(server, keys, cookie, plan.live)
    _progress(f"{store}: live queue")
    polled = await polling(server, keys, cookie, plan)
    _progress(f"{store}: polling pages")
    return pushed, polled, got


async def run(quick: bool) -> list[Row]:
    plan = QUICK if quick else FULL
    have_postgres = not quick and await postgres_available()
    stores = STORES if have_postgres else STORES[:1]
    why = QUICK_SKIPS if quick else NO_POSTGRES
    with tempfile.TemporaryDirectory(prefix="handrail-bench-ui-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            urls: dict[Store, str] = {"SQLite file": f"sqlite:///{workdir / 'ui.db'}"}
            if have_postgres:
                urls["PostgreSQL"] = await stack.enter_async_context(fresh_database())
            keys = {store: await prepare(url) for store, url in urls.items()}
            servers = {store: start_handrail(url, workdir) for store, url in urls.items()}
            try:
                _T0[0] = time.perf_counter()
                await asyncio.gather(*(s.ready() for s in servers.values()))
                _progress(f"{len(servers)} servers ready")
                got = {s: await measure(servers[s], keys[s], s, plan) for s in stores}
            finally:
                for server in servers.values():
                    server.stop()
    made: list[Row] = []
    for store in STORES:
        pushed, polled, _ = got.get(store, (None, None, None))
        made += live_rows(store, pushed, polled, why)
    for store in STORES:
        made += page_rows(store, got[store][2] if store in got else None, why)
    return made


_T0 = [0.0]


def _progress(what: str) -> None:
    """A line per step on the way, with the seconds since the previous one."""
    now = time.perf_counter()
    print(f"  ui: {what} ({now - _T0[0]:.1f} s)", flush=True)
    _T0[0] = now


if __name__ == "__main__":
    started = time.perf_counter()
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
    print(f"{time.perf_counter() - started:.1f} s")
