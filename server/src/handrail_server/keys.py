"""API keys: ``hr_live_…`` and ``hr_test_…``, stored as SHA-256 hashes, shown once.

A key belongs to one organisation and carries one role (admin, requester, reviewer) and
the principal it acts as. ``hr_test_`` keys act in the organisation's sandbox, a world
of its own (see :mod:`.modes`) where simulated reviewers answer. These functions run on a
synchronous SQLAlchemy connection (``SqlStore.run``), inside the caller's transaction;
``ApiKeys`` runs them in transactions of their own, for the API's key management
(``/v1/keys``).
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from handrail import Principal, Role
from handrail.clock import Clock, utc
from handrail.errors import NotFound, ValidationError
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from .modes import check_org_id, world
from .tables import api_keys, orgs

__all__ = [
    "CHANGES_CHANNEL",
    "KEYS_CHANNEL",
    "ApiKeys",
    "KeyInfo",
    "NewKey",
    "any_admin",
    "create_key",
    "decider_key",
    "ensure_org",
    "hash_key",
    "list_keys",
    "live_key",
    "lookup",
    "revoke_key",
]

_ALPHABET = string.ascii_letters + string.digits
KEYS_CHANNEL = "keys:revoked"
"""The waker channel a revocation is published on (every authenticator follows it)."""
CHANGES_CHANNEL = "handrail_changes"
"""``PostgresWaker``'s ``NOTIFY`` channel: what every server process ``LISTEN``s to."""
LIVE, TEST = "hr_live_", "hr_test_"


def hash_key(key: str) -> str:
    """Keys carry 190 random bits: a fast hash is as safe as a slow one here."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    org_id: str
    prefix: str
    role: Role
    principal: str
    sandbox: bool
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def tenant_id(self) -> str:
        """The world the key acts in: its organisation, or the organisation's sandbox."""
        return world(self.org_id, self.sandbox)

    def as_principal(self) -> Principal:
        return Principal(
            org_id=self.tenant_id,
            id=self.principal,
            roles=frozenset({self.role}),
            sandbox=self.sandbox,
            key_id=self.id,
        )


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str
    """The key itself: shown once, never stored."""
    info: KeyInfo


def _info(m: Any) -> KeyInfo:
    return KeyInfo(
        id=m["id"],
        org_id=m["org_id"],
        prefix=m["prefix"],
        role=Role(m["role"]),
        principal=m["principal"],
        sandbox=m["sandbox"],
        name=m["name"],
        created_at=utc(m["created_at"]),  # SQLite gives naive datetimes back
        revoked_at=utc(m["revoked_at"]) if m["revoked_at"] is not None else None,
    )


def ensure_org(conn: Connection, org_id: str, now: datetime) -> bool:
    """Create the organisation if it is new; True when it was. ``ValidationError`` for an
    id no organisation may have (one with ``~``, kept for sandboxes, or too long)."""
    check_org_id(org_id)
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = conn.execute(
        make(orgs).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": org_id, "created_at": now}],
    )
    return bool(result.rowcount)


def create_key(
    conn: Connection,
    *,
    org_id: str,
    role: Role,
    now: datetime,
    sandbox: bool = False,
    principal: str | None = None,
    name: str | None = None,
) -> NewKey:
    """A new key for ``org_id`` (created when new) acting as ``principal`` (default: a name
    made from the role and the key's id). One identity holds one role: a principal that
    has (or had) a key of another role gets none (``ValidationError``), so no identity
    both asks for work and earns from it."""
    ensure_org(conn, org_id, now)
    if principal is not None:
        held = conn.execute(
            select(api_keys.c.role)
            .where(
                api_keys.c.org_id == org_id,
                api_keys.c.principal == principal,
                api_keys.c.role != role.value,
            )
            .limit(1)
        ).scalar()
        if held is not None:
            raise ValidationError.at(
                "$.principal",
                f"{principal!r} already holds the {held} role: one identity, one role",
            )
    key = (TEST if sandbox else LIVE) + "".join(secrets.choice(_ALPHABET) for _ in range(32))
    key_id = new_id()
    row = {
        "id": key_id,
        "org_id": org_id,
        "hash": hash_key(key),
        "prefix": key[:12],
        "role": role.value,
        "principal": principal or f"{role.value}-{key_id[-8:]}",
        "sandbox": sandbox,
        "name": name,
        "created_at": now,
        "revoked_at": None,
    }
    conn.execute(insert(api_keys), [row])
    return NewKey(key=key, info=_info(row))


