"""The Handrail client: one object for agents and reviewers, sync and async, in-process
(``Handrail.local``) or over HTTP (``Handrail(url, api_key)``), over one
:class:`~handrail.session.Session` either way (``engine.session()`` or :class:`HttpSession`).
"""

from typing import TYPE_CHECKING, Any

from ._events import AsyncEventStream, EventStream
from ._facades import AuditOps, LedgerOps, PolicyOps, Tasks, WorkerOps
from ._handrail import Handrail
from ._retry_policy import RetryPolicy
from ._review import OnTimeout, decision_of

if TYPE_CHECKING:
    from ._http_session import HttpSession

__all__ = [
    "AsyncEventStream",
    "AuditOps",
    "EventStream",
    "Handrail",
    "HttpSession",
    "LedgerOps",
    "OnTimeout",
    "PolicyOps",
    "RetryPolicy",
    "Tasks",
    "WorkerOps",
    "decision_of",
]


def __getattr__(name: str) -> Any:
    # ``HttpSession`` brings the HTTP stack (httpx, which loads click, rich and pygments):
    # imported when first asked for, so ``import handrail`` stays light
    if name == "HttpSession":
        from ._http_session import HttpSession  # noqa: PLC0415

        return HttpSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
