"""Notification settings of an organisation (admins): channels (email, Slack), reviewers'
contacts, and the log of what was sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from handrail import Role
from handrail.clock import utc
from handrail.ids import new_id

from ..auth import require
from ..deps import HubDep, PrincipalDep
from ..notifications import EVENT_TYPES
from ..problems import ApiProblem
from ..tables import notify_attempts, notify_channels, notify_contacts, notify_outbox
from ..webhooks import UnsafeTarget, check_target

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

EventName = Literal["task.new", "task.sla_warning", "task.manual_review", "task.escalated", "*"]
ReviewerId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^\S(?:.*\S)?$")]
ChannelId = Annotated[str, Path(min_length=1, max_length=36)]
Email = Annotated[  # ASCII only: SMTP without SMTPUTF8 takes nothing else
    str,
    Field(
        max_length=320,
        pattern=r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$",
    ),
]
SlackUser = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,30}$")]
Secret = Annotated[str, Field(min_length=8, max_length=200)]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["email", "slack"]
    name: str = Field(min_length=1, max_length=200)
    events: list[EventName] = Field(default_factory=lambda: list[EventName](["*"]), min_length=1)
    enabled: bool = True
    webhook_url: str | None = Field(
        default=None, min_length=8, max_length=2048, description="slack: the incoming webhook"
    )
    signing_secret: Secret | None = Field(
        default=None, description="slack: the app's signing secret (for its buttons)"
    )


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    events: list[EventName] | None = Field(default=None, min_length=1)
    enabled: bool | None = None
    webhook_url: str | None = Field(default=None, min_length=8, max_length=2048)
    signing_secret: Secret | None = None


class ChannelOut(BaseModel):
    id: str
    kind: str
    name: str
    events: list[str]
    enabled: bool
    webhook_url: str | None = Field(description="masked: the URL is a secret")
    has_signing_secret: bool
    interactions_url: str | None = Field(
        description="slack: the Request URL to set under Interactivity in the Slack app"
    )
    created_at: datetime
    updated_at: datetime


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email | None = None
    slack_user_id: SlackUser | None = None


class ContactOut(BaseModel):
    reviewer_id: str
    email: str | None
    slack_user_id: str | None
    updated_at: datetime


def masked(url: str | None) -> str | None:
    """An incoming-webhook URL as shown back: its scheme and host, and the last 4
    characters of the rest."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}"


def _channel_out(row: Any, base: str) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "kind": m["kind"],
        "name": m["name"],
        "events": m["events"],
        "enabled": m["enabled"],
        "webhook_url": masked(m["webhook_url"]),
        "has_signing_secret": m["signing_secret"] is not None,
        "interactions_url": f"{base}/integrations/slack/{m['id']}/interactions"
        if m["kind"] == "slack"
        else None,
        "created_at": utc(m["created_at"]),
        "updated_at": utc(m["updated_at"]),
    }


def _find(conn: Connection, org: str, channel_id: str) -> Any:
    row = conn.execute(
        select(notify_channels).where(
            notify_channels.c.id == channel_id, notify_channels.c.org_id == org
        )
    ).first()
    if row is None:
        raise ApiProblem(404, "not_found", f"notification channel {channel_id!r} not found")
    return row


def _problem(path: str, message: str, code: str = "validation_error") -> ApiProblem:
    return ApiProblem(422, code, message, errors=[{"path": path, "message": message}])


async def _check_slack_url(hub: Any, url: str) -> None:
    try:
        await check_target(url, allow_private=hub.settings.allow_private_webhooks)
    except UnsafeTarget as exc:
        raise _problem("$.webhook_url", str(exc), "unsafe_webhook_url") from None