def lookup(conn: Connection, key: str) -> KeyInfo | None:
    """The live key with this value, or None (unknown, malformed or revoked)."""
    if not key.startswith((LIVE, TEST)):
        return None
    row = conn.execute(
        select(api_keys).where(api_keys.c.hash == hash_key(key), api_keys.c.revoked_at.is_(None))
    ).first()
    return _info(row._mapping) if row is not None else None


def live_key(conn: Connection, key_id: str) -> KeyInfo | None:
    """The key with this id while it is not revoked, else None."""
    row = conn.execute(
        select(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    ).first()
    return _info(row._mapping) if row is not None else None


def decider_key(conn: Connection, org_id: str, principal: str) -> KeyInfo | None:
    """A live (not revoked, not sandbox) key of ``org_id`` acting as ``principal`` with a
    role that decides reviews (reviewer, else admin), or None: whom a Slack click or a
    decision link may act for, as of now."""
    query = (
        select(api_keys)
        .where(
            api_keys.c.org_id == org_id,
            api_keys.c.principal == principal,
            api_keys.c.role.in_([Role.REVIEWER.value, Role.ADMIN.value]),
            api_keys.c.revoked_at.is_(None),
            api_keys.c.sandbox.is_(False),
        )
        .order_by(api_keys.c.role.desc(), api_keys.c.created_at, api_keys.c.id)
    )
    row = conn.execute(query.limit(1)).first()
    return _info(row._mapping) if row is not None else None


def list_keys(
    conn: Connection, org_id: str | None = None, *, sandbox_only: bool = False
) -> list[KeyInfo]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if org_id is not None:
        query = query.where(api_keys.c.org_id == org_id)
    if sandbox_only:
        query = query.where(api_keys.c.sandbox.is_(True))
    return [_info(r._mapping) for r in conn.execute(query).all()]


def revoke_key(
    conn: Connection,
    key_id: str,
    now: datetime,
    org_id: str | None = None,
    *,
    sandbox_only: bool = False,
) -> bool:
    """Revoke the key; on PostgreSQL the same transaction notifies every process (on
    commit), whose authenticators then forget the keys they remembered."""
    query = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if org_id is not None:
        query = query.where(api_keys.c.org_id == org_id)
    if sandbox_only:
        query = query.where(api_keys.c.sandbox.is_(True))
    done = bool(conn.execute(query.values(revoked_at=now)).rowcount)
    if done and conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANGES_CHANNEL, "payload": KEYS_CHANNEL},
        )
    return done


def any_admin(conn: Connection) -> bool:
    query = select(api_keys.c.id).where(api_keys.c.role == "admin", api_keys.c.revoked_at.is_(None))
    return conn.execute(query.limit(1)).first() is not None


class ApiKeys:
    """Key management for an organisation's admins: each call scoped to ``org_id``, each
    in a transaction of its own. ``sandbox_only``: what a sandbox admin may touch (the
    sandbox's keys; a live key is another world's, and answers 404)."""

    def __init__(
        self, store: SqlStore, clock: Clock, revoked: Callable[[str], None] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._revoked = revoked  # this process's authenticator forgets the key at once

    async def create(
        self,
        org_id: str,
        role: Role,
        *,
        sandbox: bool = False,
        principal: str | None = None,
        name: str | None = None,
    ) -> NewKey:
        now = self._clock.now()
        return await self._store.run(
            lambda c: create_key(
                c,
                org_id=org_id,
                role=role,
                now=now,
                sandbox=sandbox,
                principal=principal,
                name=name,
            )
        )

    async def list(self, org_id: str, *, sandbox_only: bool = False) -> builtins.list[KeyInfo]:
        return await self._store.run(
            lambda c: list_keys(c, org_id, sandbox_only=sandbox_only), readonly=True
        )

    async def revoke(self, org_id: str, key_id: str, *, sandbox_only: bool = False) -> None:
        """Raises ``NotFound`` unless ``org_id`` has this key, not yet revoked."""
        now = self._clock.now()
        done = await self._store.run(
            lambda c: revoke_key(c, key_id, now, org_id, sandbox_only=sandbox_only)
        )
        if not done:
            raise NotFound("key", key_id)
        if self._revoked is not None:
            self._revoked(key_id)
