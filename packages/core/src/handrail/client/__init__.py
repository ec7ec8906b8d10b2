"""The Handrail client: one object for agents and reviewers, sync and async."""

from ._backend import Backend, LocalBackend
from ._handrail import Handrail, OnTimeout, Tasks, decision_of

__all__ = ["Backend", "Handrail", "LocalBackend", "OnTimeout", "Tasks", "decision_of"]
