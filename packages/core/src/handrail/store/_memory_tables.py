"""The memory store's building blocks: a table of versioned records, a transaction's staged
writes to one, and the copy and key helpers every part of the store uses."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from .._model_base import detached
from ..errors import ConcurrencyConflict
from ..models import Task


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


R = TypeVar("R", bound=_Versioned)


class _Table(Generic[R]):
    """Committed records by key, with optimistic versions (the store's lock guards it). A
    staged ``None`` deletes the record stored at the expected version."""

    def __init__(self, name: str, unique: Callable[[R], Hashable] | None = None) -> None:
        self.name = name
        self.rows: dict[str, R] = {}
        self._unique = unique
        self._by_unique: dict[Hashable, str] = {}

    def by_unique(self, value: Hashable) -> R | None:
        key = self._by_unique.get(value)
        return self.rows.get(key) if key is not None else None

    def check(self, key: str, record: R | None, expected: int | None) -> None:
        current = self.rows.get(key)
        if record is None:
            if current is None or current.version != expected:
                raise ConcurrencyConflict(self.name, key)
            return
        if expected is None:
            clash = self._unique is not None and self._unique(record) in self._by_unique
            if current is not None or clash:
                raise ConcurrencyConflict(self.name, key)
        elif current is None or current.version != expected:
            raise ConcurrencyConflict(self.name, key)

    def apply(self, key: str, record: R | None) -> None:
        if record is None:
            gone = self.rows.pop(key, None)
            if gone is not None and self._unique is not None:
                self._by_unique.pop(self._unique(gone), None)
            return
        self.rows[key] = record
        if self._unique is not None:
            self._by_unique[self._unique(record)] = key


class _Staged(Generic[R]):
    """A transaction's pending writes to one ``_Table``."""

    def __init__(self, table: _Table[R]) -> None:
        self.table = table
        self.writes: dict[str, tuple[R | None, int | None]] = {}

    def get(self, key: str, committed: R | None) -> R | None:
        return self.writes[key][0] if key in self.writes else committed

    def delete(self, key: str, expected: int) -> None:
        staged = self.writes.get(key)
        if staged is not None:
            previous, first_expected = staged
            if previous is None or previous.version != expected:
                raise ConcurrencyConflict(self.table.name, key)
            if first_expected is None:  # inserted in this transaction: never happened
                del self.writes[key]
            else:
                self.writes[key] = (None, first_expected)
            return
        self.table.check(key, None, expected)
        self.writes[key] = (None, expected)

    def put(self, key: str, record: R, expected: int | None) -> None:
        if expected is not None and record.version != expected + 1:
            raise ValueError(f"a {self.table.name}'s version must go up by one per update")
        staged = self.writes.get(key)
        if staged is not None:  # written earlier in this transaction: chain onto that
            previous, first_expected = staged
            if previous is None:  # deleted earlier: an insert starts afresh
                if expected is not None:
                    raise ConcurrencyConflict(self.table.name, key)
                self.writes[key] = (record, first_expected)
                return
            if expected is None or previous.version != expected:
                raise ConcurrencyConflict(self.table.name, key)
            self.writes[key] = (record, first_expected)
            return
        self.table.check(key, record, expected)
        self.writes[key] = (record, expected)

    def records(self) -> list[R]:
        """Committed records overlaid with this transaction's writes."""
        if not self.writes:
            return list(self.table.rows.values())
        merged: dict[str, R | None] = dict(self.table.rows)
        merged.update((k, r) for k, (r, _) in self.writes.items())
        return [r for r in merged.values() if r is not None]

    def check(self) -> None:
        for key, (record, expected) in self.writes.items():
            self.table.check(key, record, expected)

    def apply(self) -> None:
        for key, (record, _) in self.writes.items():
            self.table.apply(key, record)


def _copy(task: Task) -> Task:
    """A task the store can keep or hand out: no caller can change stored state through it
    (only its mutable JSON is copied: see ``detached``)."""
    return detached(task)


def _key(*parts: str) -> str:
    return "\x00".join(parts)
