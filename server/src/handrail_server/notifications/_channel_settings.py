"""The channels an organisation's admins set up (``/v1/notifications/channels``): email
through the server's SMTP relay, or Slack through an incoming webhook.

These are settings (rows); ``_channels`` holds the senders that use them. A Slack channel's
webhook URL is a secret and must pass the SSRF guard; its signing secret checks the clicks
that come back. Stopping a channel disables it and forgets its secret; its log stays.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from handrail.clock import Clock, utc
from handrail.errors import NotFound, ValidationError, ValidationIssue
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from ..tables import notify_channels
from ..webhooks import check_url_input

__all__ = ["ChannelSetting", "ChannelSettings"]

_CHANGEABLE = ("name", "events", "enabled", "webhook_url", "signing_secret")
_NO_WEBHOOK = "an email channel has no webhook or signing secret"


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """A channel as stored: with its secrets, which only the server itself reads."""

    id: str
    org_id: str
    kind: str
    """``email`` or ``slack``."""
    name: str
    events: list[str]
    enabled: bool
    webhook_url: str | None
    signing_secret: str | None
    created_at: datetime
    updated_at: datetime


def _setting(m: Any) -> ChannelSetting:
    return ChannelSetting(
        id=m["id"],
        org_id=m["org_id"],
        kind=m["kind"],
        name=m["name"],
        events=list(m["events"]),
        enabled=m["enabled"],
        webhook_url=m["webhook_url"],
        signing_secret=m["signing_secret"],
        created_at=utc(m["created_at"]),  # SQLite gives naive datetimes back
        updated_at=utc(m["updated_at"]),
    )


def _find(conn: Connection, org_id: str, channel_id: str) -> ChannelSetting:
    row = conn.execute(
        select(notify_channels).where(
            notify_channels.c.id == channel_id, notify_channels.c.org_id == org_id
        )
    ).first()
    if row is None:
        raise NotFound("notification channel", channel_id)
    return _setting(row._mapping)


def _refused(path: str, message: str) -> ValidationError:
    return ValidationError([ValidationIssue(path, message)], "invalid channel")


class ChannelSettings:
    """The channels of any organisation, each call scoped to one (``org_id``).

    ``smtp``: the server has an SMTP relay (without one, no email channel);
    ``allow_private``: Slack URLs may reach private addresses (tests, private networks)."""

    def __init__(
        self, store: SqlStore, clock: Clock, *, smtp: bool, allow_private: bool = False
    ) -> None:
        self._store = store
        self._clock = clock
        self._smtp = smtp
        self._allow_private = allow_private

    async def create(
        self,
        org_id: str,
        kind: str,
        name: str,
        events: Sequence[str],
        *,
        enabled: bool = True,
        webhook_url: str | None = None,
        signing_secret: str | None = None,
    ) -> ChannelSetting:
        """Raises ``ValidationError`` (``UnsafeWebhookUrl`` for a URL the guard refuses)."""
        if kind == "email":
            if webhook_url is not None or signing_secret is not None:
                raise _refused("$.webhook_url", _NO_WEBHOOK)
            if not self._smtp:
                raise _refused("$.kind", "this server has no SMTP relay (HANDRAIL_SMTP_HOST)")
        elif kind == "slack":
            if webhook_url is None:
                raise _refused("$.webhook_url", "a Slack channel needs its incoming-webhook URL")
            await self._check_url(webhook_url)
        else:
            raise _refused("$.kind", "a channel is email or slack")
        now = self._clock.now()
        channel_id = new_id()
        row: dict[str, Any] = {
            "id": channel_id,
            "org_id": org_id,
            "kind": kind,
            "name": name,
            "events": list(dict.fromkeys(events)),
            "enabled": enabled,
            "webhook_url": webhook_url,
            "signing_secret": signing_secret,
            "created_at": now,
            "updated_at": now,
        }

        def write(conn: Connection) -> ChannelSetting:
            conn.execute(insert(notify_channels), [row])
            return _find(conn, org_id, channel_id)

        return await self._store.run(write)

    async def list(self, org_id: str) -> builtins.list[ChannelSetting]:
        query = (
            select(notify_channels)
            .where(notify_channels.c.org_id == org_id)
            .order_by(notify_channels.c.created_at, notify_channels.c.id)
        )
        rows = await self._store.run(lambda c: c.execute(query).all(), readonly=True)
        return [_setting(r._mapping) for r in rows]

    async def get(self, org_id: str, channel_id: str) -> ChannelSetting:
        """Raises ``NotFound`` unless ``org_id`` has this channel."""
        return await self._store.run(lambda c: _find(c, org_id, channel_id), readonly=True)

    async def update(self, org_id: str, channel_id: str, **changes: Any) -> ChannelSetting:
        """Change ``name``, ``events``, ``enabled``, ``webhook_url`` or ``signing_secret``
        (those given, not None); the channel as it then is."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if unknown := set(changes) - set(_CHANGEABLE):
            raise TypeError(f"a channel has no {sorted(unknown)} to change")
        current = await self.get(org_id, channel_id)
        if current.kind == "email" and ({"webhook_url", "signing_secret"} & set(changes)):
            raise _refused("$.webhook_url", _NO_WEBHOOK)
        if "webhook_url" in changes:
            await self._check_url(changes["webhook_url"])
        if "events" in changes:
            changes["events"] = list(dict.fromkeys(changes["events"]))
        changes["updated_at"] = self._clock.now()

        def apply(conn: Connection) -> ChannelSetting:
            _find(conn, org_id, channel_id)
            conn.execute(
                update(notify_channels).where(notify_channels.c.id == channel_id).values(**changes)
            )
            return _find(conn, org_id, channel_id)

        return await self._store.run(apply)

    async def disable(self, org_id: str, channel_id: str) -> None:
        """Stop the channel: disabled, its signing secret forgotten, its log kept."""
        now = self._clock.now()

        def disable(conn: Connection) -> None:
            _find(conn, org_id, channel_id)
            conn.execute(
                update(notify_channels)
                .where(notify_channels.c.id == channel_id)
                .values(enabled=False, signing_secret=None, updated_at=now)
            )

        await self._store.run(disable)

    async def slack(self, channel_id: str) -> ChannelSetting | None:
        """The Slack channel with this id, of whichever organisation: what a click that
        comes back names (its signature, checked with the channel's secret, is the proof)."""
        query = select(notify_channels).where(
            notify_channels.c.id == channel_id, notify_channels.c.kind == "slack"
        )
        row = await self._store.run(lambda c: c.execute(query).first(), readonly=True)
        return _setting(row._mapping) if row is not None else None

    async def _check_url(self, url: str) -> None:
        await check_url_input(url, "$.webhook_url", allow_private=self._allow_private)
