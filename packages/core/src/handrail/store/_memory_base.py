"""What a memory transaction holds: its buffered writes, one field per concept, which the
concept mixins (``_memory_tasks``, ``_memory_ledger``, ...) read and ``commit`` applies."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from ..audit import AuditRecord
from ..ledger._accounts import Account
from ..ledger._model import Posting
from ..models import Task, TaskEvent
from ..policy import Policy
from ..workers import AnswerSample
from ._memory_tables import _Staged

if TYPE_CHECKING:
    from .memory import MemoryStore


class _TransactionBase:
    """The state of one memory transaction; the concept mixins share it."""

    def __init__(self, store: MemoryStore, *, readonly: bool) -> None:
        self._store = store
        self._readonly = readonly
        self._inserts: dict[str, Task] = {}
        self._updates: dict[str, tuple[Task, int]] = {}
        self._events: list[TaskEvent] = []
        self._postings: list[Posting] = []
        self._deltas: dict[str, int] = defaultdict(int)
        self._accounts: dict[str, Account] = {}
        self._holds = _Staged(store._holds)
        self._settlements = _Staged(store._settlements)
        self._payouts = _Staged(store._payouts)
        self._workers = _Staged(store._workers)
        self._stats = _Staged(store._stats)
        self._samples: list[AnswerSample] = []
        self._policies: list[Policy] = []
        self._policy_orgs: list[str] = []
        self._groups = _Staged(store._groups)
        self._standing = _Staged(store._standing)
        self._tokens: dict[str, tuple[str, str, datetime]] = {}
        self._audit: list[AuditRecord] = []

    def _pending(self, task_id: str) -> Task | None:
        if task_id in self._updates:
            return self._updates[task_id][0]
        return self._inserts.get(task_id)

    def _writable(self) -> None:
        if self._readonly:
            raise RuntimeError("write in a read-only transaction")
