"""Hostile input over HTTP never ends in a 500: numbers no float can hold, a crash that
must not reset the next request on its keep-alive connection, headers past their limits,
``Idempotency-Key`` values that are no structured-field string. On SQLite and PostgreSQL,
through the app and through a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from handrail import Role
from handrail_server.app import create_app
from handrail_server.keys import create_key
from handrail_server.protocol import head_limit, server_options
from tests.postgres import fresh_database
from tests.server._live import LOOPBACK, Threaded, serve_in_thread
from tests.server.conftest import Server, make_settings, running

JSON = {"content-type": "application/json"}
HUGE = b"1e400"  # Python's json reads it as inf, which no response can carry


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hostile.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_database(url, "handrail_hostile") as made:
        yield made


@pytest.fixture
async def server(tmp_path: Path, database: str) -> AsyncIterator[Server]:
    async with running(make_settings(tmp_path, database_url=database)) as started:
        yield started


async def _tasks(server: Server) -> list[dict[str, Any]]:
    listed = await server.client.get("/v1/tasks", headers=server.a.admin)
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


def _refused(answer: Any, path: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "validation_error"
    (error,) = body["errors"]
    assert error["path"] == path, error
    assert "1e400" in error["message"] and "finite" in error["message"]


# ---------------------------------------------------------------- numbers too large


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"kind":"judgment","output_schema":{},"payload":{"n":%s}}', "$.payload.n"),
        (b'{"kind":"review","action":{"name":"x"},"metadata":{"n":%s}}', "$.metadata.n"),
        (
            b'{"kind":"judgment","output_schema":{"type":"number","maximum":%s}}',
            "$.output_schema.maximum",
        ),
        (b'{"kind":"review","action":{"name":"x","args":{"n":[1,%s]}}}', "$.action.args.n[1]"),
    ],
)
async def test_a_number_too_large_for_a_float_is_422_naming_the_field(
    server: Server, raw: bytes, path: str
) -> None:
    answer = await server.client.post(
        "/v1/tasks", content=raw % HUGE, headers={**server.a.requester, **JSON}
    )
    _refused(answer, path)
    assert await _tasks(server) == []  # nothing written


async def test_a_number_too_large_in_a_decision_or_a_submission_is_422(server: Server) -> None:
    c, a = server.client, server.a
    review = {"kind": "review", "action": {"name": "send", "args": {"to": "x"}}}
    made = await c.post("/v1/tasks", json=review, headers=a.requester)
    judged = await c.post(
        "/v1/tasks", json={"kind": "judgment", "output_schema": {}}, headers=a.requester
    )
    assert made.status_code == judged.status_code == 201, (made.text, judged.text)
    review_id, judgment_id = made.json()["id"], judged.json()["id"]
    modify = b'{"type":"modify","args":{"to":"y","n":%s}}' % HUGE
    answer = await c.post(
        f"/v1/tasks/{review_id}/decision", content=modify, headers={**a.reviewer, **JSON}
    )
    _refused(answer, "$.args.n")
    output = b'{"output":{"score":-%s}}' % HUGE
    answer = await c.post(
        f"/v1/tasks/{judgment_id}/submissions", content=output, headers={**a.reviewer, **JSON}
    )
    _refused(answer, "$.output.score")
    states = {t["id"]: t["status"] for t in await _tasks(server)}
    assert states == {review_id: "posted", judgment_id: "posted"}  # neither decided nor claimed


async def test_nan_and_infinity_name_their_field_too(server: Server) -> None:
    raw = b'{"kind":"judgment","output_schema":{},"payload":{"a":[NaN]}}'
    answer = await server.client.post(
        "/v1/tasks", content=raw, headers={**server.a.requester, **JSON}
    )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert error == {
        "path": "$.payload.a[0]",
        "message": "NaN is not a JSON number: numbers must be finite",
    }


DEADLINE = "2099-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "raw", "status", "says"),
    [
        (
            "/compat/humanops/api/v1/tasks",
            b'{"title":"t","description":"d","task_type":"VERIFICATION","deadline":"%s",'
            b'"location":{"lat":%s,"lng":0},"reward_usd":5}',
            400,
            "error",
        ),
        (
            "/compat/humanrail/v1/tasks",
            b'{"idempotencyKey":"k","taskType":"t","payload":{},"outputSchema":{},'
            b'"payout":{"currency":"USD","maxAmount":0},"metadata":{"%s":%s}}',
            422,
            "error",
        ),
        (
            "/compat/humancheck/reviews",
            b'{"task_type":"t","proposed_action":"p","metadata":{"%s":%s}}',
            400,
            "detail",
        ),
    ],
)
async def test_the_dialects_refuse_it_in_their_own_format(
    server: Server, path: str, raw: bytes, status: int, says: str
) -> None:
    first = DEADLINE.encode() if b"deadline" in raw else b"n"
    answer = await server.client.post(
        path, content=raw % (first, HUGE), headers={**server.a.sandbox, **JSON}
    )
    assert answer.status_code == status, answer.text
    assert says in answer.json(), answer.text
    assert "1e400" in answer.text
    assert await _tasks(server) == []


# ---------------------------------------------------------------- Idempotency-Key

RAW_UTF8 = "ключ-1".encode()


@pytest.mark.parametrize(
    "key",
    [RAW_UTF8, b"a\tb", b'"unterminated', b'"a"b"', b'"a\\qb"', b'""', b"x" * 257],
)
async def test_an_idempotency_key_that_is_no_structured_field_string_is_400(
    server: Server, key: bytes
) -> None:
    review = {"kind": "review", "action": {"name": "send", "args": {}}}
    answer = await server.client.post(
        "/v1/tasks", json=review, headers={**server.a.requester, "Idempotency-Key": key}
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "bad_idempotency_key" and "Idempotency-Key" in body["detail"]
    assert body["errors"][0]["path"] == "header:idempotency-key"
    assert await _tasks(server) == []  # nothing stored, to come back garbled


async def test_a_quoted_key_and_its_bare_form_are_one_key(server: Server) -> None:
    review = {"kind": "review", "action": {"name": "send", "args": {}}}
    c, a = server.client, server.a
    quoted = await c.post(
        "/v1/tasks", json=review, headers={**a.requester, "Idempotency-Key": '"k-1 \\"x\\""'}
    )
    assert quoted.status_code == 201, quoted.text
    assert quoted.json()["idempotency_key"] == 'k-1 "x"'
    bare = await c.post("/v1/tasks", json=review, headers={**a.requester, "Idempotency-Key": "k-2"})
    again = await c.post(
        "/v1/tasks", json=review, headers={**a.requester, "Idempotency-Key": '"k-2"'}
    )
    assert (bare.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json()["id"] == bare.json()["id"]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        (
            "/compat/humanops/api/v1/tasks",
            {
                "title": "t",
                "description": "d",
                "task_type": "VERIFICATION",
                "deadline": DEADLINE,
                "location": {"lat": 1, "lng": 1},
                "reward_usd": 5,
            },
            "error",
        ),
        (
            "/compat/humanrail/v1/tasks",
            {
                "taskType": "t",
                "payload": {},
                "outputSchema": {},
                "payout": {"currency": "USD", "maxAmount": 0},
            },
            "error",
        ),
        ("/compat/humancheck/reviews", {"task_type": "t", "proposed_action": "p"}, "detail"),
        (
            "/compat/humanops/api/v1/agents/deposit",
            {"amount_usd": 10, "payment_method": "card"},
            "error",
        ),
    ],
)
async def test_the_dialects_apply_the_same_rule(
    server: Server, path: str, body: dict[str, Any], says: str
) -> None:
    answer = await server.client.post(
        path, json=body, headers={**server.a.sandbox, "Idempotency-Key": RAW_UTF8}
    )
    assert answer.status_code == 400, answer.text
    assert "Idempotency-Key" in str(answer.json()[says]), answer.text
    assert await _tasks(server) == []


# ---------------------------------------------------------------- a live server


@pytest.fixture(params=["h11", "serve"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Threaded, str]]:
    """The app under uvicorn on loopback (with h11, and as ``handrail serve`` runs it),
    and a requester's key."""
    app = create_app(make_settings(tmp_path))
    threaded = serve_in_thread(app, options=server_options() if request.param == "serve" else {})
    try:
        hub = app.state.hub
        made = asyncio.run_coroutine_threadsafe(
            hub.store.run(
                lambda c: create_key(
                    c, org_id="acme", role=Role.REQUESTER, now=hub.clock.now(), principal="bot"
                )
            ),
            threaded.loop,
        ).result(30)
        yield threaded, made.key
    finally:
        threaded.stop()


