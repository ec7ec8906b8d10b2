"""The Handrail client: one object for agents and reviewers, sync and async, in-process
(``Handrail.local``) or over HTTP (``Handrail(url, api_key)``)."""

from ._backend import Backend, LocalBackend
from ._events import AsyncEventStream, EventStream
from ._handrail import AuditOps, Handrail, LedgerOps, OnTimeout, PolicyOps, Tasks, decision_of
from ._http import HttpBackend, RetryPolicy

__all__ = [
    "AsyncEventStream",
    "AuditOps",
    "Backend",
    "EventStream",
    "Handrail",
    "HttpBackend",
    "LedgerOps",
    "LocalBackend",
    "OnTimeout",
    "PolicyOps",
    "RetryPolicy",
    "Tasks",
    "decision_of",
]
