"""The dialects keep their promises under retries and bursts: a HumanOps retry replays
though its deadline is now fewer seconds away; of a burst of identical HumanRail creates
exactly one is 201; Humancheck's 422 is only ever FastAPI's validation body, and a boolean
is no confidence score. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from handrail.clock import ManualClock
from tests.postgres import fresh_database
from tests.server.conftest import Server, make_settings, running

BURST = 50
HUMANOPS = "/compat/humanops/api/v1"
HUMANRAIL = "/compat/humanrail/v1"
HUMANCHECK = "/compat/humancheck"


class TickingClock(ManualClock):
    """Time that moves on by ``step`` each time it is read: twins sent at once see
    different instants (and a deadline different seconds away)."""

    def __init__(self, step: float) -> None:
        super().__init__(datetime(2026, 2, 5, 12, 0, tzinfo=UTC))
        self.step = step

    def now(self) -> datetime:
        return self.advance(self.step)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'promises.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_database(url, "handrail_promises") as made:
        yield made


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 2, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
async def server(tmp_path: Path, database: str, clock: ManualClock) -> AsyncIterator[Server]:
    async with running(make_settings(tmp_path, database_url=database), clock) as started:
        yield started


def _humanops_task(deadline: datetime) -> dict[str, Any]:
    return {
        "title": "Verify storefront signage",
        "description": "Take a photo of the signage at 123 Main St",
        "location": {"lat": 40.7128, "lng": -74.006, "address": "123 Main St, NY"},
        "reward_usd": 25,
        "deadline": deadline.isoformat(),
        "task_type": "VERIFICATION",
    }


def _first_writers(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ``BURST`` calls of ``Engine.create`` wait for each other: every twin of a
    burst is past the dialect's look for the key before any creates (the race at its
    widest, on SQLite as on PostgreSQL)."""
    engine, create = server.hub.engine, server.hub.engine.create
    arrived, together = 0, asyncio.Event()

    async def gathered(*args: Any, **kwargs: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived >= BURST:
            together.set()
        await asyncio.wait_for(together.wait(), 30)
        return await create(*args, **kwargs)

    monkeypatch.setattr(engine, "create", gathered)


async def _burst(server: Server, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return await asyncio.gather(
        *(server.client.post(path, json=body, headers=headers) for _ in range(BURST))
    )


# ---------------------------------------------------------------- HumanOps


async def test_a_humanops_retry_two_seconds_later_replays(
    server: Server, clock: ManualClock
) -> None:
    headers = {**server.a.sandbox, "Idempotency-Key": "retry-later"}
    body = _humanops_task(clock.now() + timedelta(days=1, seconds=0.5))
    first = await server.client.post(f"{HUMANOPS}/tasks", json=body, headers=headers)
    assert first.status_code == 201, first.text
    clock.advance(2)
    retries = await _burst(server, f"{HUMANOPS}/tasks", body, headers)
    assert [r.status_code for r in retries] == [200] * BURST, [
        r.text for r in retries if r.status_code != 200
    ][:3]
    assert {r.json()["task_id"] for r in retries} == {first.json()["task_id"]}
    assert {r.json()["deadline"] for r in retries} == {first.json()["deadline"]}
    other = {**body, "deadline": (clock.now() + timedelta(days=2)).isoformat()}
    conflict = await server.client.post(f"{HUMANOPS}/tasks", json=other, headers=headers)
    assert conflict.status_code == 422, conflict.text  # another deadline: not a replay
    assert conflict.json()["details"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize("clock", [TickingClock(0.05)])
async def test_humanops_twins_sent_at_once_all_answer_the_same_task(
    server: Server, clock: ManualClock
) -> None:
    headers = {**server.a.sandbox, "Idempotency-Key": "twins"}
    body = _humanops_task(clock.now() + timedelta(days=1))
    answers = await _burst(server, f"{HUMANOPS}/tasks", body, headers)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * (BURST - 1) + [201], [r.text for r in answers if r.status_code >= 400][
        :3
    ]
    assert len({r.json()["task_id"] for r in answers}) == 1


# ---------------------------------------------------------------- HumanRail


async def test_a_humanrail_burst_is_one_201_and_the_rest_replays(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_writers(server, monkeypatch)
    body = {
        "idempotencyKey": "burst",
        "taskType": "check",
        "payload": {"n": 1},
        "outputSchema": {"type": "object"},
        "payout": {"currency": "USD", "maxAmount": 0},
    }
    answers = await _burst(server, f"{HUMANRAIL}/tasks", body, server.a.requester)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * (BURST - 1) + [201], codes
    assert len({r.text for r in answers}) == 1  # the same body each time
    listed = await server.client.get(f"{HUMANRAIL}/tasks", headers=server.a.requester)
    assert len(listed.json()["data"]) == 1


async def test_a_humancheck_burst_is_one_201_and_the_rest_replays(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_writers(server, monkeypatch)
    body = {"task_type": "payment", "proposed_action": "Pay $5"}
    headers = {**server.a.requester, "Idempotency-Key": "hc-burst"}
    answers = await _burst(server, f"{HUMANCHECK}/reviews", body, headers)
    assert sorted(r.status_code for r in answers) == [200] * (BURST - 1) + [201]
    assert len({r.json()["id"] for r in answers}) == 1


# ---------------------------------------------------------------- Humancheck


def _fastapi_validation(answer: Any) -> list[dict[str, Any]]:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for error in detail:
        assert {"loc", "msg", "type"} <= set(error), error
    return detail


async def test_a_humancheck_422_is_always_its_validation_body(server: Server) -> None:
    c, headers = server.client, {**server.a.requester, "Idempotency-Key": "null"}
    made = await c.post(
        f"{HUMANCHECK}/reviews",
        json={"task_type": "payment", "proposed_action": "Pay $5"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    reused = await c.post(
        f"{HUMANCHECK}/reviews",
        json={"task_type": "payment", "proposed_action": "Pay $6"},
        headers=headers,
    )
    assert reused.status_code == 409, reused.text  # the key names another request
    assert "already used" in reused.json()["detail"]
    missing = await c.post(f"{HUMANCHECK}/reviews", json={"task_type": "x"}, headers=headers)
    assert _fastapi_validation(missing)[0]["loc"] == ["body", "proposed_action"]


@pytest.mark.parametrize("value", [False, True, "0.5"])
async def test_a_humancheck_confidence_score_is_a_number_not_a_boolean(
    server: Server, value: Any
) -> None:
    answer = await server.client.post(
        f"{HUMANCHECK}/reviews",
        json={"task_type": "payment", "proposed_action": "Pay $5", "confidence_score": value},
        headers=server.a.requester,
    )
    (error,) = _fastapi_validation(answer)
    assert error["loc"] == ["body", "confidence_score"]
    fine = await server.client.post(
        f"{HUMANCHECK}/reviews",
        json={"task_type": "payment", "proposed_action": "Pay $5", "confidence_score": 1},
        headers=server.a.requester,
    )
    assert fine.status_code == 201 and fine.json()["confidence_score"] == 1.0, fine.text
