"""``Idempotency-Key`` for POST requests, as draft-ietf-httpapi-idempotency-key-header.

The first request with a key runs and its response (success or client error) is stored; a
retry with the same key and body gets the stored response back (``Idempotency-Replayed:
true``); the same key with another body is 422; a retry while the first is still running
is 409. A server error stores nothing, so the retry runs again. A request left in flight
for over a minute (its process died) is taken over by the next retry; the engine's own
idempotency keys keep that from creating anything twice.

A create (``once``) stores its record in the create's own transaction, by a lifecycle hook
(:class:`IdempotencyHook`): one transaction for a keyed create, not three. The key is the
task's own idempotency key too, so a twin in another process cannot create a second task:
one of the two commits and the other finds it (and the record) and replays. A twin in this
process while the first runs is 409, as ever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from handrail import Event, HandrailError, Principal, Task
from handrail.store import Transaction
from handrail.store.sql import SqlStore, SqlTransaction

from .problems import PROBLEM, ApiProblem, handrail_problem
from .tables import idempotency

__all__ = ["IdempotencyHook", "header_key", "idempotent", "parse_key"]

STALE = timedelta(seconds=60)
_KEEP = {408, 409, 429, 503}  # outcomes worth retrying: never stored

Outcome = tuple[str, int | None, Any]
"""What a key's record says of a request: ``("mismatch"|"replay"|"in_flight"|"run", status,
body)``."""


MAX_KEY = 256
_RULE = (
    "Idempotency-Key must be a structured-field string (RFC 8941): 1 to 256 printable "
    'ASCII characters, quoted ("...", with \\" and \\\\ escaped) or bare'
)


def _bad_key(why: str) -> ApiProblem:
    return ApiProblem(
        400,
        "bad_idempotency_key",
        f"{_RULE}: {why}",
        errors=[{"path": "header:idempotency-key", "message": why}],
    )


def parse_key(raw: str | None) -> str | None:
    """An ``Idempotency-Key`` header's key, as draft-ietf-httpapi-idempotency-key-header
    has it: an RFC 8941 string (``"..."``: printable ASCII, ``\\"`` and ``\\\\`` escaped),
    or the same characters bare (most clients send a bare UUID). Anything else (raw UTF-8,
    control characters, bad quoting) is refused with a 400 naming the header: never
    stored, to come back garbled. Starlette gives header values decoded as Latin-1, so a
    byte outside ASCII is a character over U+007E here."""
    if raw is None:
        return None
    text = raw.strip(" \t")
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise _bad_key("a quoted string must end with a quote")
        chars: list[str] = []
        inner, i = text[1:-1], 0
        while i < len(inner):
            c = inner[i]
            if c == "\\":
                if i + 1 == len(inner) or inner[i + 1] not in '"\\':
                    raise _bad_key('a backslash may only escape " or \\')
                c, i = inner[i + 1], i + 1
            elif c == '"':
                raise _bad_key('a quote inside the string must be escaped (\\")')
            elif not " " <= c <= "~":
                raise _bad_key("only printable ASCII characters (raw UTF-8 is not)")
            chars.append(c)
            i += 1
        key = "".join(chars)
    else:
        if any(not " " <= c <= "~" for c in text):
            raise _bad_key("only printable ASCII characters (raw UTF-8 is not)")
        key = text
    if not 1 <= len(key) <= MAX_KEY:
        raise _bad_key(f"it has {len(key)} characters")
    return key


def header_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (see :func:`parse_key`), or None without one."""
    return parse_key(request.headers.get("idempotency-key"))


def fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _begin(
    conn: Connection, org: str, key: str, route: str, print_: str, now: datetime
) -> tuple[str, int | None, Any]:
    where = (idempotency.c.org_id == org, idempotency.c.key == key, idempotency.c.route == route)
    row = conn.execute(select(idempotency).where(*where)).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(idempotency),
                    [
                        {
                            "org_id": org,
                            "key": key,
                            "route": route,
                            "fingerprint": print_,
                            "state": "in_flight",
                            "created_at": now,
                        }
                    ],
                )
        except IntegrityError:
            return ("in_flight", None, None)  # a twin got here first
        return ("run", None, None)
    if row.fingerprint != print_:
        return ("mismatch", None, None)
    if row.state == "done":
        return ("replay", row.status_code, row.body)
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
    if now - created > STALE:
        conn.execute(update(idempotency).where(*where).values(created_at=now))
        return ("run", None, None)
    return ("in_flight", None, None)


def _store_once(make: Any) -> Any:
    columns = ("org_id", "key", "route", "fingerprint", "state", "status_code", "body")
    values: dict[str, Any] = {c: bindparam(c) for c in (*columns, "created_at")}
    return make(idempotency).values(values).on_conflict_do_nothing().returning(idempotency.c.key)


