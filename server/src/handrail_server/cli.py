"""``handrail serve``, ``keys``, ``migrate``, ``policy``, ``audit``: the server's commands.

Every command reads ``--database-url`` or ``HANDRAIL_DATABASE_URL`` (default: the SQLite
file ``handrail.db`` here). ``keys create`` prints only the new key, so scripts can take it.
``audit verify`` exits 1 when a chain is broken, naming the first broken link.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from sqlalchemy import Connection

from handrail import Engine, HandrailError, Principal, Role
from handrail.audit import AuditEntry, AuditHead, ChainReport, verify
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore

from .keys import NewKey, any_admin, create_key, list_keys, revoke_key
from .migrate import migrate
from .protocol import server_options
from .settings import Settings

T = TypeVar("T")
_SAMPLE = '{"kind": "review", "action": {"name": "send_email", "args": {"to": "a@b.c"}}}'
app = typer.Typer(help="The Handrail server.", no_args_is_help=True, add_completion=False)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")
policy = typer.Typer(help="An organisation's approval policy.", no_args_is_help=True)
app.add_typer(policy, name="policy")
audit = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit, name="audit")

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


def _with_engine(url: str, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``work`` on an engine over the (migrated) database; engine errors exit 1."""

    async def go() -> T:
        store = await SqlStore.open(url, create=False)
        try:
            await migrate(store)
            return await work(Engine(store))
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except HandrailError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _admin(org: str) -> Principal:
    return Principal(org_id=org, id=f"cli:{getpass.getuser()}", roles=frozenset({Role.ADMIN}))


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
        sandbox = _new_key(url, "demo", Role.REQUESTER, sandbox=True, principal="demo-bot")
        requester = _new_key(url, "demo", Role.REQUESTER, principal="demo-agent")
        reviewer = _new_key(url, "demo", Role.REVIEWER, principal="demo-reviewer")
        typer.echo(
            f"Handrail is running at {base}  (API docs: {base}/docs)\n"
            f"  requester key         (org 'demo'): {requester.key}\n"
            f"  sandbox requester key (org 'demo'): {sandbox.key}  (simulated reviewers answer)\n"
            f"  reviewer key          (org 'demo'): {reviewer.key}\n"
            f"Review in the browser: {base}/signin  (sign in with the reviewer's key)\n"
            f"Ask for a review (it appears in the browser's queue; a sandbox key gets an answer "
            f"at once):\n"
            f"  curl -s {base}/v1/tasks -H 'Authorization: Bearer {requester.key}' \\\n"
            f"    -H 'Content-Type: application/json' \\\n"
            f"    -d '{_SAMPLE}'\n"
        )
    else:
        typer.echo(f"Handrail is running at {base}  (API docs: {base}/docs, reviewer UI: {base}/)")
    os.environ["HANDRAIL_DATABASE_URL"] = url  # for the worker processes
    uvicorn.run(
        "handrail_server.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **server_options(),  # type: ignore[arg-type]
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


# ---------------------------------------------------------------- policy

Org = Annotated[str, typer.Option(help="the organisation")]


def _dump(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@policy.command("get")
def policy_get(org: Org, database_url: DatabaseUrl = None) -> None:
    """Print the organisation's policy as JSON (what ``policy set`` reads)."""
    found = _with_engine(_url(database_url), lambda e: e.get_policy(_admin(org)))
    _dump(found.model_dump(mode="json", exclude_defaults=True))


@policy.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help='a JSON file: {"rules": [...]}, or - for stdin')],
    org: Org,
    expected_version: Annotated[
        int | None, typer.Option(help="refuse if the saved version is not this one")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Save a new version of the organisation's policy."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        body = json.loads(text)
    except ValueError as exc:
        typer.echo(f"error: {file} is not JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    saved = _with_engine(
        _url(database_url),
        lambda e: e.put_policy(_admin(org), body, expected_version=expected_version),
    )
    typer.echo(f"saved version {saved.version} ({len(saved.rules)} rules)")


@policy.command("explain")
def policy_explain(
    org: Org,
    tool: Annotated[str, typer.Option(help="the tool the review would be for")],
    args: Annotated[str, typer.Option(help="its arguments, as JSON")] = "{}",
    task_type: Annotated[str | None, typer.Option()] = None,
    risk_tier: Annotated[str, typer.Option()] = "medium",
    database_url: DatabaseUrl = None,
) -> None:
    """Dry run: which rule a review would match, and why, rule by rule."""
    try:
        parsed = json.loads(args)
    except ValueError as exc:
        typer.echo(f"error: --args is not JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    review = {
        "kind": "review",
        "action": {"name": tool, "args": parsed},
        "task_type": task_type,
        "risk_tier": risk_tier,
    }
    found = _with_engine(_url(database_url), lambda e: e.explain_policy(_admin(org), review))
    for step in found.trace:
        typer.echo(f"  {'MATCH' if step.matched else 'skip '} {step.rule_id}: {step.reason}")
    rule = found.rule_id or "(no rule: the default)"
    erred = f" (the rule erred: {found.error})" if found.error else ""
    typer.echo(f"outcome: {found.outcome.value} by {rule}{erred}")


# ---------------------------------------------------------------- audit


def _print_report(report: ChainReport) -> None:
    if report.ok:
        typer.echo(f"{report.org_id}: ok ({report.checked} entries, head {report.head_seq})")
    else:
        typer.echo(
            f"{report.org_id}: BROKEN at entry {report.broken_at}: {report.reason} "
            f"({report.checked} entries read)"
        )


def _verify_file(path: Path) -> list[ChainReport]:
    """Check an export offline: each organisation's chain in it, up to its last line."""
    chains: dict[str, list[AuditEntry]] = {}
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = AuditEntry.model_validate_json(line)
            except ValueError as exc:
                typer.echo(f"error: {path}:{number} is not an audit entry: {exc}", err=True)
                raise typer.Exit(1) from exc
            chains.setdefault(entry.org_id, []).append(entry)
    return [
        verify(org, entries, AuditHead(org, entries[-1].seq, entries[-1].hash))
        for org, entries in chains.items()
    ]


@audit.command("verify")
def audit_verify(
    org: Annotated[str | None, typer.Option(help="only this organisation")] = None,
    file: Annotated[
        Path | None, typer.Option(help="check an exported JSON Lines file instead")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Recompute the hash chains and report the first broken link of each."""
    if file is not None:
        reports = _verify_file(file)
    else:

        async def check(engine: Engine) -> list[ChainReport]:
            if org is not None:
                return [await engine.verify_chain(org)]
            async with engine.store.transaction(readonly=True) as tx:
                orgs = await tx.audit_orgs()
            return [await engine.verify_chain(o) for o in orgs]

        reports = _with_engine(_url(database_url), check)
    for report in reports:
        _print_report(report)
    if not reports:
        typer.echo("no audit entries")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@audit.command("export")
def audit_export(
    org: Org,
    out: Annotated[Path | None, typer.Option(help="write here (default: stdout)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write an organisation's audit log as JSON Lines, oldest first."""

    async def export(engine: Engine) -> int:
        stream = out.open("w") if out is not None else sys.stdout
        count = 0
        try:
            async for entry in await engine.export_audit(_admin(org)):
                stream.write(entry.line() + "\n")
                count += 1
        finally:
            if out is not None:
                stream.close()
        return count

    count = _with_engine(_url(database_url), export)
    if out is not None:
        typer.echo(f"wrote {count} entries to {out}")
