"""The store contract, as tests every ``Store`` implementation must pass.

Subclass :class:`StoreConformance` in a test module and provide two async fixtures:
``store`` (a fresh, empty store) and ``store_factory`` (a callable opening another handle
on the *same* database, for races between connections; for an in-process store it may
return the same object)::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self): ...
        @pytest.fixture
        def store_factory(self, store): ...

The suite needs pytest and pytest-asyncio (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

try:
    import pytest
except ImportError as _missing:  # pragma: no cover
    raise ImportError("handrail.testing needs pytest") from _missing

from ..clock import ManualClock
from ..engine import Engine
from ..store import Store
from ._conformance_audit import AuditContract
from ._conformance_engine import EngineContract
from ._conformance_governance import GovernanceContract
from ._conformance_ledger import LedgerContract

# re-exported: the kit's principals and builders, for suites built beside this one
from ._conformance_support import ADMIN as ADMIN
from ._conformance_support import AGENT as AGENT
from ._conformance_support import ALICE as ALICE
from ._conformance_support import BOB as BOB
from ._conformance_support import OUTSIDER as OUTSIDER
from ._conformance_support import SCHEMA as SCHEMA
from ._conformance_support import USD as USD
from ._conformance_support import StoreFactory as StoreFactory
from ._conformance_support import make_task as make_task
from ._conformance_tasks import TaskContract
from ._conformance_workers import WorkerContract

__all__ = ["StoreConformance", "make_task"]


class StoreConformance(
    TaskContract,
    EngineContract,
    LedgerContract,
    WorkerContract,
    GovernanceContract,
    AuditContract,
):
    """Every store passes these. See the module docstring for the fixtures to provide."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def engine(self, store: Store, clock: ManualClock) -> Engine:
        return Engine(store, clock=clock)
