"""``engine.session(principal)``: the :class:`~handrail.session.Session` of the engine in
this process, derived rather than written out.

Every ``Session`` operation is the engine's (or, for money, the ledger's) method of the
same name with the principal bound first, so this module lists no operation by hand: the
table is built from the protocol itself. What the protocol cannot say by name is said
here once:

- the ledger's operations (:data:`LEDGER_OPS`) go to the :class:`~handrail.ledger.Ledger`,
  and raise ``RuntimeError`` when the session has none;
- :data:`UNBOUND_OPS` take no principal: redeeming a decision token acts as the reviewer
  the token names, whoever holds the session.

``tests/core/test_in_process_session.py`` compares each operation's signature with its
target's (less the principal), so the protocol and the engine cannot drift apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .models import Principal, Role
from .session import Session

if TYPE_CHECKING:  # the engine imports this module lazily: no cycle at run time
    from .engine import Engine
    from .ledger import Ledger

__all__ = ["LEDGER_OPS", "UNBOUND_OPS", "InProcessSession", "operations", "target_of"]

Operation = Callable[..., Awaitable[Any]]

LEDGER_OPS: frozenset[str] = frozenset(
    {"deposit", "balance", "earnings", "entries", "request_payout", "payouts"}
)
"""The operations the ledger carries out, not the engine."""

UNBOUND_OPS: frozenset[str] = frozenset({"redeem_decision_token"})
"""The operations whose credential is an argument, not the session's principal."""


def operations() -> tuple[str, ...]:
    """Every operation of :class:`Session` (its async methods), in declaration order."""
    return tuple(n for n, v in vars(Session).items() if inspect.iscoroutinefunction(v))


_OPERATIONS: frozenset[str] = frozenset(operations())


def target_of(name: str, engine: Engine, ledger: Ledger | None) -> Operation | None:
    """The unbound-by-principal method ``name`` stands for (None: a ledger op, no ledger)."""
    if name in LEDGER_OPS:
        return None if ledger is None else cast("Operation", getattr(ledger, name))
    return cast("Operation", getattr(engine, name))


def _no_ledger(name: str) -> Operation:
    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"this session has no ledger: build it with one to {name}")

    return refuse


class InProcessSession:
    """``engine`` (and ``ledger``) acting as ``principal``; see the module docstring.

    Build it with :meth:`Engine.session <handrail.engine.Engine.session>`. An operation is
    bound on first use (``__getattr__``), so a subclass may override any of them with an
    ordinary method (tests stage races that way)."""

    def __init__(self, engine: Engine, principal: Principal, ledger: Ledger | None = None) -> None:
        self.engine = engine
        self.principal = principal
        self.ledger = ledger

    def __getattr__(self, name: str) -> Operation:
        # Only reached when ordinary lookup fails: an operation not used yet on this
        # session (bound now and kept, so a request pays only for the operations it
        # calls), or a real AttributeError.
        if name not in _OPERATIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        found = self.__dict__
        target = target_of(name, found["engine"], found["ledger"])
        op: Operation
        if target is None:
            op = _no_ledger(name)
        elif name in UNBOUND_OPS:
            op = target
        else:
            op = functools.partial(target, found["principal"])
        found[name] = op
        return op

    def __repr__(self) -> str:
        who = self.principal
        return f"{type(self).__name__}(principal={who.id!r}, org={who.org_id!r})"

    @property
    def principal_id(self) -> str:
        return self.principal.id

    def now(self) -> datetime:
        return self.engine.clock.now()

    def as_reviewer(self, reviewer_id: str) -> Session:
        """The same engine and ledger acting as reviewer ``reviewer_id`` of this
        organisation (in sandbox mode if this session is)."""
        reviewer = Principal(
            org_id=self.principal.org_id,
            id=reviewer_id,
            roles=frozenset({Role.REVIEWER}),
            sandbox=self.principal.sandbox,
        )
        return InProcessSession(self.engine, reviewer, self.ledger).session()

    def session(self) -> Session:
        """This object as the :class:`Session` it is (its operations are bound on use, so
        mypy is told once here; the signature test vouches for it)."""
        return cast("Session", self)
