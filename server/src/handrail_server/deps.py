"""FastAPI dependencies: the hub, and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from handrail import Principal

from .hub import Hub

__all__ = ["HubDep", "PrincipalDep"]


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _principal(request: Request) -> Principal:
    return await _hub(request).auth.principal(request)


HubDep = Annotated[Hub, Depends(_hub)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
