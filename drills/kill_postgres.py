"""kill -9 one of two server processes under load on PostgreSQL, start it again: every
acknowledged task and decision is still there, every waiter is answered (those parked on
the other process woken across processes), the books balance, every webhook arrives, and
the other process serves on throughout.

Two server processes on a fresh database of the shared PostgreSQL (``CREATE DATABASE``,
dropped afterwards).
"""

from __future__ import annotations

from pathlib import Path

from tests.postgres import POSTGRES_URL, fresh_database

from . import _crash
from ._crash import CrashOutcome, crash, crash_checks
from ._drill import Check, Say

TITLE = "kill -9 one of two processes under load (PostgreSQL)"

ABOUT = f"{__doc__}\n{_crash.__doc__}"  # the page shows how the crash is staged too


async def run(workdir: Path, say: Say) -> CrashOutcome:
    async with fresh_database(POSTGRES_URL, prefix="handrail_drill") as url:
        return await crash(url, workdir, 2, say)


def checks(outcome: CrashOutcome) -> list[Check]:
    return crash_checks(outcome)
