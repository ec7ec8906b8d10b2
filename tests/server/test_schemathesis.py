"""Property-based contract fuzzing: schemathesis generates requests from the OpenAPI schema
(valid and invalid ones) and the server must never answer 5xx.

Each operation gets a fresh app with its lifespan started on schemathesis's ASGI client:
on its own SQLite file, and again on PostgreSQL (one database for the module: a value too
long for a column, say, fails only there). Every request carries a real admin key (admins
hold every role, so the handlers run past their role checks). The two SSE streams never
end and are left out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import make_url

from handrail import Role
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore
from handrail_server.app import create_app
from handrail_server.keys import create_key
from handrail_server.migrate import migrate
from tests.postgres import asyncpg_dsn
from tests.server.conftest import make_settings

EXAMPLES = 12  # per operation

# The schema alone: building the app starts nothing (no database until its lifespan runs).
schema = schemathesis.openapi.from_dict(create_app().openapi()).exclude(
    path_regex=r"^/v1/(tasks/\{task_id\}/)?events$"
)


async def _admin_key(url: str) -> dict[str, str]:
    """Migrate the database and make an admin key, before the app opens it."""
    store = await SqlStore.open(url, create=False)
    try:
        await migrate(store)
        now = SystemClock().now()
        made = await store.run(
            lambda c: create_key(c, org_id="fuzz", role=Role.ADMIN, now=now, principal="admin")
        )
    finally:
        await store.close()
    return {"Authorization": f"Bearer {made.key}"}


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def fuzz_database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database for this module (dropped WITH (FORCE) afterwards)."""
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fuzz.db'}"
    url: str = request.getfixturevalue("fuzz_database")
    return url


@pytest.fixture
def fuzzed(tmp_path: Path, database_url: str) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    config = make_settings(tmp_path, run_background=False, database_url=database_url)
    headers = asyncio.run(_admin_key(config.database_url))
    app = create_app(config)
    try:
        yield app, headers
    finally:
        shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, fuzzed: tuple[FastAPI, dict[str, str]]) -> None:
    app, headers = fuzzed
    if case.path == "/v1/queue" and isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = 0  # an empty queue would long-poll for as long as asked
    if case.path == "/compat/humancheck/reviews" and isinstance(case.body, dict):
        case.body["blocking"] = False  # a blocking review waits for a decision nobody makes
    response = case.call(app=app, headers=headers)
    case.validate_response(response, checks=[not_a_server_error])
