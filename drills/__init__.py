"""Fault drills: break the running server on purpose and check that nothing was lost.

``make drills`` (``python -m drills``) runs each drill against real server processes:
kill -9 under load (SQLite; PostgreSQL with two processes), PostgreSQL restarted under
load (a private cluster, never the shared one), a webhook receiver down and back, a flood
from one key, and malformed, oversized and hostile input. Each prints what it did and what
it checked, and ends with a "nothing lost" check; the results go to
``docs/reliability.md``.

A drill is a module with ``TITLE``, ``async def run(workdir, say) -> Outcome`` (does the
drill and records what it saw, as plain data) and ``def checks(outcome) -> list[Check]``
(judges it, with nothing else to look at), so the checks can be tried on doctored
outcomes in the tests.
"""
