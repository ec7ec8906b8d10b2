"""Every route has its roles in one table (``handrail_server.access.ROUTES``), and the server
keeps to it: a walk over every route of the app with a key of every role (and a signed-in
session of every role for the web UI's pages), on SQLite and PostgreSQL.

Allowed: anything but 401 and 403 (the walk sends empty bodies and ids that do not exist, so
a 404 or 422 is an answer past the door). Refused: 403, as problem details with code
``permission_denied`` on ``/v1`` (a dialect words it its own way). No key: 401. The walk prints how
many requests it made and how many did not answer as the table says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import Mount

from handrail import Role
from handrail_server.access import ROUTES, access_of, markdown
from handrail_server.app import create_app
from tests.server.conftest import Server, StreamingASGITransport, make_settings
from tests.server.web._ui import csrf_of, key_of, sign_in

DOCS = Path(__file__).parents[2] / "docs" / "server.md"


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path template) the app answers, its included routers walked too."""

    def walk(routes: Any) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "effective_candidates"):
                yield from walk(route.effective_candidates())
            else:
                yield route

    for route in walk(app.routes):
        if isinstance(route, Mount):
            yield "GET", route.path
            continue
        methods = set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"}
        if len(methods) > 1 and "{rest:path}" in route.path:
            yield "*", route.path  # a dialect's catch-all
            continue
        for method in sorted(methods):
            yield method, route.path


def test_every_route_has_an_entry_and_every_entry_a_route(tmp_path: Path) -> None:
    routes = set(app_routes(create_app(make_settings(tmp_path))))
    assert len(routes) > 140
    assert sorted(routes - ROUTES.keys()) == []  # a new route needs its roles in the table
    assert sorted(ROUTES.keys() - routes) == []  # and the table names no route gone


def test_the_docs_show_the_table() -> None:
    assert markdown() in DOCS.read_text()


@dataclass
class Walk:
    attempts: int = 0
    failures: list[str] = field(default_factory=list)


ROLES = (Role.ADMIN, Role.REQUESTER, Role.REVIEWER)
PROBE_QUERY = {"/v1/ledger/entries": {"account": "pending"}}


def _path(template: str, principal: str) -> str:
    path = template.replace("{rest:path}", "nope")
    for own in ("{worker_id}", "{reviewer_id}"):
        path = path.replace(own, principal)
    return re.sub(r"\{[^}]+\}", "nope", path)


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    form: dict[str, str] | None = None,
) -> tuple[int, str, bytes]:
    method = "GET" if method == "*" else method
    body: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        body = {"data": form} if form is not None else {"json": {}}
    params = PROBE_QUERY.get(path, {})
    async with client.stream(method, path, headers=headers, params=params, **body) as got:
        kind = got.headers.get("content-type", "")
        text = b"" if "event-stream" in kind else await got.aread()
        return got.status_code, kind, text


def _check(walk: Walk, what: str, status: int, kind: str, text: bytes, allowed: bool) -> None:
    walk.attempts += 1
    if status >= 500:
        walk.failures.append(f"{what}: {status}")
    elif allowed and status in (401, 403):
        walk.failures.append(f"{what}: allowed but {status} {text[:200]!r}")
    elif not allowed and status != 403:
        walk.failures.append(f"{what}: refused but {status}")


async def _walk(server: Server) -> Walk:
    walk = Walk()
    transport = StreamingASGITransport(server.app)
    keys = {Role.ADMIN: server.a.admin, Role.REQUESTER: server.a.requester}
    keys[Role.REVIEWER] = server.a.reviewer
    principals = {Role.ADMIN: "acme-admin", Role.REQUESTER: "acme-agent"}
    principals[Role.REVIEWER] = "acme-reviewer"
    routes = sorted(set(app_routes(server.app)))
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as c:
        for method, template in routes:
            entry = access_of(method, template)
            if entry.via in ("key", "operator"):
                path = _path(template, "nobody")
                status, _, _ = await _call(c, method, path, {})
                walk.attempts += 1
                if status != 401:
                    walk.failures.append(f"{method} {template} without a key: {status}")
                for role in ROLES:
                    path = _path(template, principals[role])
                    status, kind, text = await _call(c, method, path, keys[role])
                    what = f"{method} {template} as {role.value}"
                    _check(walk, what, status, kind, text, role in entry.roles)
                    problem = b'"code":"permission_denied"' in text and "problem+json" in kind
                    v1_refusal = template.startswith("/v1/") and status == 403
                    if role not in entry.roles and v1_refusal and not problem:
                        walk.failures.append(f"{what}: refused without the problem")
            elif entry.via in ("public", "token", "signed", "form"):
                status, kind, text = await _call(c, method, _path(template, "nobody"), {})
                walk.attempts += 1
                if (status in (401, 403) and entry.via == "public") or status >= 500:
                    walk.failures.append(f"{method} {template} without a key: {status}")
    for role in ROLES:  # the web UI's pages, signed in as each role in turn
        async with httpx.AsyncClient(
            transport=transport, base_url="http://handrail.test"
        ) as browser:
            done = await sign_in(browser, key_of(keys[role]))
            assert done.status_code == 303, done.text
            home = await browser.get("/signin")
            page = await browser.get("/", follow_redirects=True)
            csrf = csrf_of(page.text if page.status_code == 200 else home.text)
            for method, template in routes:
                entry = access_of(method, template)
                if entry.via != "session" or template == "/signout":
                    continue
                path = _path(template, principals[role])
                form = {"csrf_token": csrf} if method == "POST" else None
                origin = {"Origin": "http://handrail.test"}
                status, kind, text = await _call(browser, method, path, origin, form)
                what = f"{method} {template} signed in as {role.value}"
                _check(walk, what, status, kind, text, role in entry.roles)
    return walk


async def test_every_route_answers_each_role_as_the_table_says(any_server: Server) -> None:
    walk = await _walk(any_server)
    backend = any_server.hub.store.dialect
    print(f"\nrole walk ({backend}): {walk.attempts} attempts, {len(walk.failures)} failures")
    assert not walk.failures, "\n".join(walk.failures)
    assert walk.attempts > 400
