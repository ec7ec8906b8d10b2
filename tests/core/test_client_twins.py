"""The client's sync and async methods are derived from the Session's operations
(``handrail.client._twins``): one line per method, each naming its operation."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from handrail import Handrail, Session
from handrail._in_process import operations
from handrail.client import AuditOps, LedgerOps, PolicyOps, Tasks, WorkerOps
from handrail.client._twins import asynced, synced

FACADES = (Tasks, LedgerOps, PolicyOps, WorkerOps, AuditOps)
WRITTEN_OUT = {"create", "events", "explain_policy"}
"""Operations whose client methods add behaviour of their own (fields as keywords, a
stream, an action by name), so they are written out, not derived."""


def _twins() -> Iterator[tuple[type, str, synced[..., object] | asynced[..., object]]]:
    for facade in FACADES:
        for name, value in vars(facade).items():
            if isinstance(value, synced | asynced):
                yield facade, name, value


def test_each_derived_method_names_an_operation_and_has_its_twin() -> None:
    found = list(_twins())
    assert len(found) >= 80
    kinds: dict[tuple[type, str], set[type]] = {}
    for facade, _, twin in found:
        assert twin.op_name in operations()
        kinds.setdefault((facade, twin.op_name), set()).add(type(twin))
    assert all(both == {synced, asynced} for both in kinds.values()), kinds


def test_every_operation_reaches_the_client() -> None:
    derived = {twin.op_name for _, _, twin in _twins()}
    assert derived | WRITTEN_OUT == set(operations())


@pytest.fixture(scope="module")
def hr() -> Iterator[Handrail]:
    with Handrail.local(sweep_interval=None) as client:
        yield client


def test_a_derived_method_reads_as_its_operation(hr: Handrail) -> None:
    for facade, name, twin in _twins():
        owner = {Tasks: hr.tasks, LedgerOps: hr.ledger, PolicyOps: hr.policy}.get(facade)
        owner = owner or {WorkerOps: hr.workers, AuditOps: hr.audit}[facade]
        method = getattr(owner, name)
        assert method.__name__ == name
        assert getattr(owner, name) is method  # made once, then cached on the facade
        want = inspect.signature(getattr(Session, twin.op_name))
        got = inspect.signature(method)
        assert list(got.parameters) == list(want.parameters)[1:]  # less self
        assert inspect.iscoroutinefunction(method) is isinstance(twin, asynced)
    assert hr.policy.get.__doc__ and "policy" in hr.policy.get.__doc__
    assert isinstance(vars(PolicyOps)["get"], synced)  # the class keeps the descriptor


async def test_sync_and_async_twins_run_the_same_operation(hr: Handrail) -> None:
    hr.policy.put_group("leads", ["alice"])
    assert [g.name for g in await hr.policy.agroups()] == ["leads"]
    assert [g.name for g in hr.policy.groups()] == ["leads"]
    await hr.policy.adelete_group("leads")
    assert hr.policy.groups() == []
    hr.workers.put({"id": "alice", "skills": ["triage"]})
    assert (await hr.workers.aget("alice")).skills == frozenset({"triage"})
    assert [w.id for w in hr.workers.list()] == ["alice"]


def test_the_http_session_has_every_operation_with_its_signature() -> None:
    from handrail.client import HttpSession  # noqa: PLC0415

    for name in operations():
        want = inspect.signature(getattr(Session, name))
        got = inspect.signature(getattr(HttpSession, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in want.parameters.values()
        ], name
