"""``hr.tasks``, ``hr.ledger``, ``hr.policy``, ``hr.workers``, ``hr.audit``: the client's
methods, grouped by concept.

Each method is one line naming the :class:`Session` operation it runs, a sync one
(:class:`synced`) and its ``a``-prefixed async twin (:class:`asynced`; ``wait``/``await_``
because ``await`` is a keyword); see ``_twins``. Only the methods that add behaviour of
their own are written out: ``tasks.create`` (fields as keywords), ``tasks.events`` (a
stream), ``policy.explain`` (an action by name) and ``audit.export`` (pages to a file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from ..models import Action, Kind, Task, TaskSpec
from ..policy import Explanation, Policy
from ..session import Session
from ._events import AsyncEventStream, EventStream
from ._review import action_of, spec_of
from ._twins import Facade, asynced, synced

__all__ = ["AuditOps", "LedgerOps", "PolicyOps", "Tasks", "WorkerOps"]


class Tasks(Facade):
    """Task operations: the requester's, the reviewer's and the admin's."""

    # requester
    def create(self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any) -> Task:
        """Post a task: a ``TaskSpec``, a mapping, or its fields as keywords."""
        return self._portal.call(self._session.create(spec_of(spec, fields)))

    async def acreate(
        self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Task:
        return await self._portal.acall(self._session.create(spec_of(spec, fields)))

    get = synced(Session.get)
    aget = asynced(Session.get)
    list = synced(Session.list, "Tasks by ``status``, ``kind``, ``task_type``; ``after`` a cursor.")
    alist = asynced(Session.list)
    history = synced(Session.history, "The task's audit trail, oldest first.")
    ahistory = asynced(Session.history)

    def events(self, after: int | None = None) -> EventStream:
        """The organisation's task history as it happens: every entry after sequence number
        ``after`` (None: from now on, from this call), in order. In-process it never ends;
        over HTTP it is the server's event stream (SSE) and ends with the connection (a
        broken one raises ``HandrailError``): open another after the last event's ``seq``
        to go on without a gap. Close it (``with hr.tasks.events() as events: ...``)."""
        return EventStream(self._portal, lambda: self._session.events(after))

    def aevents(self, after: int | None = None) -> AsyncEventStream:
        """:meth:`events` for async code: ``async with hr.tasks.aevents() as events:
        async for event in events: ...`` (the position is fixed on entering)."""
        return AsyncEventStream(self._portal, lambda: self._session.events(after))

    cancel = synced(Session.cancel)
    acancel = asynced(Session.cancel)
    wait = synced(Session.wait, "Block until the task is terminal; ``WaitTimeout`` after it.")
    await_ = asynced(Session.wait)
    approve_estimate = synced(Session.approve_estimate)
    aapprove_estimate = asynced(Session.approve_estimate)
    reject_estimate = synced(Session.reject_estimate)
    areject_estimate = asynced(Session.reject_estimate)
    dispute = synced(Session.dispute)
    adispute = asynced(Session.dispute)

    # reviewer
    queue = synced(Session.queue, "Open tasks this reviewer may take now.")
    aqueue = asynced(Session.queue)
    wait_for_work = synced(
        Session.wait_for_work,
        "The queue (less ``skip``) as soon as it is not empty; ``[]`` after ``timeout``.",
    )
    await_for_work = asynced(Session.wait_for_work)
    claim = synced(Session.claim)
    aclaim = asynced(Session.claim)
    release = synced(Session.release)
    arelease = asynced(Session.release)
    offer_estimate = synced(Session.offer_estimate)
    aoffer_estimate = asynced(Session.offer_estimate)
    withdraw_estimate = synced(Session.withdraw_estimate)
    awithdraw_estimate = asynced(Session.withdraw_estimate)
    decide = synced(Session.decide)
    adecide = asynced(Session.decide)
    submit = synced(Session.submit)
    asubmit = asynced(Session.submit)

    # admin
    assign = synced(Session.assign, "Push a task to a worker (a claim on its behalf).")
    aassign = asynced(Session.assign)
    verify = synced(Session.verify, "Pass a task out of manual review.")
    averify = asynced(Session.verify)
    fail = synced(Session.fail, "Fail a task in manual review.")
    afail = asynced(Session.fail)
    resolve_dispute = synced(Session.resolve_dispute)
    aresolve_dispute = asynced(Session.resolve_dispute)


class LedgerOps(Facade):
    """Money: the organisation's balance and deposits, a worker's earnings and payouts."""

    deposit = synced(
        Session.deposit,
        "Credit the organisation (sandbox credit, an admin's, or a confirmed transfer). "
        "The same ``key`` again returns the first deposit.",
    )
    adeposit = asynced(Session.deposit)
    balance = synced(
        Session.balance, "What the organisation may spend, and what is held for open tasks."
    )
    abalance = asynced(Session.balance)
    earnings = synced(
        Session.earnings, "A worker's pending (in the hold period), available and total earnings."
    )
    aearnings = asynced(Session.earnings)
    entries = synced(Session.entries, "An account's entries, oldest first, a page at a time.")
    aentries = asynced(Session.entries)
    request_payout = synced(
        Session.request_payout, "Pay out available earnings, less the rail's fee (by ``key``)."
    )
    arequest_payout = asynced(Session.request_payout)
    payouts = synced(Session.payouts)
    apayouts = asynced(Session.payouts)


class PolicyOps(Facade):
    """Policies, reviewer groups, standing approvals and decision tokens.

    Admins manage them; a reviewer lists and revokes its own standing approvals. See
    docs/policies.md."""

    get = synced(Session.get_policy, "The organisation's policy (version 0 before one is saved).")
    aget = asynced(Session.get_policy)
    put = synced(
        Session.put_policy,
        "Save a new version; with ``expected_version``, ``ConcurrencyConflict`` if another "
        "was saved since.",
    )
    aput = asynced(Session.put_policy)

    def explain(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Explanation:
        """Dry run: what the policy (or ``policy``, a draft) makes of a review of
        ``action`` (``task_type``, ``risk_tier``, ``payload``... as keywords), rule by rule."""
        review = {**fields, "kind": Kind.REVIEW, "action": action_of(action, args)}
        return self._portal.call(self._session.explain_policy(review, policy=policy))

    async def aexplain(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Explanation:
        review = {**fields, "kind": Kind.REVIEW, "action": action_of(action, args)}
        return await self._portal.acall(self._session.explain_policy(review, policy=policy))

    groups = synced(Session.list_groups)
    agroups = asynced(Session.list_groups)
    put_group = synced(
        Session.put_group, "Create or replace reviewer group ``name`` (members: principal ids)."
    )
    aput_group = asynced(Session.put_group)
    delete_group = synced(Session.delete_group)
    adelete_group = asynced(Session.delete_group)
    standing = synced(
        Session.list_standing, "Standing approvals (an admin's: all; a reviewer's: its own)."
    )
    astanding = asynced(Session.list_standing)
    revoke_standing = synced(Session.revoke_standing)
    arevoke_standing = asynced(Session.revoke_standing)
    mint_token = synced(
        Session.mint_decision_token,
        "A single-use, expiring token letting ``reviewer_id`` decide ``task_id``.",
    )
    amint_token = asynced(Session.mint_decision_token)
    redeem_token = synced(
        Session.redeem_decision_token,
        "Decide with a token, as the reviewer it names (``TokenRejected`` if it cannot).",
    )
    aredeem_token = asynced(Session.redeem_decision_token)


class WorkerOps(Facade):
    """Reviewer profiles (skills, trust tier, capacity) and their record (admins)."""

    put = synced(Session.put_worker, "Create or replace a reviewer's profile.")
    aput = asynced(Session.put_worker)
    get = synced(Session.get_worker)
    aget = asynced(Session.get_worker)
    list = synced(Session.list_workers)
    alist = asynced(Session.list_workers)
    stats = synced(Session.worker_stats, "A reviewer's record, per task type.")
    astats = asynced(Session.worker_stats)


class AuditOps(Facade):
    """The organisation's tamper-evident audit log (admins)."""

    entries = synced(
        Session.audit_entries, "Entries after ``seq`` ``after``, oldest first, with hashes."
    )
    aentries = asynced(Session.audit_entries)
    verify = synced(
        Session.verify_audit, "Recompute the hash chain: ``ok``, or the first broken link."
    )
    averify = asynced(Session.verify_audit)

    def export(self, out: IO[str], *, after: int = 0) -> int:
        """Write the log as JSON Lines to ``out``; returns how many entries."""
        return self._portal.call(self._export(out, after))

    async def aexport(self, out: IO[str], *, after: int = 0) -> int:
        return await self._portal.acall(self._export(out, after))

    async def _export(self, out: IO[str], after: int) -> int:
        count = 0
        while True:
            page = await self._session.audit_entries(after=after, limit=1_000)
            for entry in page:
                out.write(entry.line() + "\n")
            count += len(page)
            if len(page) < 1_000:
                return count
            after = page[-1].seq
