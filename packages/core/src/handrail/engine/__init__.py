"""The engine: every task operation, over a store, in one transaction each.

Each operation reads the task, checks who is asking, applies one or more lifecycle
transitions (``handrail.lifecycle``), appends them to the history, lets the escrow move
money for them, and writes the task back with an optimistic version check. When two
writers race, the loser re-reads and re-decides: so of two workers claiming the last slot
at once, exactly one wins and the other gets ``InvalidTransition``. Waiters are woken after
the commit, through the waker.

Every method takes the acting :class:`Principal`; objects of another organisation are
``NotFound``.

Policies are enforced here, so every path (the Python client, the HTTP API, adapters,
decision links) obeys them: a new review is judged by its organisation's policy (allowed
or denied at once, covered by a standing approval, or asked of eligible reviewers under a
quorum); a decision counts only from a reviewer the policy allows (never the review's own
requester), and a refused one is recorded in the audit log; an edit is re-checked.

Where each operation lives (one class per concept, each a subclass of the kernel, and
:class:`Engine` all of them at once):

==========================  ===============================================================
``_kernel.Kernel``          the constructor, ``aclose``; the write path (``_mutate``,
                            ``_save``, ``_publish``), refusals and audit notes, the
                            compiled-policy cache, lapsing a task at its deadline
``requests``                ``create``, ``get``, ``list``, ``history``, ``cancel``,
                            ``approve_estimate``, ``reject_estimate``, ``dispute``,
                            ``wait``, ``events``, ``event_feed``
``work``                    ``queue``, ``wait_for_work``, ``claim``, ``assign``,
                            ``release``, ``offer_estimate``, ``withdraw_estimate``
``decisions``               ``submit``, ``decide``; votes, answers, verification, edits
``decision_tokens``         ``mint_decision_token``, ``redeem_decision_token``
``oversight``               ``verify``, ``fail``, ``resolve_dispute``
``governance``              ``get_policy``, ``put_policy``, ``explain_policy``,
                            ``put_group``, ``list_groups``, ``delete_group``,
                            ``list_standing``, ``revoke_standing``; who may decide, the
                            policy's verdict on a new review, granting standing approvals
``audit``                   ``audit_entries``, ``export_audit``, ``verify_audit``,
                            ``verify_chain``
``workers``                 ``put_worker``, ``get_worker``, ``list_workers``,
                            ``worker_stats``
``sweeps``                  ``expire_due``, ``add_backups``, ``escalate_due``
``_moves``                  store-free transitions shared by several of the above
==========================  ===============================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import Principal
from .audit import AuditMixin
from .decision_tokens import DecisionTokensMixin
from .decisions import DecisionsMixin
from .governance import GovernanceMixin
from .oversight import OversightMixin
from .requests import RequestsMixin
from .sweeps import SweepsMixin
from .work import WorkMixin
from .workers import WorkersMixin

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..session import Session

__all__ = ["Engine"]


class Engine(
    RequestsMixin,
    DecisionTokensMixin,
    DecisionsMixin,
    WorkMixin,
    OversightMixin,
    GovernanceMixin,
    AuditMixin,
    WorkersMixin,
    SweepsMixin,
):
    """Task operations over a :class:`~handrail.store.Store`: every concept's operations
    on one object (see the module's map). The constructor's arguments are the kernel's
    (:class:`handrail.engine._kernel.Kernel`)."""

    def session(self, principal: Principal, ledger: Ledger | None = None) -> Session:
        """This engine acting as ``principal``: every operation of :class:`Session`, the
        principal bound (``handrail._in_process``). Money moves through ``ledger``, by
        default the ledger this engine's escrow holds money in (if it does)."""
        from .._in_process import InProcessSession  # noqa: PLC0415 - it imports the engine
        from ..ledger import LedgerEscrow  # noqa: PLC0415

        if ledger is None and isinstance(self.escrow, LedgerEscrow):
            ledger = self.escrow.ledger
        return InProcessSession(self, principal, ledger).session()