def _port(threaded: Threaded) -> int:
    return int(threaded.url.rsplit(":", 1)[1])


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read whole (b"" when the server hung up)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _post(key: str, body: bytes, path: str = "/v1/tasks") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: handrail\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: handrail\r\n\r\n"


def test_a_500_does_not_reset_the_next_request_on_its_connection(
    live: tuple[Threaded, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded, key = live
    import handrail_server.routes.tasks as routes  # noqa: PLC0415

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "idempotent", broken)
    for _ in range(5):
        with socket.create_connection((LOOPBACK, _port(threaded)), timeout=10) as sock:
            sock.sendall(_post(key, b'{"kind":"judgment","output_schema":{}}'))
            first = _read_response(sock)
            assert first.startswith(b"HTTP/1.1 500 "), first
            assert b"application/problem+json" in first and b"internal_error" in first
            assert b"connection: close" not in first.lower()
            sock.sendall(HEALTH)
            second = _read_response(sock)
            assert second.startswith(b"HTTP/1.1 200 "), second


def test_a_number_too_large_then_another_request_on_the_same_connection(
    live: tuple[Threaded, str],
) -> None:
    threaded, key = live
    with socket.create_connection((LOOPBACK, _port(threaded)), timeout=10) as sock:
        sock.sendall(_post(key, b'{"kind":"judgment","output_schema":{},"payload":{"n":1e400}}'))
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 422 "), first
        assert b"$.payload.n" in first
        sock.sendall(_post(key, b'{"kind":"judgment","output_schema":{},"payload":{"n":1e300}}'))
        second = _read_response(sock)
        assert second.startswith(b"HTTP/1.1 201 "), second


# ---------------------------------------------------------------- headers


def _problem_431(response: bytes) -> dict[str, Any]:
    import json  # noqa: PLC0415

    assert response.startswith(b"HTTP/1.1 431 "), response[:300]
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == 431 and problem["code"] == "headers_too_large", problem
    assert problem["request_id"]
    return problem


async def test_too_many_or_too_large_headers_are_431(server: Server) -> None:
    many = {f"x-h-{i}": "v" for i in range(150)}
    answer = await server.client.get("/v1/tasks", headers={**server.a.requester, **many})
    assert answer.status_code == 431, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "headers_too_large" and "headers" in answer.json()["detail"]
    large = {"x-big": "a" * 40_000}
    answer = await server.client.get("/v1/tasks", headers={**server.a.requester, **large})
    assert answer.status_code == 431 and "bytes" in answer.json()["detail"], answer.text
    for path in ("/v1/tasks/x/wait", "/compat/humanrail/v1/tasks", "/healthz"):
        given = {"X-Request-Id": f"crowded-{len(path)}"}
        answer = await server.client.get(path, headers={**server.a.requester, **many, **given})
        assert answer.status_code == 431, (path, answer.text)
        assert (
            answer.headers["x-request-id"] == answer.json()["request_id"] == given["X-Request-Id"]
        ), path
    fine = {f"x-h-{i}": "v" * 100 for i in range(50)}
    answer = await server.client.get("/v1/tasks", headers={**server.a.requester, **fine})
    assert answer.status_code == 200, answer.text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Threaded]:
    """The app under uvicorn on loopback as ``handrail serve`` runs it."""
    threaded = serve_in_thread(create_app(make_settings(tmp_path)), options=server_options())
    try:
        yield threaded
    finally:
        threaded.stop()


def test_handrail_serve_answers_431_to_a_huge_or_crowded_head(served: Threaded) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nHost: handrail\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    crowded = b"GET /healthz HTTP/1.1\r\nHost: handrail\r\n"
    crowded += b"".join(b"X-H-%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    for request in (huge, crowded):
        with socket.create_connection((LOOPBACK, _port(served)), timeout=10) as sock:
            sock.sendall(request)
            _problem_431(_read_response(sock))
    with socket.create_connection((LOOPBACK, _port(served)), timeout=10) as sock:
        sock.sendall(HEALTH)  # and the server goes on serving
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_handrail_serve_stops_reading_a_head_that_never_ends(served: Threaded) -> None:
    sent = 0
    with socket.create_connection((LOOPBACK, _port(served)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: handrail\r\nX-Big: ")
        try:
            while sent < 16 << 20:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass  # the server hung up: it read what it would and dropped the rest
    assert head_limit() < sent < 12 << 20, sent
