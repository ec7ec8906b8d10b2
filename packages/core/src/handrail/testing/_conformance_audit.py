"""The audit chains: events, postings and notes on one hash chain per organisation, which
concurrent writers never fork."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ..audit import AuditRecord, verify
from ..clock import ManualClock
from ..engine import Engine
from ..ledger import Account
from ..lifecycle import Event
from ..models import Decision
from ..store import Store
from ._conformance_support import AGENT, ALICE, BOB, USD, StoreFactory, _event, _posting, make_task


class AuditContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- the audit chains

    async def test_audit_chain_records_events_postings_and_notes(
        self, store: Store, clock: ManualClock
    ) -> None:
        task = make_task(clock)
        note = AuditRecord(
            org_id="org-a", at=clock.now(), kind="policy.updated", actor="root", data={"v": 1}
        )
        async with store.transaction() as tx:
            await tx.insert_task(task)
            await tx.append_events([_event(task, clock)])
            await tx.post(
                _posting(
                    "d-1", clock, (Account.funding(USD), -500), (Account.org("org-a", USD), 500)
                )
            )
            await tx.append_audit([note])
            await tx.append_audit(
                [AuditRecord(org_id="org-b", at=clock.now(), kind="x", actor="y")]
            )

        class Boom(Exception):
            pass

        with pytest.raises(Boom):  # rolled back: nothing of it is chained
            async with store.transaction() as tx:
                await tx.append_audit([note])
                await tx.append_events([_event(task, clock, Event.CLAIM)])
                raise Boom
        async with store.transaction() as tx:
            await tx.append_events([_event(task, clock, Event.CLAIM)])
        async with store.transaction(readonly=True) as tx:
            entries = await tx.audit_entries("org-a", 0, 100)
            tail = await tx.audit_entries("org-a", 2, 1)
            head = await tx.audit_head("org-a")
            assert await tx.audit_head("org-c") is None
            assert await tx.audit_orgs() == ["org-a", "org-b"]
            assert len(await tx.audit_entries("org-b", 0, 100)) == 1
        assert [e.kind for e in entries] == [
            "task.create",
            "ledger.posting",
            "policy.updated",
            "task.claim",
        ]
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert tail == [entries[2]]
        assert entries[0].task_id == task.id and entries[0].data["data"] == {"k": [1, "two"]}
        funded = [[Account.funding(USD).id, -500], [Account.org("org-a", USD).id, 500]]
        assert entries[1].data["entries"] == funded
        assert entries[2].data == {"v": 1} and entries[2].actor == "root"
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(entries))
        assert head is not None and (head.seq, head.hash) == (4, entries[-1].hash)
        assert verify("org-a", entries, head).ok

    async def test_concurrent_writers_never_fork_the_chain(
        self, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        engines = [Engine(await store_factory(), clock=clock) for _ in range(4)]

        async def work(engine: Engine, n: int) -> None:
            for i in range(5):
                task = await engine.create(
                    AGENT, {"kind": "review", "action": {"name": "pay", "args": {"n": n, "i": i}}}
                )
                await engine.decide(ALICE if n % 2 else BOB, task.id, Decision.approve())

        await asyncio.gather(*(work(e, n) for n, e in enumerate(engines)))
        report = await engines[0].verify_chain("org-a")
        # each review: create, claim, submit and verify, all on one chain
        assert report.ok, report
        assert report.checked == report.head_seq == 4 * 5 * 4
