"""kill -9 the server under load on SQLite, start it again on the same file: every
acknowledged task and decision is still there, every waiter is answered, the books
balance, every webhook arrives.

One server process on a SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from . import _crash
from ._crash import CrashOutcome, crash, crash_checks
from ._drill import Check, Say

TITLE = "kill -9 under load (SQLite)"

ABOUT = f"{__doc__}\n{_crash.__doc__}"  # the page shows how the crash is staged too


async def run(workdir: Path, say: Say) -> CrashOutcome:
    return await crash(f"sqlite:///{workdir / 'handrail.db'}", workdir, 1, say)


def checks(outcome: CrashOutcome) -> list[Check]:
    return crash_checks(outcome)
