"""Test kits: the store and session conformance suites, and helpers for testing code that
uses Handrail."""

from .conformance import StoreConformance, make_task
from .session_conformance import SessionConformance, SessionFactory

__all__ = ["SessionConformance", "SessionFactory", "StoreConformance", "make_task"]
