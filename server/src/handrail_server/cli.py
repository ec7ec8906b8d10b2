"""``handrail serve``, ``handrail keys``, ``handrail migrate``: the server's commands.

Every command reads ``--database-url`` or ``HANDRAIL_DATABASE_URL`` (default: the SQLite
file ``handrail.db`` here). ``keys create`` prints only the new key, so scripts can take it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
import uvicorn
from sqlalchemy import Connection

from handrail import Role
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore

from .keys import NewKey, any_admin, create_key, list_keys, revoke_key
from .migrate import migrate
from .settings import Settings

T = TypeVar("T")
_SAMPLE = '{"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}}'
app = typer.Typer(help="The Handrail server.", no_args_is_help=True, add_completion=False)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", envvar="HANDRAIL_DATABASE_URL", help="sqlite:///file or postgresql://..."
    ),
]


def _url(database_url: str | None) -> str:
    return database_url or Settings().database_url


def _run(url: str, step: Callable[[Connection], T]) -> T:
    async def go() -> T:
        store = await SqlStore.open(url, create=False)
        try:
            await migrate(store)
            return await store.run(step)
        finally:
            await store.close()

    return asyncio.run(go())


def _new_key(
    url: str, org: str, role: Role, *, sandbox: bool = False, principal: str | None = None
) -> NewKey:
    now = SystemClock().now()
    return _run(
        url,
        lambda c: create_key(
            c, org_id=org, role=role, now=now, sandbox=sandbox, principal=principal
        ),
    )


@app.command()
def serve(
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option(envvar="HANDRAIL_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HANDRAIL_PORT")] = 8000,
    workers: Annotated[int, typer.Option(envvar="HANDRAIL_WORKERS", min=1)] = 1,
    demo: Annotated[
        bool, typer.Option(help="create a demo organisation and print its keys")
    ] = False,
) -> None:
    """Run the server (migrating the database first)."""
    url = _url(database_url)
    if not _run(url, any_admin):
        made = _new_key(url, "default", Role.ADMIN, principal="admin")
        typer.echo(
            f"First start: an admin key for organisation 'default' (shown once):\n  {made.key}\n"
        )
    base = f"http://{host}:{port}"
    if demo:
        requester = _new_key(url, "demo", Role.REQUESTER, sandbox=True, principal="demo-agent")
        reviewer = _new_key(url, "demo", Role.REVIEWER, principal="demo-reviewer")
        typer.echo(
            f"Handrail is running at {base}  (API docs: {base}/docs)\n"
            f"  sandbox requester key (org 'demo'): {requester.key}\n"
            f"  reviewer key          (org 'demo'): {reviewer.key}\n"
            f"Try:\n"
            f"  curl -s {base}/v1/tasks -H 'Authorization: Bearer {requester.key}' \\\n"
            f"    -H 'Content-Type: application/json' \\\n"
            f"    -d '{_SAMPLE}'\n"
        )
    else:
        typer.echo(f"Handrail is running at {base}  (API docs: {base}/docs)")
    os.environ["HANDRAIL_DATABASE_URL"] = url  # for the worker processes
    uvicorn.run(
        "handrail_server.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@app.command("migrate")
def migrate_command(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""
    _run(_url(database_url), lambda c: None)
    typer.echo("the database is up to date")


@keys.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="the organisation (created when new)")],
    role: Annotated[Role, typer.Option(help="admin, requester or reviewer")],
    sandbox: Annotated[
        bool, typer.Option(help="an hr_test_ key: simulated reviewers answer")
    ] = False,
    principal: Annotated[str | None, typer.Option("--as", help="who the key acts as")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it (only the key, on stdout)."""
    typer.echo(_new_key(_url(database_url), org, role, sandbox=sandbox, principal=principal).key)


@keys.command("list")
def keys_list(
    org: Annotated[str | None, typer.Option(help="only this organisation")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List keys (never the keys themselves: their prefixes)."""
    for k in _run(_url(database_url), lambda c: list_keys(c, org)):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        sandbox = " sandbox" if k.sandbox else ""
        who = f"{k.org_id:<20} {k.role.value:<9} {k.principal:<24}"
        typer.echo(f"{k.id}  {who} {k.prefix}…{sandbox}  {state}")


@keys.command("revoke")
def keys_revoke(key_id: str, database_url: DatabaseUrl = None) -> None:
    """Revoke a key by its id (see ``keys list``)."""
    now = SystemClock().now()
    if not _run(_url(database_url), lambda c: revoke_key(c, key_id, now)):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")
