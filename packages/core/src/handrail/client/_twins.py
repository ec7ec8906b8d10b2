"""The client's sync and async methods, derived from the :class:`Session` operations.

A facade (``hr.tasks``, ``hr.ledger``...) declares each method once, naming the operation
it stands for::

    class PolicyOps(Facade):
        get = synced(Session.get_policy)    # hr.policy.get() -> Policy, blocking
        aget = asynced(Session.get_policy)  # await hr.policy.aget()

Both descriptors are generic in the operation's parameters (``ParamSpec``), so mypy checks
every call of ``hr.policy.get(...)`` against ``Session.get_policy`` itself. At run time the
operation is looked up by name on the facade's session (``engine.session()`` or the HTTP
client, or a subclass of either) and run on the client's portal loop: the sync method
blocks on it, the async one awaits it from whatever loop it runs on.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from ..session import Session
from ._portal import Portal

__all__ = ["Facade", "asynced", "synced"]

P = ParamSpec("P")
R = TypeVar("R")


class Facade:
    """A group of client methods over one session, run on one portal."""

    def __init__(self, session: Session, portal: Portal) -> None:
        self._session = session
        self._portal = portal


async def _run(op: Callable[..., Awaitable[R]], args: tuple[Any, ...], kw: Mapping[str, Any]) -> R:
    return await op(*args, **kw)


class _Twin(Generic[P, R]):
    """What :class:`synced` and :class:`asynced` share: the operation, its name and doc."""

    def __init__(
        self, op: Callable[Concatenate[Session, P], Awaitable[R]], doc: str | None = None
    ) -> None:
        self.op_name: str = op.__name__
        self.__doc__ = doc or op.__doc__
        self._name = self.op_name

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def _bound(self, facade: Facade) -> Callable[..., Awaitable[R]]:
        return getattr(facade._session, self.op_name)  # type: ignore[no-any-return]

    def _named(self, method: Callable[..., Any], facade: Facade) -> None:
        """Name ``method`` after this attribute and cache it on ``facade`` (a non-data
        descriptor: the next lookup finds the instance's attribute first)."""
        method.__name__ = self._name
        method.__qualname__ = f"{type(facade).__name__}.{self._name}"
        method.__doc__ = self.__doc__ or method.__doc__
        facade.__dict__[self._name] = method


class synced(_Twin[P, R]):
    """``name = synced(Session.op)``: a blocking method running ``session.op`` on the
    portal."""

    @overload
    def __get__(self, facade: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, facade: Facade, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(self, facade: Facade | None, owner: type[Any] | None = None) -> Any:
        if facade is None:
            return self
        portal, op = facade._portal, self._bound(facade)

        @functools.wraps(op)
        def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return portal.call(_run(op, args, kwargs))

        self._named(method, facade)
        return method


class asynced(_Twin[P, R]):
    """``aname = asynced(Session.op)``: a coroutine method awaiting ``session.op`` on the
    portal, from any loop."""

    @overload
    def __get__(self, facade: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, facade: Facade, owner: type[Any] | None = None
    ) -> Callable[P, Awaitable[R]]: ...
    def __get__(self, facade: Facade | None, owner: type[Any] | None = None) -> Any:
        if facade is None:
            return self
        portal, op = facade._portal, self._bound(facade)

        @functools.wraps(op)
        async def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return await portal.acall(_run(op, args, kwargs))

        self._named(method, facade)
        return method
