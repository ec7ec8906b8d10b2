"""FastAPI dependencies: the hub, the calling principal, and the server modules a route
calls (each built from the hub, per request: they hold no state of their own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from handrail import Principal, Session

from .hub import Hub
from .keys import ApiKeys
from .notifications import ChannelSettings, Contacts
from .uploads import Uploads
from .webhooks import WebhookEndpoints

__all__ = [
    "ChannelsDep",
    "ContactsDep",
    "EndpointsDep",
    "HubDep",
    "KeysDep",
    "PrincipalDep",
    "SessionDep",
    "UploadsDep",
]


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# Every dependency is a coroutine function: FastAPI runs a plain function in a worker
# thread, a hop that costs more than any of these does.
async def _hub(request: Request) -> Hub:
    return hub_of(request)


async def _principal(request: Request) -> Principal:
    return await hub_of(request).auth.principal(request)


HubDep = Annotated[Hub, Depends(_hub)]
PrincipalDep = Annotated[Principal, Depends(_principal)]


async def _session(hub: HubDep, principal: PrincipalDep) -> Session:
    return hub.engine.session(principal, hub.ledger)


SessionDep = Annotated[Session, Depends(_session)]
"""The engine acting as the request's principal: what a route calls."""


async def _keys(hub: HubDep) -> ApiKeys:
    return ApiKeys(hub.store, hub.clock, hub.auth.forget)


async def _endpoints(hub: HubDep) -> WebhookEndpoints:
    return WebhookEndpoints(
        hub.store,
        hub.clock,
        allow_private=hub.settings.allow_private_webhooks,
        poke=hub.delivery.poke,
    )


async def _channels(hub: HubDep) -> ChannelSettings:
    return ChannelSettings(
        hub.store,
        hub.clock,
        smtp=hub.settings.smtp_host is not None,
        allow_private=hub.settings.allow_private_webhooks,
    )


async def _contacts(hub: HubDep) -> Contacts:
    return Contacts(hub.store, hub.clock)


async def _uploads(hub: HubDep) -> Uploads:
    return Uploads(hub.store, hub.blobs, hub.clock)


KeysDep = Annotated[ApiKeys, Depends(_keys)]
EndpointsDep = Annotated[WebhookEndpoints, Depends(_endpoints)]
ChannelsDep = Annotated[ChannelSettings, Depends(_channels)]
ContactsDep = Annotated[Contacts, Depends(_contacts)]
UploadsDep = Annotated[Uploads, Depends(_uploads)]