# A response stored under its key unless the key has a record: built once (a keyed create
# runs it in its own transaction).
_STORE = {"postgresql": _store_once(pg_insert), "sqlite": _store_once(sqlite_insert)}


def _settle(
    conn: Connection,
    org: str,
    key: str,
    route: str,
    print_: str,
    status: int,
    body: Any,
    now: datetime,
) -> Outcome | None:
    """Store ``status`` and ``body`` as the key's response, in one statement, unless the key
    has a record already: None when stored, else what that record says (another request,
    a response to replay, still in flight). A record in flight past ``STALE`` (its process
    died) is taken over."""
    values = {
        "org_id": org,
        "key": key,
        "route": route,
        "fingerprint": print_,
        "state": "done",
        "status_code": status,
        "body": body,
        "created_at": now,
    }
    stored = conn.execute(_STORE[conn.dialect.name], values).first()
    if stored is not None:
        return None
    where = (idempotency.c.org_id == org, idempotency.c.key == key, idempotency.c.route == route)
    row = conn.execute(select(idempotency).where(*where)).first()
    if row is None:  # deleted since (a failed first request): let the caller retry
        return ("in_flight", None, None)
    if row.fingerprint != print_:
        return ("mismatch", None, None)
    if row.state == "done":
        return ("replay", row.status_code, row.body)
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
    if now - created > STALE:
        conn.execute(
            update(idempotency)
            .where(*where)
            .values(state="done", status_code=status, body=body, created_at=now)
        )
        return None
    return ("in_flight", None, None)


def _lookup(conn: Connection, org: str, key: str, route: str, print_: str) -> Outcome | None:
    where = (idempotency.c.org_id == org, idempotency.c.key == key, idempotency.c.route == route)
    row = conn.execute(select(idempotency).where(*where)).first()
    if row is None:
        return None
    if row.fingerprint != print_:
        return ("mismatch", None, None)
    if row.state == "done":
        return ("replay", row.status_code, row.body)
    return ("in_flight", None, None)


@dataclass
class _Keyed:
    """A keyed create under way: what :class:`IdempotencyHook` stores in its transaction."""

    org: str
    key: str
    route: str
    print_: str
    task_key: str  # the engine's idempotency key of the task it creates
    status: int
    render: Callable[[Task], Any]
    now: datetime
    task_id: str | None = None  # the task the record was last stored with (each attempt of
    # the create, if a conflict retries it, is a new task in a new transaction)
    body: Any = None


_KEYED: ContextVar[_Keyed | None] = ContextVar("handrail_keyed_create", default=None)
_RUNNING: set[tuple[int, str, str, str]] = set()  # keyed creates under way in this process


class _Found(Exception):
    """The key has a record already: the create's transaction is undone, the record answers."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome[0])
        self.outcome = outcome


class IdempotencyHook:
    """A lifecycle hook: a keyed create's record (its response) is written in the create's
    own transaction; if the key has a record already, the create is undone and that record
    answers (see :func:`idempotent` with ``once``)."""

    async def on_create(self, tx: Transaction, task: Task) -> None:
        keyed = _KEYED.get()
        if (
            keyed is None
            or not isinstance(tx, SqlTransaction)
            or task.org_id != keyed.org
            or task.idempotency_key != keyed.task_key
        ):
            return
        body = keyed.render(task)
        settled = await tx.run(_settle_keyed, keyed, body)
        if settled is not None:
            raise _Found(settled)
        keyed.task_id, keyed.body = task.id, body

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        """The policy decided the new task in its create's transaction: the response
        stored is the decided task."""
        keyed = _KEYED.get()
        if keyed is None or keyed.task_id != after.id or not isinstance(tx, SqlTransaction):
            return
        body = keyed.render(after)
        if body != keyed.body:
            await tx.run(_store_body, keyed, body)
            keyed.body = body


def _settle_keyed(conn: Connection, keyed: _Keyed, body: Any) -> Outcome | None:
    """The record stored with the task (None); or what the key's record says already."""
    k = keyed
    return _settle(conn, k.org, k.key, k.route, k.print_, k.status, body, k.now)


def _store_body(conn: Connection, keyed: _Keyed, body: Any) -> None:
    conn.execute(
        update(idempotency)
        .where(
            idempotency.c.org_id == keyed.org,
            idempotency.c.key == keyed.key,
            idempotency.c.route == keyed.route,
        )
        .values(body=body)
    )


