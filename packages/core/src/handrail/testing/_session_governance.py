"""Governance, audit and workers, as conformance cases: policies (versions, the dry run),
reviewer groups, standing approvals, decision tokens, the audit log and worker profiles."""

from __future__ import annotations

from ..errors import (
    ConcurrencyConflict,
    NotFound,
    PermissionDenied,
    TokenRejected,
    ValidationError,
)
from ..lifecycle import Status
from ..session import Session
from ._session_kit import RULES, SessionCases, judgment, refused, review

__all__ = ["GovernanceCases"]


def refund(amount: int) -> dict[str, object]:
    return review("refund", args={"amount": amount})


class GovernanceCases(SessionCases):
    async def test_policies_versioned(self, admin: Session) -> None:
        assert (await admin.get_policy()).version == 0
        saved = await admin.put_policy({"rules": RULES})
        assert (saved.version, saved.updated_by, len(saved.rules)) == (1, admin.principal_id, 3)
        assert await admin.get_policy() == saved
        stale = await refused(
            ConcurrencyConflict, admin.put_policy({"rules": []}, expected_version=0)
        )
        assert stale.code == "concurrency_conflict"
        newer = await admin.put_policy({"rules": RULES[:1]}, expected_version=1)
        assert newer.version == 2
        bad = await refused(
            ValidationError,
            admin.put_policy({"rules": [{"id": "x", "outcome": "allow", "when": "args.a >"}]}),
        )
        assert [e.path for e in bad.errors] == ["$.rules[0].when"]
        assert (await admin.get_policy()).version == 2

    async def test_policy_explained(self, admin: Session, requester: Session) -> None:
        await admin.put_policy({"rules": RULES})
        found = await admin.explain_policy(refund(40))
        assert (found.outcome.value, found.rule_id) == ("allow", "small")
        draft = {"rules": [{"id": "all", "outcome": "deny"}]}
        tried = await admin.explain_policy(refund(40), policy=draft)
        assert (tried.outcome.value, tried.rule_id) == ("deny", "all")
        assert (await requester.list()).items == ()  # a dry run creates nothing
        allowed = await requester.create(refund(40))
        assert allowed.status is Status.VERIFIED

    async def test_groups(self, admin: Session, alice: Session) -> None:
        made = await admin.put_group("finance", ["alice", "bob"], "money people")
        assert (made.name, set(made.members), made.description) == (
            "finance",
            {"alice", "bob"},
            "money people",
        )
        assert [g.name for g in await admin.list_groups()] == ["finance"]
        changed = await admin.put_group("finance", ["alice"])
        assert set(changed.members) == {"alice"}
        await admin.delete_group("finance")
        assert await admin.list_groups() == []
        gone = await refused(NotFound, admin.delete_group("finance"))
        assert (gone.code, gone.id) == ("not_found", "finance")
        await refused(PermissionDenied, alice.put_group("mine", ["alice"]))

    async def test_standing_approvals(
        self, admin: Session, requester: Session, alice: Session, bob: Session
    ) -> None:
        await admin.put_policy({"rules": RULES})
        await admin.put_group("finance", ["alice", "bob"])
        first = await requester.create(refund(500))
        remembered = {
            "type": "approve",
            "remember": {"when": "args.amount < 1000", "ttl_seconds": 60},
        }
        await alice.decide(first.id, remembered)
        [standing] = await alice.list_standing()
        assert (standing.granted_by, standing.task_id, standing.tool) == (
            "alice",
            first.id,
            "refund",
        )
        assert await bob.list_standing() == []
        assert [s.id for s in await admin.list_standing()] == [standing.id]
        covered = await requester.create(refund(900))
        assert covered.status is Status.VERIFIED and covered.decision is not None
        assert covered.decision.standing_approval_id == standing.id
        await refused(PermissionDenied, bob.revoke_standing(standing.id, "not yours"))
        revoked = await alice.revoke_standing(standing.id, "enough")
        assert revoked.revoked_at is not None and revoked.revoked_by == "alice"
        assert await alice.list_standing() == []
        assert [s.id for s in await alice.list_standing(active=False)] == [standing.id]
        assert (await requester.create(refund(900))).status is Status.POSTED
        await refused(NotFound, alice.revoke_standing("no-such-approval"))

    async def test_decision_tokens(
        self, admin: Session, requester: Session, alice: Session
    ) -> None:
        task = await requester.create(review())
        other = await requester.create(review())
        token, claims = await admin.mint_decision_token(task.id, "alice", ttl_seconds=600)
        assert (claims.task_id, claims.reviewer_id, claims.decision) == (task.id, "alice", None)
        assert claims.expires_at > admin.now()
        wrong = await refused(
            TokenRejected,
            requester.redeem_decision_token(token, {"type": "approve"}, task_id=other.id),
        )
        assert (wrong.code, wrong.reason) == ("token_rejected", "wrong_task")
        done = await requester.redeem_decision_token(token, {"type": "approve"})
        assert done.status is Status.VERIFIED and done.decision is not None
        assert done.decision.reviewer_id == "alice"
        used = await refused(
            TokenRejected, requester.redeem_decision_token(token, {"type": "approve"})
        )
        assert used.reason == "used"
        forged = await refused(
            TokenRejected,
            requester.redeem_decision_token(
                token[:-4] + "AAAA", {"type": "approve"}, task_id=other.id
            ),
        )
        assert (forged.code, forged.reason) == ("token_rejected", "invalid")
        only = await admin.mint_decision_token(other.id, "alice", decision="reject")
        assert only[1].decision is not None and only[1].decision.value == "reject"
        await refused(PermissionDenied, alice.mint_decision_token(other.id, "alice"))
        bad = await refused(
            ValidationError, admin.mint_decision_token(other.id, "alice", ttl_seconds=0)
        )
        assert [e.path for e in bad.errors] == ["$.ttl_seconds"]
        await refused(NotFound, admin.mint_decision_token("no-such-task", "alice"))

    async def test_audit(self, admin: Session, requester: Session, alice: Session) -> None:
        task = await requester.create(review())
        await alice.decide(task.id, {"type": "approve"})
        entries = await admin.audit_entries()
        kinds = [e.kind for e in entries]
        assert "task.create" in kinds and "task.submit" in kinds
        seqs = [e.seq for e in entries]
        assert seqs == sorted(seqs)
        later = await admin.audit_entries(after=seqs[0], limit=1)
        assert [e.seq for e in later] == [seqs[1]]
        report = await admin.verify_audit()
        assert report.ok and report.checked >= len(entries) and report.broken_at is None
        await refused(PermissionDenied, requester.audit_entries())
        await refused(ValidationError, admin.audit_entries(limit=0))

    async def test_workers(self, admin: Session, requester: Session, alice: Session) -> None:
        made = await admin.put_worker({"id": "alice", "skills": ["label"], "capacity": 2})
        assert (made.id, made.org_id, set(made.skills), made.capacity, made.version) == (
            "alice",
            made.org_id,
            {"label"},
            2,
            1,
        )
        again = await admin.put_worker({"id": "alice", "skills": ["label"], "capacity": 3})
        assert (again.capacity, again.version) == (3, 2)
        assert await admin.get_worker("alice") == again
        assert await alice.get_worker("alice") == again  # one's own profile
        assert [w.id for w in await admin.list_workers()] == ["alice"]
        email = await requester.create(review())
        label = await requester.create(judgment())
        queued = {t.id for t in await alice.queue()}
        assert label.id in queued and email.id not in queued  # the profile's skills
        await alice.claim(label.id)
        await alice.submit(label.id, {"label": "cat"})
        assert isinstance(await admin.worker_stats("alice"), list)
        missing = await refused(NotFound, admin.get_worker("nobody"))
        assert (missing.code, missing.resource, missing.id) == ("not_found", "worker", "nobody")
        await refused(PermissionDenied, alice.get_worker("bob"))
        await refused(PermissionDenied, alice.list_workers())
        await refused(PermissionDenied, alice.put_worker({"id": "alice"}))
        await refused(ValidationError, admin.put_worker({"id": "carol", "capacity": 0}))
