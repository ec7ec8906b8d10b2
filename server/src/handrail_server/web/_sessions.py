"""Server-side sessions of the web UI, in the ``web_sessions`` table.

The cookie carries a random session id; the table keeps only its SHA-256, so a copy of
the database signs nobody in. Each session belongs to one API key: every request reads
the session together with its key, so a revoked key (or an expired session) signs out at
once. These functions run on a synchronous connection (``SqlStore.run``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select

from handrail.clock import utc

from ..keys import KeyInfo, live_key, lookup
from ..tables import web_sessions

__all__ = ["NewSession", "Session", "end_session", "find_session", "start_session"]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: the key it signs in as, and its CSRF token."""

    key: KeyInfo
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    """What the cookie carries: shown once, stored hashed."""
    session: Session


def start_session(
    conn: Connection, api_key: str, now: datetime, lifetime: timedelta
) -> NewSession | None:
    """A session for the live key ``api_key``, or None when it is unknown or revoked.
    Expired sessions are swept on the way."""
    info = lookup(conn, api_key)
    if info is None:
        return None
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + lifetime
    conn.execute(
        insert(web_sessions),
        [
            {
                "id_hash": _hash(session_id),
                "key_id": info.id,
                "org_id": info.org_id,
                "csrf": csrf,
                "created_at": now,
                "expires_at": expires,
            }
        ],
    )
    return NewSession(session_id, Session(info, csrf, expires))


def find_session(conn: Connection, session_id: str, now: datetime) -> Session | None:
    """The live session with this id: not expired, its key not revoked; else None. Reads
    only (the caller ends a dead session it was shown)."""
    if not session_id or len(session_id) > 100:
        return None
    query = select(web_sessions).where(web_sessions.c.id_hash == _hash(session_id))
    row = conn.execute(query).first()
    if row is None:
        return None
    key = live_key(conn, row.key_id)
    expires = utc(row.expires_at)  # SQLite gives naive datetimes back
    if key is None or key.org_id != row.org_id or expires <= now:
        return None
    return Session(key, row.csrf, expires)


def end_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _hash(session_id)))