def _answer(request: Request, outcome: Outcome) -> JSONResponse:
    """The response a key's record gives: 422 for another request, 409 while in flight, the
    stored response replayed."""
    state, replay_status, content = outcome
    if state == "mismatch":
        raise ApiProblem(
            422, "idempotency_key_reused", "this Idempotency-Key was used with a different request"
        )
    if state == "in_flight":
        raise ApiProblem(
            409,
            "idempotency_in_flight",
            "a request with this Idempotency-Key is still running",
            {"Retry-After": "1"},
        )
    code = replay_status or 200
    if code >= 400 and isinstance(content, dict):  # a problem names this request
        content = {
            **content,
            "instance": request.url.path,
            "request_id": request.scope.get("request_id"),
        }
    return JSONResponse(
        content,
        status_code=code,
        media_type=PROBLEM if code >= 400 else "application/json",
        headers={"Idempotency-Replayed": "true"},
    )


async def _once(
    request: Request,
    store: SqlStore,
    key: str,
    keyed: _Keyed,
    run: Callable[[str | None], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """A keyed create in one transaction: its record is stored by the hook, with the task."""
    org, route, print_, now = keyed.org, keyed.route, keyed.print_, keyed.now
    flight = (id(store), org, key, route)
    if flight in _RUNNING:  # a twin in this process, still running
        return _answer(request, ("in_flight", None, None))
    _RUNNING.add(flight)
    token = _KEYED.set(keyed)
    try:
        try:
            status, content = await run(key)
        except _Found as found:
            return _answer(request, found.outcome)
        except HandrailError as exc:
            code, stored = handrail_problem(exc)
            if code in _KEEP or code >= 500:  # stored never; but the key may name another
                outcome = await store.run(
                    lambda c: _lookup(c, org, key, route, print_), readonly=True
                )
            else:
                outcome = await store.run(
                    lambda c: _settle(c, org, key, route, print_, code, stored, now)
                )
            if outcome is None:
                raise
            return _answer(request, outcome)
    finally:
        _KEYED.reset(token)
        _RUNNING.discard(flight)
    made = content.get("id") if isinstance(content, dict) else None
    if keyed.task_id is None or made != keyed.task_id:
        # The engine found the task by its key and created nothing: a replay, or a task
        # whose record was lost (or that was posted with this key in its body); or the
        # attempt that stored the record was undone and the retry found the task.
        outcome = await store.run(lambda c: _lookup(c, org, key, route, print_), readonly=True)
        if outcome is None:  # no record: this response is the key's from now on
            outcome = await store.run(
                lambda c: _settle(c, org, key, route, print_, status, content, now)
            )
        if outcome is not None:
            return _answer(request, outcome)
    elif keyed.body != content:  # not expected: the stored response is the one given
        await store.run(lambda c: _store_body(c, keyed, content))
    return JSONResponse(content, status_code=status)


async def idempotent(
    request: Request,
    store: SqlStore,
    principal: Principal,
    body: Any,
    run: Callable[[str | None], Awaitable[tuple[int, Any]]],
    now: datetime,
    *,
    once: tuple[str | None, int, Callable[[Task], Any]] | None = None,
) -> JSONResponse:
    """Run ``run(key)`` at most once per ``Idempotency-Key`` (``key`` None without one).

    ``once``: ``run`` creates one task, whose idempotency key is the first item (None: the
    header's key), answering the second item (a status) and the third applied to the task;
    its record is then written in the create's own transaction."""
    key = header_key(request)
    if key is None:
        status, content = await run(None)
        return JSONResponse(content, status_code=status)
    org, route = principal.org_id, f"{request.method} {request.url.path}"
    print_ = fingerprint(body)
    if once is not None:
        task_key, answer, render = once
        keyed = _Keyed(org, key, route, print_, task_key or key, answer, render, now)
        return await _once(request, store, key, keyed, run)
    begun = await store.run(lambda c: _begin(c, org, key, route, print_, now))
    if begun[0] != "run":
        return _answer(request, begun)
    where = (idempotency.c.org_id == org, idempotency.c.key == key, idempotency.c.route == route)
    try:
        status, content = await run(key)
    except HandrailError as exc:
        code, stored = handrail_problem(exc)
        if code in _KEEP or code >= 500:
            await store.run(lambda c: c.execute(delete(idempotency).where(*where)))
        else:
            await store.run(
                lambda c: c.execute(
                    update(idempotency)
                    .where(*where)
                    .values(state="done", status_code=code, body=stored)
                )
            )
        raise
    except BaseException:
        await store.run(lambda c: c.execute(delete(idempotency).where(*where)))
        raise
    await store.run(
        lambda c: c.execute(
            update(idempotency).where(*where).values(state="done", status_code=status, body=content)
        )
    )
    return JSONResponse(content, status_code=status)
