"""The Handrail client: one object for agents and reviewers, sync and async, in-process
(``Handrail.local``) or over HTTP (``Handrail(url, api_key)``), over one
:class:`~handrail.session.Session` either way (``engine.session()`` or :class:`HttpSession`).
"""

from ._events import AsyncEventStream, EventStream
from ._facades import AuditOps, LedgerOps, PolicyOps, Tasks, WorkerOps
from ._handrail import Handrail
from ._http import RetryPolicy
from ._http_session import HttpSession
from ._review import OnTimeout, decision_of

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
