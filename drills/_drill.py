"""What a drill reports: the checks it made, and how they are printed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Say = Callable[[str], None]
STARTUP = 120.0  # seconds a server process may take to start (a busy machine is slow)


@dataclass(frozen=True)
class Check:
    """One thing a drill checked: what, whether it held, and the figures behind it."""

    what: str
    ok: bool
    detail: str = ""


def check(what: str, ok: bool, detail: str = "") -> Check:
    return Check(what, bool(ok), detail)


def nothing_lost(checks: Sequence[Check]) -> list[Check]:
    """``checks`` followed by the drill's verdict: nothing lost, if every one held."""
    failed = [c.what for c in checks if not c.ok]
    if not checks:
        return [check("nothing lost", False, "nothing was checked")]
    detail = (
        f"all {len(checks)} checks held"
        if not failed
        else f"{len(failed)} of {len(checks)} failed: " + "; ".join(failed)
    )
    return [*checks, check("nothing lost", not failed, detail)]


@dataclass
class Result:
    """A drill as it ran: what it did, what it checked, how long it took."""

    name: str
    title: str
    did: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # it could not run to the end

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)


def mark(ok: bool) -> str:
    return "ok  " if ok else "FAIL"


def missing(items: Sequence[object], limit: int = 3) -> str:
    """A few of ``items``, for a detail line."""
    shown = ", ".join(map(str, list(items)[:limit]))
    return f"{len(items)} ({shown}{', ...' if len(items) > limit else ''})"
