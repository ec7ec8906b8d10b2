"""``Idempotency-Key`` for POST requests, as draft-ietf-httpapi-idempotency-key-header.

The first request with a key runs and its response (success or client error) is stored; a
retry with the same key and body gets the stored response back (``Idempotency-Replayed:
true``); the same key with another body is 422; a retry while the first is still running
is 409. A server error stores nothing, so the retry runs again. A request left in flight
for over a minute (its process died) is taken over by the next retry; the engine's own
idempotency keys keep that from creating anything twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from handrail import HandrailError, Principal
from handrail.store.sql import SqlStore

from .problems import PROBLEM, ApiProblem, handrail_problem
from .tables import idempotency

__all__ = ["header_key", "idempotent"]

STALE = timedelta(seconds=60)
_KEEP = {408, 409, 429, 503}  # outcomes worth retrying: never stored


def header_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: an RFC 8941 string (quoted) or a bare token."""
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > 256:
        raise ApiProblem(400, "bad_idempotency_key", "Idempotency-Key must be 1 to 256 characters")
    return key


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


async def idempotent(
    request: Request,
    store: SqlStore,
    principal: Principal,
    body: Any,
    run: Callable[[str | None], Awaitable[tuple[int, Any]]],
    now: datetime,
) -> JSONResponse:
    """Run ``run(key)`` at most once per ``Idempotency-Key`` (``key`` None without one)."""
    key = header_key(request)
    if key is None:
        status, content = await run(None)
        return JSONResponse(content, status_code=status)
    org, route = principal.org_id, f"{request.method} {request.url.path}"
    print_ = fingerprint(body)
    begun = await store.run(lambda c: _begin(c, org, key, route, print_, now))
    state, replay_status, content = begun
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
    if state == "replay":
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
