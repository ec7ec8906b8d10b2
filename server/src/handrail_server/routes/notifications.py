"""Notification settings of an organisation (admins): channels (email, Slack), reviewers'
contacts, and the log of what was sent."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from handrail import Role

from ..auth import require
from ..deps import ChannelsDep, ContactsDep, HubDep, PrincipalDep
from ..notifications import (
    EVENT_TYPES,
    ChannelSetting,
    SlackUserTaken,
    notification_log,
)
from ..problems import ApiProblem

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


def _channel_out(channel: ChannelSetting, base: str) -> dict[str, Any]:
    interactions = f"{base}/integrations/slack/{channel.id}/interactions"
    return {
        "id": channel.id,
        "kind": channel.kind,
        "name": channel.name,
        "events": channel.events,
        "enabled": channel.enabled,
        "webhook_url": masked(channel.webhook_url),
        "has_signing_secret": channel.signing_secret is not None,
        "interactions_url": interactions if channel.kind == "slack" else None,
        "created_at": channel.created_at,
        "updated_at": channel.updated_at,
    }


@router.post("/channels", status_code=201, response_model=ChannelOut)
async def create_channel(
    body: ChannelIn, hub: HubDep, channels: ChannelsDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A channel. Email goes through the server's SMTP relay to each reviewer's address;
    Slack posts to an incoming webhook (``webhook_url``, shown back masked) and, with the
    app's ``signing_secret``, takes Approve / Reject clicks at ``interactions_url``."""
    require(principal, Role.ADMIN)
    made = await channels.create(
        principal.org_id,
        body.kind,
        body.name,
        body.events,
        enabled=body.enabled,
        webhook_url=body.webhook_url,
        signing_secret=body.signing_secret,
    )
    return _channel_out(made, hub.settings.base_url)


@router.get("/channels", response_model=list[ChannelOut])
async def list_channels(
    hub: HubDep, channels: ChannelsDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    found = await channels.list(principal.org_id)
    return [_channel_out(c, hub.settings.base_url) for c in found]


@router.get("/channels/{channel_id}", response_model=ChannelOut)
async def get_channel(
    channel_id: ChannelId, hub: HubDep, channels: ChannelsDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    return _channel_out(await channels.get(principal.org_id, channel_id), hub.settings.base_url)


@router.patch("/channels/{channel_id}", response_model=ChannelOut)
async def update_channel(
    channel_id: ChannelId,
    body: ChannelPatch,
    hub: HubDep,
    channels: ChannelsDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    require(principal, Role.ADMIN)
    changes = body.model_dump(exclude_none=True)
    changed = await channels.update(principal.org_id, channel_id, **changes)
    return _channel_out(changed, hub.settings.base_url)


@router.delete("/channels/{channel_id}", status_code=204)
async def delete_channel(
    channel_id: ChannelId, channels: ChannelsDep, principal: PrincipalDep
) -> None:
    """Stop a channel: disabled, its secrets forgotten, its log kept."""
    require(principal, Role.ADMIN)
    await channels.disable(principal.org_id, channel_id)


# ---------------------------------------------------------------- contacts


@router.put("/contacts/{reviewer_id}", response_model=ContactOut)
async def put_contact(
    reviewer_id: ReviewerId, body: ContactIn, contacts: ContactsDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Where a reviewer (a principal id) hears of work: an email address, a Slack user id
    (``U…``; a click in Slack from that user decides as this reviewer, if the policy allows
    them)."""
    require(principal, Role.ADMIN)
    try:
        contact = await contacts.put(
            principal.org_id, reviewer_id, email=body.email, slack_user_id=body.slack_user_id
        )
    except SlackUserTaken as exc:
        raise ApiProblem(409, "conflict", str(exc)) from None
    return asdict(contact)


@router.get("/contacts", response_model=list[ContactOut])
async def list_contacts(contacts: ContactsDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    require(principal, Role.ADMIN)
    return [asdict(c) for c in await contacts.list(principal.org_id)]


@router.delete("/contacts/{reviewer_id}", status_code=204)
async def delete_contact(
    reviewer_id: ReviewerId, contacts: ContactsDep, principal: PrincipalDep
) -> None:
    require(principal, Role.ADMIN)
    await contacts.delete(principal.org_id, reviewer_id)


# ---------------------------------------------------------------- the log


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
    log = await notification_log(
        hub.store, principal.org_id, limit, task_id=task_id, channel_id=channel_id
    )
    return {
        "data": log.notifications,
        "attempts": log.attempts,
        "event_types": list(EVENT_TYPES),
    }
