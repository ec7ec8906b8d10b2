"""``engine.session(principal)``: the in-process Session, derived from the engine.

Its operations are the engine's (and the ledger's) methods with the principal bound, found
by name and told to mypy by one cast; the signature test is what vouches for that cast.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from handrail import Decision, Engine, Principal, Role, Session
from handrail._in_process import LEDGER_OPS, UNBOUND_OPS, InProcessSession, operations
from handrail.ledger import Ledger, LedgerEscrow
from handrail.store import MemoryStore
from handrail.tokens import DecisionTokens

ADMIN = Principal(
    org_id="acme", id="ada", roles=frozenset({Role.REQUESTER, Role.REVIEWER, Role.ADMIN})
)


def _params(fn: Callable[..., Any], drop: int) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter after the first ``drop``."""
    params = list(inspect.signature(fn).parameters.values())[drop:]
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("name", operations())
def test_each_operation_has_its_target_signature(name: str) -> None:
    """Session.<op> (less ``self``) is the engine's or ledger's <op> (less ``self`` and the
    principal, unless the op takes none): the same names, kinds and defaults."""
    owner: type = Ledger if name in LEDGER_OPS else Engine
    target = getattr(owner, name)
    assert inspect.iscoroutinefunction(target), f"{owner.__name__}.{name} is not async"
    drop = 1 if name in UNBOUND_OPS else 2
    if name not in UNBOUND_OPS:
        first = list(inspect.signature(target).parameters)[1]
        assert first == "principal", f"{owner.__name__}.{name} does not take the principal first"
    assert _params(getattr(Session, name), 1) == _params(target, drop)
    hints = typing.get_type_hints(target)
    hints.pop("principal", None)
    assert typing.get_type_hints(getattr(Session, name)) == hints  # and the types


def test_every_operation_is_derived() -> None:
    names = operations()
    assert len(names) >= 44
    assert {"create", "events", "wait_for_work", "deposit", "redeem_decision_token"} <= set(names)
    assert set(names) >= LEDGER_OPS | UNBOUND_OPS


async def test_the_session_acts_as_its_principal() -> None:
    ledger_store = MemoryStore()
    ledger = Ledger(ledger_store)
    engine = Engine(ledger_store, escrow=LedgerEscrow(ledger), tokens=DecisionTokens(b"k" * 32))
    session = engine.session(ADMIN)
    assert isinstance(session, Session)  # runtime_checkable: every member is there
    assert session.principal_id == "ada"
    assert session.now() <= engine.clock.now()
    task = await session.create({"kind": "review", "action": {"name": "pay", "args": {}}})
    assert task.created_by == "ada"
    assert (await session.get(task.id)).id == task.id
    assert (await session.balance()).org_id == "acme"  # the escrow's ledger, by default

    assert isinstance(session, InProcessSession)
    alice = session.as_reviewer("alice")
    assert alice.principal_id == "alice"
    token, claims = await session.mint_decision_token(task.id, "alice")
    assert claims.reviewer_id == "alice"
    done = await alice.redeem_decision_token(token, Decision.approve())  # no principal bound
    assert done.decision is not None and done.decision.reviewer_id == "alice"
    await engine.aclose()


async def test_without_a_ledger_money_ops_refuse() -> None:
    engine = Engine(MemoryStore())
    session = engine.session(ADMIN)
    with pytest.raises(RuntimeError, match="no ledger"):
        await session.balance()
    with pytest.raises(AttributeError):
        session.no_such_op  # type: ignore[attr-defined]  # noqa: B018


async def test_a_subclass_overrides_an_operation() -> None:
    class Quiet(InProcessSession):
        async def list_groups(self) -> list[Any]:
            return []

    engine = Engine(MemoryStore())
    session = Quiet(engine, ADMIN)
    assert await session.list_groups() == []
