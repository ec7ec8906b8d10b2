"""What every part of the session conformance suite shares: the fixture contract
(:class:`SessionFactory`), the sessions derived from it, the known-drift marker, and the
task specs the cases post."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import pytest

from ..errors import HandrailError
from ..models import TaskEvent
from ..session import Session

__all__ = [
    "ANSWER",
    "RULES",
    "SessionCases",
    "SessionFactory",
    "judgment",
    "next_event",
    "refused",
    "review",
]

E = TypeVar("E", bound=HandrailError)

ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"enum": ["cat", "dog"]}},
    "required": ["label"],
    "additionalProperties": False,
}
EMAIL_ARGS: dict[str, Any] = {
    "type": "object",
    "properties": {"to": {"type": "string"}},
    "required": ["to"],
}
RULES: list[dict[str, Any]] = [
    {"id": "small", "tools": ["refund"], "when": "args.amount <= 100", "outcome": "allow"},
    {"id": "prod", "tools": ["delete_*"], "outcome": "deny", "message": "not here"},
    {"id": "refunds", "tools": ["refund"], "outcome": "ask", "reviewers": ["finance"]},
]


def review(name: str = "send_email", **more: Any) -> dict[str, Any]:
    """A review of a tool call (its task type is the tool's name)."""
    args: dict[str, Any] = more.pop("args", {"to": "a@example.com"})
    action = {"name": name, "args": args}
    if name == "send_email":
        action["args_schema"] = EMAIL_ARGS
    return {"kind": "review", "action": action, **more}


def judgment(**more: Any) -> dict[str, Any]:
    """A judgment task answered by ``{"label": "cat" | "dog"}``."""
    return {
        "kind": "judgment",
        "title": "What is it?",
        "task_type": "label",
        "output_schema": ANSWER,
        **more,
    }


async def refused(kind: type[E], call: Awaitable[Any]) -> E:
    """The error ``call`` raises, which must be a ``kind``."""
    with pytest.raises(kind) as raised:
        await call
    return raised.value


async def next_event(stream: AsyncGenerator[TaskEvent, None], timeout: float = 10) -> TaskEvent:
    return await asyncio.wait_for(anext(stream), timeout)


class SessionFactory(Protocol):
    """What the ``sessions`` fixture gives: sessions of one organisation (``org_id``),
    each bound to one principal, and one of a second organisation.

    - ``requester()``: a requester (role ``requester`` only);
    - ``admin()``: an admin (every role) of the same organisation;
    - ``reviewer(name)``: a reviewer (role ``reviewer`` only) whose principal id is
      ``name``; the same name twice may give the same session;
    - ``outsider()``: an admin of another organisation (tenancy: it sees nothing here).

    Sessions are the fixture's to close after the test.
    """

    @property
    def org_id(self) -> str: ...

    async def requester(self) -> Session: ...
    async def admin(self) -> Session: ...
    async def reviewer(self, name: str) -> Session: ...
    async def outsider(self) -> Session: ...


class SessionCases:
    """The sessions each case takes, from the subclass's ``sessions`` fixture, and the
    ``drift`` marker (see :class:`handrail.testing.SessionConformance`)."""

    drift: ClassVar[Mapping[str, str]] = {}
    """Cases known to fail on this implementation, by test name, with the reason: each is
    run as ``xfail(strict=True)``, so it is reported as soon as it passes."""

    @pytest.fixture(autouse=True)
    def _known_drift(self, request: pytest.FixtureRequest) -> None:
        reason = self.drift.get(request.node.originalname)
        if reason is not None:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))

    @pytest.fixture
    async def requester(self, sessions: SessionFactory) -> Session:
        return await sessions.requester()

    @pytest.fixture
    async def admin(self, sessions: SessionFactory) -> Session:
        return await sessions.admin()

    @pytest.fixture
    async def alice(self, sessions: SessionFactory) -> Session:
        return await sessions.reviewer("alice")

    @pytest.fixture
    async def bob(self, sessions: SessionFactory) -> Session:
        return await sessions.reviewer("bob")

    @pytest.fixture
    async def outsider(self, sessions: SessionFactory) -> Session:
        return await sessions.outsider()
