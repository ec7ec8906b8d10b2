"""``POST /v1/tasks``, the route every gated tool call takes, parses its body once and
solves no FastAPI dependencies; it answers exactly as the route does through FastAPI
(which a request with a query string still takes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.dependencies import utils as dependency_utils

from handrail_server import guards

from .conftest import Server, review

DROP = ("id", "instance", "request_id")  # and the times below
TIMES = ("created_at", "updated_at", "expires_at", "backup_at", "reached_at")


def _same(answer: Any) -> tuple[int, Any, str | None]:
    body = answer.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in DROP + TIMES}
    return answer.status_code, body, answer.headers.get("www-authenticate")


@pytest.mark.parametrize(
    ("body", "who"),
    [
        (review(), "requester"),  # created
        ({"kind": "review"}, "requester"),  # no action: 422 as the route says it
        ({"kind": "review", "action": {"name": "x", "args": {"n": 1e400}}}, "requester"),
        ({"kind": "review", "action": {"name": "a\u0000b"}}, "requester"),  # NUL: 422
        ({"kind": "sideways"}, "requester"),
        (review(), "reviewer"),  # not a requester: 403
        (review(), "nobody"),  # no key: 401
        (review(), "stranger"),  # a key nobody issued: 401
    ],
)
async def test_the_lean_create_answers_as_the_route_does(
    server: Server, body: dict[str, Any], who: str
) -> None:
    keys = {
        "requester": server.a.requester,
        "reviewer": server.a.reviewer,
        "nobody": {},
        "stranger": {"Authorization": "Bearer hr_live_nope"},
    }
    headers = {**keys[who], "content-type": "application/json"}
    raw = json.dumps(body, allow_nan=True).replace("Infinity", "1e400")
    lean = await server.client.post("/v1/tasks", content=raw, headers=headers)
    routed = await server.client.post("/v1/tasks?via=route", content=raw, headers=headers)
    assert _same(lean) == _same(routed), (lean.text, routed.text)
    assert lean.headers["content-type"] == routed.headers["content-type"]


async def test_a_create_parses_its_body_once_and_solves_no_dependencies(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    solved: list[int] = []
    loads, solve = guards.json.loads, dependency_utils.solve_dependencies

    def counting_loads(*args: Any, **kwargs: Any) -> Any:
        parsed.append(1)
        return loads(*args, **kwargs)

    async def counting_solve(*args: Any, **kwargs: Any) -> Any:
        solved.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(guards.json, "loads", counting_loads)
    monkeypatch.setattr("fastapi.routing.solve_dependencies", counting_solve)
    answer = await server.client.post("/v1/tasks", json=review(), headers=server.a.requester)
    assert answer.status_code == 201, answer.text
    assert (len(parsed), len(solved)) == (1, 0)
    parsed.clear()
    routed = await server.client.post(
        "/v1/tasks?via=route", json=review(), headers=server.a.requester
    )
    assert routed.status_code == 201, routed.text
    assert len(solved) >= 1  # the check: the route through FastAPI does solve them
