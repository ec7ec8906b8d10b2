"""Stores: where tasks and their history live.

:class:`Store` is the seam: :class:`MemoryStore` is the reference implementation and
``handrail.store.sql.SqlStore`` (the ``sql`` extra) keeps the same contract on SQLite and
PostgreSQL. ``handrail.testing.StoreConformance`` is the contract, as tests.
"""

from ._protocol import Change, PolicyContext, Store, TaskQuery, Transaction
from .memory import MemoryStore

__all__ = ["Change", "MemoryStore", "PolicyContext", "Store", "TaskQuery", "Transaction"]
