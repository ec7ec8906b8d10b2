"""The base of every Handrail model: frozen, strict about unknown fields, JSON-safe; and the
two fast paths the hot paths use instead of pydantic's copying and validating:
:func:`detached` (a copy nobody can change the original through, sharing what cannot
change) and :func:`assembled` (a model made from values that are already valid)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Self, TypeVar, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

__all__ = ["assembled", "detached"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class _Model(BaseModel):
    # allow_inf_nan: NaN and infinities are not JSON; no task, decision or answer holds one
    model_config = ConfigDict(
        frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False
    )

    def __copy__(self) -> Self:
        """A shallow copy, as pydantic's, without ``copy.copy``'s dispatch for each part."""
        return self._copied(None)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's (``update`` is not validated), faster: the engine makes every new
        version of a task with it."""
        if deep or self.__pydantic_extra__ is not None:
            return super().model_copy(update=update, deep=deep)
        return self._copied(update)

    def _copied(self, update: Mapping[str, Any] | None) -> Self:
        fields = self.__dict__.copy()
        fields_set = set(self.__pydantic_fields_set__)
        if update:
            fields.update(update)
            fields_set.update(update)
        extra = self.__pydantic_extra__
        private = getattr(self, "__pydantic_private__", None)
        if private is not None:
            private = {k: v for k, v in private.items() if v is not PydanticUndefined}
        return _made(
            type(self), fields, fields_set, None if extra is None else dict(extra), private
        )


# ---------------------------------------------------------------- detached copies

_IMMUTABLE: set[type] = {
    str,
    int,
    float,
    bool,
    type(None),
    bytes,
    datetime,
    date,
    time,
    timedelta,
    Decimal,
}
"""Types whose values nobody can change: shared, never copied (enum types join on sight)."""

_SEALED: tuple[str, ...] = ()
"""A model class's plan when nothing in its instances can change: share them as they are."""
_PLANS: dict[type, tuple[str, ...] | None] = {}
"""Per model class: the names of the fields that may hold something mutable (``_SEALED``,
empty, when none may), or None when the class is not one whose instances are immutable
once made (not frozen, extra fields allowed, private attributes): deep-copied."""


def _sealed_type(annotation: Any, seen: frozenset[type]) -> bool:
    """Whether every value of ``annotation`` is immutable, going by the type alone (a
    frozen model's fields are, when theirs are; a tuple's, when its items' are)."""
    if annotation in _IMMUTABLE or annotation is None or annotation is Ellipsis:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return True
    if origin is Annotated:
        return _sealed_type(get_args(annotation)[0], seen)
    if origin in (Union, UnionType, tuple, frozenset):
        return all(_sealed_type(a, seen) for a in get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return True
        if annotation not in seen and issubclass(annotation, BaseModel):
            return _plan(annotation, seen | {annotation}) == _SEALED
    return False  # dict, list, JsonValue, Any, a type it does not know


def _plan(kind: type, seen: frozenset[type] = frozenset()) -> tuple[str, ...] | None:
    if kind in _PLANS:
        return _PLANS[kind]
    plan: tuple[str, ...] | None = None
    config = getattr(kind, "model_config", {})
    if (
        issubclass(kind, BaseModel)
        and config.get("frozen")
        and config.get("extra") != "allow"
        and not kind.__private_attributes__
    ):
        plan = tuple(
            name
            for name, field in kind.model_fields.items()
            if not _sealed_type(field.annotation, seen | {kind})
        )
    if not seen:  # a plan made while a model it holds was being planned may be too careful
        _PLANS[kind] = plan
    return plan


def detached(value: T) -> T:
    """``value`` with nothing in it through which anyone could change ``value``: what
    ``copy.deepcopy`` promises, without copying what cannot change (see ``_detach``)."""
    return cast(T, _detach(value))


def _detach(value: Any) -> Any:
    """What :func:`detached` makes of ``value``.

    JSON containers (dicts, lists) are copied all the way down; immutable values are
    shared, and so is a frozen model whose fields cannot change by their types (a
    ``ReviewPolicy``, ``Money``); another frozen model (a ``Task``) is rebuilt, sharing its
    other fields, only when something inside it had to be copied. Anything else is
    deep-copied. It relies on a model's values having their declared types (as validation
    and the engine's typed ``model_copy`` updates keep them)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {k: v if type(v) in _IMMUTABLE else _detach(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _IMMUTABLE else _detach(v) for v in value]
    if kind is tuple:
        if all(type(v) in _IMMUTABLE for v in value):
            return value
        items = tuple(_detach(v) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    plan = _PLANS[kind] if kind in _PLANS else _plan(kind)
    if plan is not None:
        fields = value.__dict__
        changed: dict[str, Any] = {}
        for name in plan:
            v = fields[name]
            if type(v) not in _IMMUTABLE:
                mine = _detach(v)
                if mine is not v:
                    changed[name] = mine
        if not changed:
            return value
        return _made(kind, fields | changed, set(value.__pydantic_fields_set__))
    if isinstance(value, Enum) and kind.__hash__ is not None:
        _IMMUTABLE.add(kind)  # enum members are singletons
        return value
    return copy.deepcopy(value)


def _made(
    kind: type[M],
    fields: dict[str, Any],
    fields_set: set[str],
    extra: dict[str, Any] | None = None,
    private: dict[str, Any] | None = None,
) -> M:
    """An instance of ``kind`` holding ``fields``, as pydantic's own ``__copy__`` and
    ``model_construct`` make one."""
    made = kind.__new__(kind)
    object.__setattr__(made, "__dict__", fields)
    object.__setattr__(made, "__pydantic_fields_set__", fields_set)
    object.__setattr__(made, "__pydantic_extra__", extra)
    object.__setattr__(made, "__pydantic_private__", private)
    return made


# ---------------------------------------------------------------- assembled models

_REQUIRED = object()
_LAYOUTS: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}
"""Per model class: every field in order with its default (``_REQUIRED`` when there is
none, or a factory makes a fresh one), and the names that must be given."""


def _layout(kind: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    found = _LAYOUTS.get(kind)
    if found is None:
        if _plan(kind) is None:
            raise TypeError(f"{kind.__name__} cannot be assembled")
        defaults = {
            name: _REQUIRED
            if field.default_factory is not None or field.default is PydanticUndefined
            else field.default
            for name, field in kind.model_fields.items()
        }
        required = frozenset(n for n, d in defaults.items() if d is _REQUIRED)
        found = _LAYOUTS[kind] = (defaults, required)
    return found


def assembled(kind: type[M], values: dict[str, Any]) -> M:
    """What ``kind.model_validate(values)`` makes, without validating: for values that are
    already valid (taken from a validated model, or computed by the engine), of exactly
    their fields' types. Unset fields take their (immutable) defaults; a field with a
    default factory must be given. Model validators are not run: the caller answers for
    what they check (tests compare against ``model_validate``)."""
    defaults, required = _layout(kind)
    fields = defaults | values  # in the fields' order, as validation makes them
    if len(fields) != len(defaults):
        raise TypeError(f"{kind.__name__} has no field {sorted(fields.keys() - defaults.keys())}")
    if not required <= values.keys():
        raise TypeError(f"{kind.__name__}.{sorted(required - values.keys())[0]} must be given")
    return _made(kind, fields, set(values))
