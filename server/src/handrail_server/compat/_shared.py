"""What the dialects share: amounts as JSON numbers, paging over the engine, creating a
task with a per-task callback, a task's escrow hold, and the dialects' signing secrets."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from handrail import HandrailError, Kind, Money, Principal, Status, Task
from handrail.errors import ValidationError
from handrail.ids import new_id
from handrail.ledger import Hold
from handrail.money import Currency

from .._created import creating
from ..hub import Hub
from ..tables import compat_secrets, webhook_endpoints
from ..webhooks import UnsafeTarget, check_target

__all__ = [
    "Callback",
    "amount",
    "create_task",
    "existing_task",
    "floor_id",
    "hold_of",
    "money",
    "scan",
    "signing_secret",
]

PAGE = 500


def money(value: Decimal | int | float, currency: Currency | str, path: str) -> Money:
    """A dialect's JSON number as exact money (a float is read by its shortest decimal
    form, so 0.1 is ten cents)."""
    if isinstance(value, bool) or (isinstance(value, float) and value != value):
        raise ValidationError.at(path, "must be a number")
    text = str(value) if isinstance(value, float | int) else format(value, "f")
    try:
        return Money.parse(text, currency)
    except ValueError:
        places = Currency(currency).exponent
        raise ValidationError.at(
            path, f"{text} is not an amount of {currency}: at least 0, at most {places} decimals"
        ) from None


def amount(value: Money | None) -> float | int:
    """Money as a JSON number in major units (what the peers' APIs send)."""
    if value is None:
        return 0
    number = Decimal(value.amount)
    return int(number) if number == number.to_integral_value() else float(number)


def floor_id(at: datetime) -> str:
    """The smallest task id made at or after ``at`` (ids are UUIDv7: time-ordered)."""
    ms = max(int(at.timestamp() * 1000), 0)
    return str(uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << 62))


async def scan(
    hub: Hub,
    principal: Principal,
    *,
    statuses: Collection[Status] | None = None,
    kind: Kind | None = None,
    task_type: str | None = None,
    after: str | None = None,
    newest_first: bool = False,
) -> AsyncIterator[Task]:
    """Every task matching the filters, a page at a time, in id order."""
    cursor = after
    while True:
        page = await hub.engine.list(
            principal,
            status=list(statuses) if statuses else None,
            kind=kind,
            task_type=task_type,
            after=cursor,
            limit=PAGE,
            newest_first=newest_first,
        )
        for task in page.items:
            yield task
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass(frozen=True)
class Callback:
    """Where a task's events go, in which dialect's scheme, signed with which secret."""

    url: str
    scheme: str
    secret: str
    events: tuple[str, ...] = ("*",)


async def _check_url(hub: Hub, url: str, path: str) -> None:
    try:
        await check_target(url, allow_private=hub.settings.allow_private_webhooks)
    except UnsafeTarget as exc:
        raise ValidationError.at(path, str(exc)) from None


def _bind(conn: Connection, org: str, key: str, callback: Callback, now: datetime) -> None:
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    row = {
        "id": new_id(),
        "org_id": org,
        "url": callback.url,
        "secret": callback.secret,
        "events": list(callback.events),
        "enabled": True,
        "description": "a task's callback",
        "created_at": now,
        "scheme": callback.scheme,
        "task_key": key,
    }
    changes = {k: row[k] for k in ("url", "secret", "events", "enabled", "scheme")}
    conn.execute(
        make(webhook_endpoints)
        .values(row)
        .on_conflict_do_update(index_elements=["org_id", "task_key"], set_=changes)
    )


def _unbind(conn: Connection, org: str, key: str) -> None:
    conn.execute(
        delete(webhook_endpoints).where(
            webhook_endpoints.c.org_id == org, webhook_endpoints.c.task_key == key
        )
    )


async def existing_task(hub: Hub, principal: Principal, key: str) -> Task | None:
    """The organisation's task with this idempotency key, if there is one."""
    async with hub.store.transaction(readonly=True) as tx:
        return await tx.find_by_key(principal.org_id, key)


async def create_task(
    hub: Hub,
    principal: Principal,
    spec: Mapping[str, Any],
    *,
    callback: Callback | None = None,
    callback_path: str = "$.callback_url",
) -> tuple[Task, bool]:
    """Create the task ``spec`` describes (it must carry an ``idempotency_key``), with its
    callback bound to it before it exists, so no event of it can be missed. Returns the
    task and whether it was already there (a replay)."""
    key = spec["idempotency_key"]
    if await existing_task(hub, principal, key) is not None:
        return await hub.engine.create(principal, dict(spec)), True  # or a conflict
    if callback is not None:
        await _check_url(hub, callback.url, callback_path)
        now = hub.clock.now()
        await hub.store.run(lambda c: _bind(c, principal.org_id, key, callback, now))
    try:
        with creating() as made:
            task = await hub.engine.create(principal, dict(spec))
    except HandrailError:
        if callback is not None and await existing_task(hub, principal, key) is None:
            await hub.store.run(lambda c: _unbind(c, principal.org_id, key))
        raise
    # a twin past the check above at the same time may have made it: then this is a replay
    return task, task.id not in made


async def hold_of(hub: Hub, task: Task) -> Hold | None:
    """The money held for ``task`` (the caller has read the task, so it is theirs)."""
    async with hub.store.transaction(readonly=True) as tx:
        return await tx.get_hold(task.id)


def _secret(conn: Connection, org: str, dialect: str, now: datetime, rotate: bool) -> str:
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    row = {"org_id": org, "dialect": dialect, "secret": _new_secret(), "created_at": now}
    query = make(compat_secrets).values(row)
    keys = ["org_id", "dialect"]
    if rotate:
        conn.execute(query.on_conflict_do_update(index_elements=keys, set_=row))
    else:
        conn.execute(query.on_conflict_do_nothing(index_elements=keys))
    where = (compat_secrets.c.org_id == org, compat_secrets.c.dialect == dialect)
    return str(conn.execute(select(compat_secrets.c.secret).where(*where)).scalar_one())


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def signing_secret(hub: Hub, org: str, dialect: str, *, rotate: bool = False) -> str:
    """The organisation's secret for signing ``dialect``'s callbacks (made when missing,
    or anew with ``rotate``)."""
    now = hub.clock.now()
    return await hub.store.run(lambda c: _secret(c, org, dialect, now, rotate))
