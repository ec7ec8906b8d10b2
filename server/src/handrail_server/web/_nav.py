"""The navigation bar: each page module registers its entry, with the roles it is for."""

from __future__ import annotations

from dataclasses import dataclass

from handrail import Principal, Role

__all__ = ["NavItem", "add_nav", "nav_for"]


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[Role]
    order: int


_ITEMS: list[NavItem] = []


def add_nav(label: str, path: str, *roles: Role, order: int = 50) -> None:
    """Show ``label`` linking to ``path`` to principals with any of ``roles`` (admins see
    every entry). Call it once, at import of the page's module."""
    item = NavItem(label, path, frozenset(roles), order)
    if item not in _ITEMS:
        _ITEMS.append(item)
        _ITEMS.sort(key=lambda i: (i.order, i.label))


def nav_for(principal: Principal) -> list[NavItem]:
    """The entries ``principal`` may follow, in order."""
    return [i for i in _ITEMS if any(principal.has(role) for role in i.roles)]
