"""The Handrail client: one object for agents and reviewers, sync and async."""

from ._backend import Backend, LocalBackend
from ._handrail import Handrail, LedgerOps, OnTimeout, Tasks, decision_of

__all__ = [
    "Backend",
    "Handrail",
    "LedgerOps",
    "LocalBackend",
    "OnTimeout",
    "Tasks",
    "decision_of",
]
