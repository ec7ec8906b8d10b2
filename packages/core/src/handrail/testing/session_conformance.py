"""The client contract, as tests every :class:`handrail.Session` implementation must pass.

One suite for both transports, so they cannot drift apart unnoticed: ``engine.session``
in this process (on any store) and the HTTP client against a live server. It drives only
the ``Session`` protocol: every operation, with its results and its errors (type,
``code`` and the context fields a caller reads).

Subclass :class:`SessionConformance` in a test module and provide one fixture,
``sessions``: an object with ``org_id`` and four async methods (see
:class:`SessionFactory`)::

    class TestMySessions(SessionConformance):
        @pytest.fixture
        async def sessions(self):
            ...  # requester(), admin(), reviewer(name), outsider()

- ``requester()``: a requester of organisation ``org_id`` (role requester only);
- ``admin()``: an admin of it (every role);
- ``reviewer(name)``: a reviewer of it (role reviewer only) whose principal id is ``name``;
- ``outsider()``: an admin of a second organisation, for tenancy checks.

Every test starts from an empty organisation (no tasks, policy, groups, workers or
money), with decision tokens enabled (a token secret configured), on the system clock.
Sessions are the fixture's to close afterwards.

``drift`` (a class attribute, test name to reason) marks the cases an implementation is
known to fail: they run as ``xfail(strict=True)``, so fixing one shows at once. The suite
needs pytest and pytest-asyncio (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401
except ImportError as _missing:  # pragma: no cover
    raise ImportError("handrail.testing needs pytest") from _missing

from ._session_governance import GovernanceCases
from ._session_kit import SessionFactory
from ._session_money import AccessCases, MoneyCases
from ._session_requests import RequestCases
from ._session_work import WorkCases

__all__ = ["SessionConformance", "SessionFactory"]


class SessionConformance(RequestCases, WorkCases, GovernanceCases, MoneyCases, AccessCases):
    """Every ``Session`` operation on one implementation. See the module docstring."""
