"""Malformed, oversized and hostile input: never a 5xx, and nothing refused changes anything.

A server process on SQLite, then one on PostgreSQL (a fresh database of the shared
server), each with background jobs off (so only requests change the database), a 1 MiB
upload limit and private webhook targets forbidden, and a little state to aim at: two
organisations with their keys, money, an open and a decided task. Then:

- **schemathesis** over the server's own OpenAPI schema: valid and invalid requests for
  every operation (the two endless event streams left out), with an admin key;
- then **a hand-written list** of requests (below, ``cases``): broken and non-JSON bodies,
  invalid JSON numbers, wrong content types, invalid UTF-8, out-of-range and wrongly typed
  fields, SQL and path-traversal strings, another organisation's ids, the wrong role, bad
  keys, webhook targets aimed at loopback, link-local and file URLs, a 10,000-character
  id, 1,000 query parameters, a 100 KB header, an oversized or forbidden upload, JSON
  nested 100,000 deep, NUL bytes and lone surrogates in text, and an 8 MiB body.

Each request is answered, and the database is read before and after it: every table but
the stored idempotency replies, row by row. A request answered with an error (4xx, 5xx)
must leave it exactly as it was (410 excepted: acting on a task past its deadline expires
it, and says so). A request the list marks as one to refuse must get a 4xx; others (a NUL
byte in a name, say) may be accepted, but never with a 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from sqlalchemy.engine import make_url
from tests.postgres import POSTGRES_URL, fresh_database
from tests.server._live import REVIEW, LiveServer, bearer, cli_key

from ._drill import STARTUP, Check, Say, check, missing, nothing_lost

TITLE = "malformed, oversized and hostile input"
EXAMPLES = 3  # schemathesis cases per operation and mode
UPLOAD_LIMIT = 1024 * 1024
UNWATCHED = {"idempotency", "alembic_version"}  # stored replies are the protocol itself
# A refused decision is written to the audit log on purpose (who tried to decide what): the
# one trace a refusal leaves. Those entries, and the chain head they move, are not counted
# as a change; any other audit entry is.
AUDITED_REFUSAL = "decision.refused"
STREAMS = ("/v1/events", "/v1/tasks/{task_id}/events")
JSON = {"Content-Type": "application/json"}


@dataclass
class Case:
    name: str
    method: str
    path: str
    who: str = "admin"  # whose key: admin, requester, reviewer, rival, none, or a raw value
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] | None = None
    refuse: bool = True  # must be answered 4xx


@dataclass(frozen=True)
class Answer:
    name: str
    status: int
    refuse: bool
    changed: bool  # the database differs after it
    problem: bool  # a clear refusal: problem+json with a code (a peer's own format on /compat)
    from_app: bool  # carries X-Request-Id (so it came through the app, not uvicorn)


@dataclass
class StoreOutcome:
    answers: list[Answer] = field(default_factory=list)  # the hand-written list
    fuzzed: list[Answer] = field(default_factory=list)  # schemathesis
    skipped: list[str] = field(default_factory=list)  # operations it could not generate for
    normal_after: int = 0  # a plain create afterwards: its status
    alive: bool = False


@dataclass
class HostileOutcome:
    stores: dict[str, StoreOutcome] = field(default_factory=dict)


# ---------------------------------------------------------------- the database, row by row


class Digest:
    """A hash of every watched table's rows (sorted), over a synchronous connection."""

    def __init__(self, url: str) -> None:
        sync = make_url(url)
        if sync.drivername.startswith("postgresql"):
            sync = sync.set(drivername="postgresql+psycopg")
        self.engine = sa.create_engine(sync)
        self.tables = sa.MetaData()
        self.tables.reflect(self.engine)

    def __call__(self) -> str:
        h = hashlib.sha256()
        with self.engine.connect() as conn:
            for name, table in sorted(self.tables.tables.items()):
                if name in UNWATCHED or name == "audit_heads":
                    continue
                query = sa.select(table)
                if name == "audit_log":
                    query = query.where(table.c.kind != AUDITED_REFUSAL)
                h.update(name.encode())
                for line in sorted(repr(tuple(r)) for r in conn.execute(query)):
                    h.update(line.encode())
        return h.hexdigest()

    def close(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------- the hand-written list


def _raw(text: str) -> bytes:
    """A request body written out by hand (for what ``json.dumps`` would never write)."""
    return text.encode()


def cases(ids: dict[str, str]) -> list[Case]:
    """The hand-written requests, in order; ``ids``: an open and a decided task of the
    organisation, and an open task of its rival. Requests that may be taken in leave a task
    with odd values behind, so they come last, the biggest at the very end."""
    task: dict[str, Any] = {**REVIEW}
    open_, done, theirs = ids["open"], ids["done"], ids["rival"]
    tasks, usd = "/v1/tasks", "USD"
    deep = "[" * 100_000 + "]" * 100_000
    return [
        # malformed bodies
        Case("truncated JSON", "POST", tasks, "requester", content=b'{"kind": "revi'),
        Case("a JSON array for a body", "POST", tasks, "requester", content=b"[]"),
        Case("a JSON string for a body", "POST", tasks, "requester", content=b'"review"'),
        Case("null for a body", "POST", tasks, "requester", content=b"null"),
        Case("an empty body", "POST", tasks, "requester", content=b""),
        Case("invalid UTF-8", "POST", tasks, "requester", content=b'{"kind":"\xff"}'),
        Case(
            "JSON sent as text/plain", "POST", tasks, "requester",
            content=json.dumps(task).encode(), headers={"Content-Type": "text/plain"},
        ),
        Case(
            "a form instead of JSON", "POST", tasks, "requester", content=b"kind=review",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        # wrong values
        Case("an unknown kind", "POST", tasks, "requester", {"kind": "coffee"}),
        Case("sla_seconds negative", "POST", tasks, "requester", {**task, "sla_seconds": -1}),
        Case("sla_seconds a string", "POST", tasks, "requester", {**task, "sla_seconds": "x"}),
        Case(
            "sla_seconds Infinity (not JSON)", "POST", tasks, "requester",
            content=_raw('{"kind":"review","action":{"name":"x","args":{}},"sla_seconds":Infinity}'),
        ),
        Case(
            "sla_seconds 10**400", "POST", tasks, "requester",
            content=_raw(
                '{"kind":"review","action":{"name":"x","args":{}},"sla_seconds":1' + "0" * 400 + "}"
            ),
        ),
        Case(
            "a negative payout", "POST", tasks, "requester",
            {**task, "payout": {"currency": usd, "amount": "-1.00"}},
        ),
        Case(
            "a payout in thousandths", "POST", tasks, "requester",
            {**task, "payout": {"currency": usd, "amount": "0.001"}},
        ),
        Case(
            "an invalid output schema", "POST", tasks, "requester",
            {"kind": "judgment", "output_schema": {"type": "nonsense"}},
        ),
        Case(
            "a decision of no known type", "POST", f"{tasks}/{open_}/decision", "reviewer",
            {"type": "maybe"},
        ),
        Case(
            "modify without arguments", "POST", f"{tasks}/{open_}/decision", "reviewer",
            {"type": "modify"},
        ),
        *(
            Case(
                f"a deposit of {amount}", "POST", "/v1/deposits", "admin",
                {"amount": {"currency": usd, "amount": amount}},
                headers={"Idempotency-Key": f"hostile-{amount}"},
            )
            for amount in ("-5.00", "0.001", "99999999999999999999999999.00", "NaN", "abc")
        ),
        Case(
            "a deposit written 1e3", "POST", "/v1/deposits", "admin",
            {"amount": {"currency": usd, "amount": "1e3"}}, headers={"Idempotency-Key": "1e3"},
            refuse=False,
        ),
        Case(
            "a deposit in an unknown currency", "POST", "/v1/deposits", "admin",
            {"amount": {"currency": "XXX", "amount": "1.00"}}, headers={"Idempotency-Key": "xxx"},
        ),
        Case(
            "a deposit without an Idempotency-Key", "POST", "/v1/deposits", "admin",
            {"amount": {"currency": usd, "amount": "1.00"}},
        ),
        *(
            Case(f"GET /v1/tasks?{query}", "GET", f"{tasks}?{query}", "requester")
            for query in ("limit=-1", "limit=99999999999999999999", "status=bogus", "order=up")
        ),
        Case("a cursor of garbage", "GET", f"{tasks}?after=%00%ff", "requester", refuse=False),
        *(
            Case(f"a wait of {t} s", "GET", f"{tasks}/{open_}/wait?timeout={t}", "requester")
            for t in ("NaN", "-1", "1e999", "inf")
        ),
        # hostile
        Case("SQL in a task id", "GET", f"{tasks}/%27%20OR%201%3D1%20--", "requester"),
        Case(
            "SQL in a filter", "GET", f"{tasks}?status=posted%27%3BDROP%20TABLE%20tasks--",
            "requester",
        ),
        Case(
            "SQL in a path", "POST", f"{tasks}/x%27%3BDELETE%20FROM%20tasks--/cancel", "requester"
        ),
        Case(
            "path traversal to an upload", "GET", "/v1/uploads/..%2F..%2Fetc%2Fpasswd/content",
            "requester",
        ),
        Case("another organisation's task, read", "GET", f"{tasks}/{theirs}", "requester"),
        Case(
            "another organisation's task, decided", "POST", f"{tasks}/{theirs}/decision",
            "reviewer", {"type": "approve"},
        ),
        Case(
            "another organisation's task, cancelled", "POST", f"{tasks}/{theirs}/cancel",
            "requester",
        ),
        Case(
            "a requester deciding", "POST", f"{tasks}/{open_}/decision", "requester",
            {"type": "approve"},
        ),
        Case("a requester claiming", "POST", f"{tasks}/{open_}/claim", "requester"),
        Case("a reviewer creating a task", "POST", tasks, "reviewer", task),
        Case("a requester listing keys", "GET", "/v1/keys", "requester"),
        Case(
            "a requester making an admin key", "POST", "/v1/keys", "requester",
            {"role": "admin", "principal": "me"},
        ),
        Case(
            "a rival paying more than it has", "POST", tasks, "rival",
            {**task, "payout": {"currency": usd, "amount": "5.00"}},
        ),
        Case(
            "deciding a decided task", "POST", f"{tasks}/{done}/decision", "reviewer",
            {"type": "reject", "message": "again"},
        ),
        Case("cancelling a decided task", "POST", f"{tasks}/{done}/cancel", "requester"),
        Case("no key", "GET", tasks, "none"),
        Case("a made-up key", "GET", tasks, "Bearer hr_live_" + "0" * 40),
        Case("a bearer without a key", "GET", tasks, "Bearer"),
        Case("SQL for a key", "GET", tasks, "Bearer ' OR '1'='1"),
        Case(
            "an Idempotency-Key reused with another body", "POST", tasks, "requester",
            {**task, "metadata": {"other": True}}, headers={"Idempotency-Key": "seeded"},
        ),
        *(
            Case(f"a webhook to {target}", "POST", "/v1/webhooks", "admin", {"url": target})
            for target in (
                "http://127.0.0.1:8000/hook", "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/hook", "http://localhost/hook", "http://0x7f000001/hook",
                "file:///etc/passwd", "http://user:pass@example.invalid/hook",
            )
        ),
        # oversized
        Case("a 10,000-character task id", "GET", f"{tasks}/{'a' * 10_000}", "requester"),
        Case(
            "1,000 query parameters", "GET",
            tasks + "?" + "&".join(f"status=posted{i}" for i in range(1000)), "requester",
        ),
        Case(
            "a 100 KB header", "GET", tasks, "requester", headers={"X-Pad": "a" * 100_000},
        ),
        Case(
            "an upload over the limit", "POST", "/v1/uploads", "requester",
            files={"file": ("big.png", b"\x89PNG" + b"\0" * (UPLOAD_LIMIT + 10), "image/png")},
        ),
        Case(
            "an upload of a forbidden type", "POST", "/v1/uploads", "requester",
            files={"file": ("run.exe", b"MZ" + b"\0" * 100, "application/x-msdownload")},
        ),
        Case(
            "a 300-character Idempotency-Key", "POST", tasks, "requester", task,
            headers={"Idempotency-Key": "k" * 300},
        ),
        Case(
            "JSON nested 100,000 deep", "POST", tasks, "requester",
            content=_raw('{"kind":"review","action":{"name":"x","args":{"deep":' + deep + "}}}"),
        ),
        Case(
            "a number too large for a float in the payload", "POST", tasks, "requester",
            content=_raw('{"kind":"judgment","output_schema":{},"payload":{"n":1e400}}'),
        ),
        Case(
            "a number too large for a float in the metadata", "POST", tasks, "requester",
            content=_raw('{"kind":"review","action":{"name":"x"},"metadata":{"n":-1e400}}'),
        ),
        Case(
            "a number too large for a float in a HumanRail payload", "POST",
            "/compat/humanrail/v1/tasks", "requester",
            content=_raw(
                '{"idempotencyKey":"big","taskType":"t","payload":{"n":1e400},'
                '"outputSchema":{},"payout":{"currency":"USD","maxAmount":0}}'
            ),
        ),
        Case(
            "an Idempotency-Key with a control character", "POST", tasks, "requester", task,
            headers={"Idempotency-Key": "a\tb"},
        ),
        Case(
            "2,000 headers", "POST", tasks, "requester", task,
            headers={f"X-Hostile-{i}": "v" for i in range(2000)},
        ),
        Case(
            "a 1 MiB header", "POST", tasks, "requester", task,
            headers={"X-Hostile": "a" * (1 << 20)},
        ),
        # strange values, which may be taken in (but never with a 5xx)
        Case(
            "NaN (not JSON) in the arguments", "POST", tasks, "requester",
            content=_raw('{"kind":"review","action":{"name":"x","args":{"v":NaN}}}'),
        ),
        Case(
            "duplicate keys in the body", "POST", tasks, "requester",
            content=_raw('{"kind":"judgment","kind":"review","action":{"name":"x","args":{}}}'),
            refuse=False,
        ),
        Case(
            "a NUL byte in an action's name", "POST", tasks, "requester",
            {"kind": "review", "action": {"name": "send\u0000mail", "args": {}}}, refuse=False,
        ),
        Case(
            "a lone surrogate in an argument", "POST", tasks, "requester",
            content=_raw('{"kind":"review","action":{"name":"x","args":{"s":"\\ud800"}}}'),
            refuse=False,
        ),
        Case(
            "an 8 MiB body", "POST", tasks, "requester",
            {**task, "metadata": {"pad": "a" * (8 * 1024 * 1024)}},
        ),
    ]  # fmt: skip


# ---------------------------------------------------------------- running it


@dataclass
class _Target:
    server: LiveServer
    keys: dict[str, str]
    digest: Digest


def _headers(target: _Target, who: str, extra: dict[str, str]) -> dict[str, str]:
    if who == "none":
        auth = {}
    elif who.startswith("Bearer"):
        auth = {"Authorization": who}
    else:
        auth = bearer(target.keys[who])
    return {**auth, **extra}


# The peers' dialects answer errors in their own documented formats (docs/compat.md):
# what each must hold for a refusal to count as a clear one.
_DIALECT_ERRORS: dict[str, Any] = {
    "/compat/humanrail/": lambda b: bool((b.get("error") or {}).get("code")) and "requestId" in b,
    "/compat/humanops/": lambda b: bool(b.get("error")),
    "/compat/humancheck/": lambda b: bool(b.get("detail")),
}


def _clear_refusal(path: str, headers: Any, body: bytes) -> bool:
    """The refusal is in the API's documented error format, with a code or a message:
    problem details with a ``code`` on the native API, the peer's own shape under
    ``/compat``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    for prefix, clear in _DIALECT_ERRORS.items():
        if path.startswith(prefix):
            return bool(clear(parsed))
    kind = headers.get("content-type", "")
    return kind.startswith("application/problem+json") and bool(parsed.get("code"))


def _answer(
    name: str,
    path: str,
    refuse: bool,
    status: int,
    headers: Any,
    body: bytes,
    before: str,
    after: str,
) -> Answer:
    clear = _clear_refusal(path, headers, body)
    return Answer(name, status, refuse, before != after, clear, "x-request-id" in headers)


def _hand(target: _Target, ids: dict[str, str]) -> list[Answer]:
    answers = []
    fresh = httpx.Limits(max_keepalive_connections=0)  # one request cannot spoil the next
    with httpx.Client(base_url=target.server.url, trust_env=False, timeout=60, limits=fresh) as c:
        for case in cases(ids):
            headers = _headers(target, case.who, case.headers)
            if case.content is not None and "Content-Type" not in headers:
                headers = {**JSON, **headers}
            before = target.digest()
            try:
                r = c.request(
                    case.method,
                    case.path,
                    json=case.json,
                    content=case.content,
                    headers=headers,
                    files=case.files,
                )
                status, got, body = r.status_code, r.headers, r.content
            except httpx.TransportError as exc:  # no answer at all
                status, got, body = 0, httpx.Headers(), b""
                case.name += f" ({type(exc).__name__})"
            after = target.digest()
            answers.append(
                _answer(case.name, case.path, case.refuse, status, got, body, before, after)
            )
    return answers


def _draw(strategy: Any) -> list[Any]:
    """Up to ``EXAMPLES`` requests from a schemathesis strategy (reproducibly)."""
    drawn: list[Any] = []

    @given(strategy)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def draw(case: Any) -> None:
        drawn.append(case)

    draw()
    return drawn


def _fuzz(target: _Target, out: StoreOutcome) -> None:
    spec = httpx.get(f"{target.server.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    auth = bearer(target.keys["admin"])
    session = requests.Session()
    session.trust_env = False
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in STREAMS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                drawn = _draw(op.as_strategy(generation_mode=mode))
            except Exception as exc:  # hypothesis could not make such a request
                out.skipped.append(f"{op.label} ({mode.value}): {type(exc).__name__}")
                continue
            for case in drawn:
                _tame(case)
                before = target.digest()
                try:
                    r = case.call(base_url=target.server.url, session=session, headers=auth)
                    status, got, body = r.status_code, r.headers, r.content
                except requests.RequestException as exc:
                    status, got, body = 0, {}, str(exc).encode()
                got = {k.lower(): v[0] if isinstance(v, list) else v for k, v in dict(got).items()}
                query = f"?{case.query}" if case.query else ""
                body_text = "" if case.body is None else f" {str(case.body)[:120]}"
                answer = _answer(
                    f"{case.method} {case.formatted_path}{query}{body_text} ({mode.value})",
                    case.formatted_path,
                    False,
                    status,
                    got,
                    body,
                    before,
                    target.digest(),
                )
                out.fuzzed.append(answer)
    session.close()


def _tame(case: Any) -> None:
    """No request may wait: long-polls and the queue's wait are cut to nothing."""
    if isinstance(case.query, dict):
        if case.path.endswith("/wait") and "timeout" in case.query:
            case.query["timeout"] = 0.01
        if case.path == "/v1/queue" and "wait" in case.query:
            case.query["wait"] = 0


async def _seed(c: httpx.AsyncClient, keys: dict[str, str]) -> dict[str, str]:
    """Money, an open and a decided task, a rival's task, and a used Idempotency-Key."""

    async def post(path: str, who: str, body: Any, **headers: str) -> dict[str, Any]:
        r = await c.post(path, json=body, headers={**bearer(keys[who]), **headers})
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        return answer

    await post(
        "/v1/deposits",
        "admin",
        {"amount": {"currency": "USD", "amount": "20.00"}},
        **{"Idempotency-Key": "seed"},
    )
    paid = {**REVIEW, "payout": {"currency": "USD", "amount": "1.00"}}
    open_ = (await post("/v1/tasks", "requester", paid))["id"]
    done = (await post("/v1/tasks", "requester", paid))["id"]
    await post(f"/v1/tasks/{done}/decision", "reviewer", {"type": "approve"})
    await post("/v1/tasks", "requester", REVIEW, **{"Idempotency-Key": "seeded"})
    rival = (await post("/v1/tasks", "rival", REVIEW))["id"]
    return {"open": open_, "done": done, "rival": rival}


async def _store(url: str, workdir: Path, say: Say, label: str) -> StoreOutcome:
    out = StoreOutcome()
    admin, rival = await asyncio.gather(
        cli_key(url, "acme", "admin", principal="acme-admin"),
        cli_key(url, "rival", "admin", principal="rival-admin"),
    )
    env = {
        "HANDRAIL_RUN_BACKGROUND": "false",
        "HANDRAIL_ALLOW_PRIVATE_WEBHOOKS": "false",
        "HANDRAIL_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    }
    server = LiveServer(url, workdir, env=env)
    digest = Digest(url)
    try:
        server.start()
        await server.ready(STARTUP)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as c:
            keys = {"admin": admin, "rival": rival}
            for who, role in (("requester", "requester"), ("reviewer", "reviewer")):
                made = await c.post(
                    "/v1/keys",
                    json={"role": role, "principal": f"acme-{who}"},
                    headers=bearer(admin),
                )
                made.raise_for_status()
                keys[who] = made.json()["key"]
            ids = await _seed(c, keys)
        target = _Target(server, keys, digest)
        started = time.perf_counter()
        await asyncio.to_thread(_fuzz, target, out)
        say(
            f"{label}: schemathesis sent {len(out.fuzzed)} requests in "
            f"{time.perf_counter() - started:.0f} s: " + _statuses(out.fuzzed)
        )
        started = time.perf_counter()
        out.answers = await asyncio.to_thread(_hand, target, ids)
        say(
            f"{label}: {len(out.answers)} hand-written requests in "
            f"{time.perf_counter() - started:.0f} s: " + _statuses(out.answers)
        )
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as c:
            normal = await c.post("/v1/tasks", json=REVIEW, headers=bearer(keys["requester"]))
            out.normal_after = normal.status_code
        out.alive = server.process is not None and server.process.poll() is None
    finally:
        server.stop()
        digest.close()
    return out


def _statuses(answers: list[Answer]) -> str:
    counts = Counter(a.status for a in answers)
    return ", ".join(f"{k or 'no answer'} × {v}" for k, v in sorted(counts.items()))


async def run(workdir: Path, say: Say) -> HostileOutcome:
    out = HostileOutcome()
    sqlite = workdir / "sqlite"
    sqlite.mkdir()
    out.stores["SQLite"] = await _store(
        f"sqlite:///{sqlite / 'handrail.db'}", sqlite, say, "SQLite"
    )
    pg = workdir / "postgres"
    pg.mkdir()
    async with fresh_database(POSTGRES_URL, prefix="handrail_drill") as url:
        out.stores["PostgreSQL"] = await _store(url, pg, say, "PostgreSQL")
    return out


# ---------------------------------------------------------------- the checks


def _each(o: HostileOutcome, pick: Callable[[StoreOutcome], list[str]]) -> list[str]:
    return [f"{store}: {item}" for store, s in o.stores.items() for item in pick(s)]


def checks(o: HostileOutcome) -> list[Check]:
    def name(a: Answer) -> str:
        return f"{a.name} → {a.status or 'no answer'}"

    hand_5xx = _each(o, lambda s: [name(a) for a in s.answers if a.status >= 500 or not a.status])
    fuzz_5xx = _each(o, lambda s: [name(a) for a in s.fuzzed if a.status >= 500 or not a.status])
    accepted = _each(
        o, lambda s: [name(a) for a in s.answers if a.refuse and not 400 <= a.status < 500]
    )
    changed = _each(
        o,
        lambda s: [
            name(a) for a in (*s.answers, *s.fuzzed) if a.status >= 400 and a.status != 410
            and a.changed
        ],
    )  # fmt: skip
    unclear = _each(
        o,
        lambda s: [
            name(a)
            for a in (*s.answers, *s.fuzzed)
            if 400 <= a.status < 500 and a.from_app and not a.problem
        ],
    )
    counts = {k: (len(s.answers), len(s.fuzzed)) for k, s in o.stores.items()}
    after = {k: (s.normal_after, s.alive) for k, s in o.stores.items()}
    return nothing_lost(
        [
            check(
                "no hand-written request got a 5xx (or no answer)",
                bool(o.stores) and all(s.answers for s in o.stores.values()) and not hand_5xx,
                f"{missing(hand_5xx, 8)}"
                if hand_5xx
                else ", ".join(f"{k}: {n} requests" for k, (n, _) in counts.items()),
            ),
            check(
                "every request that must be refused got a 4xx",
                not accepted,
                f"not refused: {missing(accepted, 8)}" if accepted else "all refused",
            ),
            check(
                "schemathesis found no 5xx",
                all(s.fuzzed for s in o.stores.values()) and not fuzz_5xx,
                f"{missing(fuzz_5xx, 8)}"
                if fuzz_5xx
                else ", ".join(f"{k}: {m} requests" for k, (_, m) in counts.items()),
            ),
            check(
                "refusals are problem details with a code (the peer's own format under /compat)",
                not unclear,
                f"plain refusals: {missing(unclear, 8)}" if unclear else "all problem+json",
            ),
            check(
                "no request answered with an error changed the database (a refused decision "
                "leaves only its audit entry)",
                not changed,
                f"changed: {missing(changed, 8)}"
                if changed
                else "every 4xx and 5xx left it as it was",
            ),
            check(
                "the server still serves normally afterwards",
                bool(after) and all(status == 201 and alive for status, alive in after.values()),
                ", ".join(f"{k}: a plain create got {st}" for k, (st, _) in after.items()),
            ),
        ]
    )
