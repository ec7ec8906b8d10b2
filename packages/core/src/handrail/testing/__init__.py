"""Test kits: the store conformance suite, and helpers for testing code that uses Handrail."""

from .conformance import StoreConformance, make_task

__all__ = ["StoreConformance", "make_task"]