@router.post("/channels", status_code=201, response_model=ChannelOut)
async def create_channel(body: ChannelIn, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """A channel. Email goes through the server's SMTP relay to each reviewer's address;
    Slack posts to an incoming webhook (``webhook_url``, shown back masked) and, with the
    app's ``signing_secret``, takes Approve / Reject clicks at ``interactions_url``."""
    require(principal, Role.ADMIN)
    if body.kind == "email":
        if body.webhook_url is not None or body.signing_secret is not None:
            raise _problem("$.webhook_url", "an email channel has no webhook or signing secret")
        if hub.settings.smtp_host is None:
            raise _problem("$.kind", "this server has no SMTP relay (HANDRAIL_SMTP_HOST)")
    else:
        if body.webhook_url is None:
            raise _problem("$.webhook_url", "a Slack channel needs its incoming-webhook URL")
        await _check_slack_url(hub, body.webhook_url)
    now = hub.clock.now()
    channel_id = new_id()
    row: dict[str, Any] = {
        "id": channel_id,
        "org_id": principal.org_id,
        "kind": body.kind,
        "name": body.name,
        "events": list(dict.fromkeys(body.events)),
        "enabled": body.enabled,
        "webhook_url": body.webhook_url,
        "signing_secret": body.signing_secret,
        "created_at": now,
        "updated_at": now,
    }

    def write(conn: Connection) -> Any:
        conn.execute(insert(notify_channels), [row])
        return _find(conn, principal.org_id, channel_id)

    return _channel_out(await hub.store.run(write), hub.settings.base_url)


@router.get("/channels", response_model=list[ChannelOut])
async def list_channels(hub: HubDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    query = (
        select(notify_channels)
        .where(notify_channels.c.org_id == principal.org_id)
        .order_by(notify_channels.c.created_at, notify_channels.c.id)
    )
    rows = await hub.store.run(lambda c: c.execute(query).all(), readonly=True)
    return [_channel_out(r, hub.settings.base_url) for r in rows]


@router.get("/channels/{channel_id}", response_model=ChannelOut)
async def get_channel(
    channel_id: ChannelId, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    row = await hub.store.run(lambda c: _find(c, principal.org_id, channel_id), readonly=True)
    return _channel_out(row, hub.settings.base_url)


@router.patch("/channels/{channel_id}", response_model=ChannelOut)
async def update_channel(
    channel_id: ChannelId, body: ChannelPatch, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    changes = body.model_dump(exclude_none=True)
    current = await hub.store.run(lambda c: _find(c, principal.org_id, channel_id), readonly=True)
    if current.kind == "email" and ({"webhook_url", "signing_secret"} & set(changes)):
        raise _problem("$.webhook_url", "an email channel has no webhook or signing secret")
    if "webhook_url" in changes:
        await _check_slack_url(hub, changes["webhook_url"])
    if "events" in changes:
        changes["events"] = list(dict.fromkeys(changes["events"]))
    changes["updated_at"] = hub.clock.now()

    def apply(conn: Connection) -> Any:
        _find(conn, principal.org_id, channel_id)
        conn.execute(
            update(notify_channels).where(notify_channels.c.id == channel_id).values(**changes)
        )
        return _find(conn, principal.org_id, channel_id)

    return _channel_out(await hub.store.run(apply), hub.settings.base_url)


@router.delete("/channels/{channel_id}", status_code=204)
async def delete_channel(channel_id: ChannelId, hub: HubDep, principal: PrincipalDep) -> None:
    """Stop a channel: disabled, its secrets forgotten, its log kept."""
    require(principal, Role.ADMIN)

    def disable(conn: Connection) -> None:
        _find(conn, principal.org_id, channel_id)
        conn.execute(
            update(notify_channels)
            .where(notify_channels.c.id == channel_id)
            .values(enabled=False, signing_secret=None, updated_at=hub.clock.now())
        )

    await hub.store.run(disable)


# ---------------------------------------------------------------- contacts


def _contact_out(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "reviewer_id": m["reviewer_id"],
        "email": m["email"],
        "slack_user_id": m["slack_user_id"],
        "updated_at": utc(m["updated_at"]),
    }


@router.put("/contacts/{reviewer_id}", response_model=ContactOut)
async def put_contact(
    reviewer_id: ReviewerId, body: ContactIn, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Where a reviewer (a principal id) hears of work: an email address, a Slack user id
    (``U…``; a click in Slack from that user decides as this reviewer, if the policy allows
    them)."""
    require(principal, Role.ADMIN)
    values = {**body.model_dump(), "updated_at": hub.clock.now()}
    key = (notify_contacts.c.org_id == principal.org_id) & (
        notify_contacts.c.reviewer_id == reviewer_id
    )

    def write(conn: Connection) -> Any:
        if conn.execute(update(notify_contacts).where(key).values(**values)).rowcount == 0:
            conn.execute(
                insert(notify_contacts),
                [{"org_id": principal.org_id, "reviewer_id": reviewer_id, **values}],
            )
        return conn.execute(select(notify_contacts).where(key)).one()

    try:
        return _contact_out(await hub.store.run(write))
    except Exception as exc:
        if isinstance(exc.__cause__, IntegrityError) or isinstance(exc, IntegrityError):
            raise ApiProblem(
                409, "conflict", "another reviewer of this organisation has that Slack user id"
            ) from None
        raise


@router.get("/contacts", response_model=list[ContactOut])
async def list_contacts(hub: HubDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    query = (
        select(notify_contacts)
        .where(notify_contacts.c.org_id == principal.org_id)
        .order_by(notify_contacts.c.reviewer_id)
    )
    return [
        _contact_out(r)
        for r in await hub.store.run(lambda c: c.execute(query).all(), readonly=True)
    ]


@router.delete("/contacts/{reviewer_id}", status_code=204)
async def delete_contact(reviewer_id: ReviewerId, hub: HubDep, principal: PrincipalDep) -> None:
    require(principal, Role.ADMIN)

    def remove(conn: Connection) -> None:
        gone = conn.execute(
            delete(notify_contacts).where(
                notify_contacts.c.org_id == principal.org_id,
                notify_contacts.c.reviewer_id == reviewer_id,
            )
        )
        if gone.rowcount == 0:
            raise ApiProblem(404, "not_found", f"no contact for {reviewer_id!r}")

    await hub.store.run(remove)


# ---------------------------------------------------------------- the log


def _aware(row: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        k: utc(v) if isinstance(v, datetime) else v
        for k, v in row._mapping.items()
        if k not in leave_out
    }


@router.get("/deliveries")
async def deliveries(
    hub: HubDep,
    principal: PrincipalDep,
    task_id: Annotated[str | None, Query(max_length=64)] = None,
    channel_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Queued notifications (newest first) and their attempts: state, tries, last error.
    Events: ``task.new``, ``task.sla_warning``, ``task.manual_review``, ``task.escalated``."""
    require(principal, Role.ADMIN)
    org = principal.org_id

    def read(conn: Connection) -> dict[str, Any]:
        query = select(notify_outbox).where(notify_outbox.c.org_id == org)
        if task_id is not None:
            query = query.where(notify_outbox.c.task_id == task_id)
        if channel_id is not None:
            query = query.where(notify_outbox.c.channel_id == channel_id)
        rows = conn.execute(
            query.order_by(notify_outbox.c.created_at.desc(), notify_outbox.c.id).limit(limit)
        ).all()
        ids = [r.id for r in rows]
        attempts = conn.execute(
            select(notify_attempts)
            .where(notify_attempts.c.org_id == org, notify_attempts.c.outbox_id.in_(ids))
            .order_by(notify_attempts.c.at.desc())
        ).all()
        return {
            "data": [_aware(r, ("payload", "lease_until")) for r in rows],
            "attempts": [_aware(a) for a in attempts],
            "event_types": list(EVENT_TYPES),
        }

    return await hub.store.run(read, readonly=True)
