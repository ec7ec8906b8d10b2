"""Policies enforced by the engine: decisions made at once (allow, deny, standing
approvals, too few reviewers), who may decide, quorums, the modify re-check, answer
lifetimes, timeouts, redaction everywhere, decision tokens, and the audit trail of it all.

Run on the memory store and on SQLite (the conformance suite covers PostgreSQL's parity).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from handrail import (
    Decision,
    DecisionType,
    EditDenied,
    Engine,
    Event,
    InvalidTransition,
    ManualClock,
    MemoryStore,
    Money,
    NotEligible,
    PermissionDenied,
    Principal,
    ReasonCode,
    Remember,
    Role,
    Status,
    Task,
    TokenRejected,
    ValidationError,
)
from handrail.audit import AuditEntry
from handrail.client import decision_of
from handrail.ledger import Ledger, LedgerEscrow
from handrail.store import Store
from handrail.store.sql import SqlStore
from handrail.tokens import DecisionTokens

AGENT = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}), key_id="k-agent")
ALICE = Principal(org_id="acme", id="alice", roles=frozenset({Role.REVIEWER}), key_id="k-alice")
BOB = Principal(org_id="acme", id="bob", roles=frozenset({Role.REVIEWER}))
CAROL = Principal(org_id="acme", id="carol", roles=frozenset({Role.REVIEWER}))
DAVE = Principal(org_id="acme", id="dave", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="acme", id="root", roles=frozenset({Role.ADMIN}))
EVERYONE = Principal(
    org_id="acme", id="agent", roles=frozenset({Role.REQUESTER, Role.REVIEWER, Role.ADMIN})
)

RULES: list[dict[str, Any]] = [
    {"id": "no-prod", "tools": ["delete_*"], "when": 'args.path starts_with "/prod"',
     "outcome": "deny", "message": "never in production"},
    {"id": "small-refund", "tools": ["refund"], "when": "args.amount <= 100", "outcome": "allow",
     "answer_ttl_seconds": 600},
    {"id": "big-refund", "tools": ["refund"], "when": "args.amount > 1000", "outcome": "ask",
     "reviewers": ["finance"], "quorum": 2},
    {"id": "mid-refund", "tools": ["refund"], "outcome": "ask", "reviewers": ["support"]},
    {"id": "pay", "tools": ["pay"], "outcome": "ask", "redact": ["args.card"],
     "timeout_seconds": 60},
]  # fmt: skip


def review(tool: str = "refund", **args: Any) -> dict[str, Any]:
    return {"kind": "review", "action": {"name": tool, "args": args}}


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = await SqlStore.open(f"sqlite:///{tmp_path / 'gov.db'}")
    yield sql
    await sql.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def engine(store: Store, clock: ManualClock) -> Engine:
    engine = Engine(store, clock=clock, tokens=DecisionTokens(b"k" * 32))
    await engine.put_policy(ADMIN, {"rules": RULES})
    await engine.put_group(ADMIN, "finance", ["alice", "bob", "carol"])
    await engine.put_group(ADMIN, "support", ["alice", "dave"])
    return engine


async def audit(engine: Engine) -> list[AuditEntry]:
    return await engine.audit_entries(ADMIN, limit=1_000)


class TestDecidedAtOnce:
    async def test_allow_is_a_recorded_approval_by_the_rule(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=40))
        assert task.status is Status.VERIFIED
        decision = task.decision
        assert decision is not None and decision.is_approval
        assert (decision.reason_code, decision.rule_id, decision.reviewer_id) == (
            ReasonCode.POLICY_ALLOW,
            "small-refund",
            "rule:small-refund",
        )
        assert decision.automatic and not decision.retryable
        history = await engine.history(AGENT, task.id)
        assert [e.event for e in history] == [Event.CREATE, Event.POLICY]
        assert history[0].data["policy"]["rule_id"] == "small-refund"
        assert history[1].actor == "rule:small-refund"
        kinds = [(e.kind, e.task_id) for e in await audit(engine)]
        assert ("task.policy", task.id) in kinds

    async def test_deny_is_a_reject_with_the_rules_message(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("delete_rows", path="/prod/users"))
        decision = task.decision
        assert decision is not None and decision.type is DecisionType.REJECT
        assert (decision.message, decision.reason_code) == (
            "never in production",
            ReasonCode.POLICY_DENY,
        )
        assert not decision.retryable  # a rule's "no" does not change by asking again
        assert decision_of(task) == decision

    async def test_no_match_and_errors_ask_a_person(self, engine: Engine) -> None:
        unknown = await engine.create(AGENT, review("send_email", to="x@y.z"))
        assert unknown.status is Status.POSTED and unknown.policy is not None
        assert unknown.policy.rule_id is None
        erred = await engine.create(AGENT, review(amount="40"))  # a string amount
        assert erred.status is Status.POSTED
        assert erred.policy is not None and erred.policy.rule_id == "small-refund"
        assert erred.policy.error and "cannot order" in erred.policy.error
        created = (await engine.history(AGENT, erred.id))[0]
        assert created.data["policy"]["error"] == erred.policy.error

    async def test_too_few_eligible_reviewers_is_a_system_no(self, engine: Engine) -> None:
        await engine.put_group(ADMIN, "finance", ["alice"])  # the quorum needs two
        task = await engine.create(AGENT, review(amount=5000))
        decision = task.decision
        assert decision is not None and decision.type is DecisionType.REJECT
        assert decision.reason_code is ReasonCode.NO_ELIGIBLE_REVIEWER and decision.retryable
        # the requester itself never counts as eligible
        await engine.put_group(ADMIN, "finance", ["alice", "agent"])
        again = await engine.create(AGENT, review(amount=5000))
        assert again.decision is not None
        assert again.decision.reason_code is ReasonCode.NO_ELIGIBLE_REVIEWER

    async def test_a_paid_review_decided_by_policy_is_refunded(
        self, store: Store, clock: ManualClock
    ) -> None:
        ledger = Ledger(store, clock=clock)
        engine = Engine(store, clock=clock, escrow=LedgerEscrow(ledger))
        await engine.put_policy(ADMIN, {"rules": RULES})
        await ledger.deposit(ADMIN, Money.parse("10.00", "USD"), key="d")
        paid = {**review(amount=5), "payout": {"currency": "USD", "amount": "1.00"}}
        task = await engine.create(AGENT, paid)
        assert task.status is Status.VERIFIED
        balance = await ledger.balance(AGENT, "USD")
        assert balance.available == Money.parse("10.00", "USD")
        assert balance.held == Money.parse("0", "USD")


class TestAuthority:
    async def test_a_requester_never_decides_its_own_review(self, engine: Engine) -> None:
        task = await engine.create(EVERYONE, review("send_email", to="x@y.z"))
        with pytest.raises(NotEligible, match="cannot decide its own review"):
            await engine.decide(EVERYONE, task.id, Decision.approve())
        with pytest.raises(NotEligible):
            await engine.claim(EVERYONE, task.id)
        assert await engine.queue(EVERYONE) == []
        assert (await engine.get(EVERYONE, task.id)).status is Status.POSTED
        refused = [e for e in await audit(engine) if e.kind == "decision.refused"]
        assert [(e.actor, e.task_id, e.data["code"]) for e in refused] == [
            ("agent", task.id, "not_eligible"),
            ("agent", task.id, "not_eligible"),
        ]

    async def test_an_agent_key_decides_nothing(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("send_email", to="x@y.z"))
        with pytest.raises(PermissionDenied, match="needs the reviewer role"):
            await engine.decide(AGENT, task.id, Decision.approve())
        with pytest.raises(PermissionDenied):
            await engine.submit(AGENT, task.id, {"type": "approve"})
        refused = [e for e in await audit(engine) if e.kind == "decision.refused"]
        assert len(refused) == 2 and refused[0].data["key_id"] == "k-agent"
        assert refused[0].data["roles"] == ["requester"]

    async def test_only_the_rules_groups_decide(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=500))  # mid-refund: support
        with pytest.raises(NotEligible, match="only members of support"):
            await engine.decide(BOB, task.id, Decision.approve())
        assert task.id not in {t.id for t in await engine.queue(BOB)}
        assert task.id in {t.id for t in await engine.queue(DAVE)}
        done = await engine.decide(DAVE, task.id, Decision.approve())
        assert done.status is Status.VERIFIED
        # leaving the group takes the authority with it, at once
        later = await engine.create(AGENT, review(amount=500))
        await engine.put_group(ADMIN, "support", ["alice"])
        with pytest.raises(NotEligible):
            await engine.decide(DAVE, later.id, Decision.approve())

    async def test_an_admin_picking_a_decision_is_checked_too(self, engine: Engine) -> None:
        await engine.put_group(ADMIN, "support", ["alice", "dave", "root"])
        task = await engine.create(
            AGENT,
            {**review(amount=500), "risk_tier": "critical"},  # two reviewers who agree
        )
        await engine.decide(ALICE, task.id, Decision.approve())
        split = await engine.decide(DAVE, task.id, Decision.reject("no"))
        assert split.status is Status.MANUAL_REVIEW  # the two-person rule: they disagree
        outsider = Principal(org_id="acme", id="ops", roles=frozenset({Role.ADMIN}))
        with pytest.raises(NotEligible):
            await engine.verify(outsider, task.id, {"type": "approve"})
        done = await engine.verify(ADMIN, task.id, {"type": "approve"})
        assert done.decision is not None and done.decision.reviewer_id == "root"
        assert done.decision.rule_id == "mid-refund"


class TestQuorum:
    async def test_two_approvals_approve(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=5000))
        assert (task.redundancy, task.policy and task.policy.quorum) == (3, 2)
        first = await engine.decide(ALICE, task.id, Decision.approve("ok"))
        assert first.status is Status.ASSIGNED
        done = await engine.decide(BOB, task.id, Decision.approve())
        assert done.status is Status.VERIFIED
        decision = (await engine.get(AGENT, task.id)).decision
        assert decision is not None and decision.is_approval
        assert (decision.reviewers, decision.reviewer_id, decision.rule_id) == (
            ("alice", "bob"),
            "bob",
            "big-refund",
        )
        assert done.verification is not None and done.verification.stages[0].name == "quorum"
        with pytest.raises(InvalidTransition):  # settled: a third voter is too late
            await engine.decide(CAROL, task.id, Decision.reject("late"))

    async def test_any_reject_vetoes(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=5000))
        await engine.decide(ALICE, task.id, Decision.approve())
        done = await engine.decide(BOB, task.id, Decision.reject("too much"))
        decision = (await engine.get(AGENT, task.id)).decision
        assert done.status is Status.VERIFIED
        assert decision is not None and decision.type is DecisionType.REJECT
        assert (decision.reviewers, decision.message, decision.reason_code) == (
            ("bob",),
            "too much",
            None,  # a person's no
        )

    async def test_without_veto_the_first_side_to_the_quorum_wins(self, engine: Engine) -> None:
        rules = [{**RULES[2], "veto": False}, *RULES[3:]]
        await engine.put_policy(ADMIN, {"rules": rules})
        approved = await engine.create(AGENT, review(amount=5000))
        await engine.decide(ALICE, approved.id, Decision.approve())
        after_no = await engine.decide(BOB, approved.id, Decision.reject("hm"))
        assert after_no.status is Status.ASSIGNED
        await engine.decide(CAROL, approved.id, Decision.approve())
        decision = (await engine.get(AGENT, approved.id)).decision
        assert decision is not None and decision.is_approval
        assert decision.reviewers == ("alice", "carol")
        rejected = await engine.create(AGENT, review(amount=5000))
        await engine.decide(ALICE, rejected.id, Decision.reject("no"))
        await engine.decide(BOB, rejected.id, Decision.reject("no"))
        decision = (await engine.get(AGENT, rejected.id)).decision
        assert decision is not None and decision.type is DecisionType.REJECT
        assert decision.reviewers == ("alice", "bob")

    async def test_approvals_count_together_only_for_the_same_action(self, engine: Engine) -> None:
        await engine.put_group(ADMIN, "finance", ["alice", "bob", "carol", "dave"])
        task = await engine.create(AGENT, review(amount=5000))
        await engine.decide(ALICE, task.id, Decision.modify({"amount": 2000}))
        await engine.decide(BOB, task.id, Decision.approve())
        stuck = await engine.decide(CAROL, task.id, Decision.modify({"amount": 3000}))
        assert stuck.status is Status.MANUAL_REVIEW  # no voter left, nothing settled
        assert stuck.verification is not None
        assert "none reached 2" in stuck.verification.reasons[0]
        cosigned = await engine.create(AGENT, review(amount=5000))
        await engine.decide(ALICE, cosigned.id, Decision.modify({"amount": 2000}, "less"))
        await engine.decide(BOB, cosigned.id, Decision.modify({"amount": 2000}))
        decision = (await engine.get(AGENT, cosigned.id)).decision
        assert decision is not None and decision.args == {"amount": 2000}


class TestModifyIsRechecked:
    async def test_an_edit_a_rule_would_deny_is_refused(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("delete_rows", path="/staging/x"))
        with pytest.raises(EditDenied, match="no-prod denies the edited action") as caught:
            await engine.decide(ALICE, task.id, Decision.modify({"path": "/prod/x"}))
        assert caught.value.rule_id == "no-prod"
        assert (await engine.get(AGENT, task.id)).status is Status.POSTED
        refused = [e for e in await audit(engine) if e.kind == "decision.refused"]
        assert refused[-1].data["code"] == "edit_denied"
        done = await engine.decide(ALICE, task.id, Decision.modify({"path": "/staging/y"}))
        decision = (await engine.get(AGENT, done.id)).decision
        assert decision is not None and decision.patch == (
            {"op": "replace", "path": "/path", "value": "/staging/y"},
        )

    async def test_a_renamed_tool_is_rechecked(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("archive_rows", path="/prod/x"))
        with pytest.raises(EditDenied):
            await engine.decide(
                ALICE, task.id, Decision.modify({"path": "/prod/x"}, tool="delete_x")
            )
        done = await engine.decide(
            ALICE, task.id, Decision.modify({"path": "/prod/x"}, tool="archive_cold")
        )
        decision = (await engine.get(AGENT, done.id)).decision
        assert decision is not None and decision.tool == "archive_cold"
        assert decision.patch == ()  # the arguments stayed as proposed

    async def test_an_edit_into_a_stricter_rule_needs_its_reviewers(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=500))  # support decides
        with pytest.raises(EditDenied, match="big-refund, which needs 2 approvals"):
            await engine.decide(DAVE, task.id, Decision.modify({"amount": 5000}))
        done = await engine.decide(DAVE, task.id, Decision.modify({"amount": 50}))
        assert done.status is Status.VERIFIED  # into an allow rule: fine


class TestStandingApprovals:
    async def test_remembered_approvals_decide_later_reviews(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        first = await engine.create(AGENT, review(amount=500, order="A-1"))
        remember = Remember(when="args.amount <= 800", ttl_seconds=3600)
        await engine.decide(ALICE, first.id, Decision.approve(remember=remember))
        [granted] = await engine.list_standing(ADMIN)
        assert (granted.granted_by, granted.tool, granted.task_id) == ("alice", "refund", first.id)
        assert await engine.list_standing(ALICE) == [granted]
        assert await engine.list_standing(DAVE) == []

        covered = await engine.create(AGENT, review(amount=700, order="B-2"))
        decision = covered.decision
        assert covered.status is Status.VERIFIED and decision is not None
        assert (decision.reason_code, decision.standing_approval_id, decision.reviewer_id) == (
            ReasonCode.STANDING_APPROVAL,
            granted.id,
            "alice",
        )
        assert (await engine.create(AGENT, review(amount=900))).status is Status.POSTED
        assert (await engine.create(AGENT, review("email", amount=5))).status is Status.POSTED
        # a deny rule beats it, and so does a quorum
        assert (await engine.create(AGENT, review(amount=5000))).status is Status.POSTED

        revoked = await engine.revoke_standing(ALICE, granted.id, "no longer")
        assert revoked.revoked_by == "alice"
        assert (await engine.create(AGENT, review(amount=700))).status is Status.POSTED
        kinds = [e.kind for e in await audit(engine)]
        assert "standing.granted" in kinds and "standing.revoked" in kinds

    async def test_exact_arguments_and_lifetime(self, engine: Engine, clock: ManualClock) -> None:
        first = await engine.create(AGENT, review(amount=500, order="A-1"))
        await engine.decide(DAVE, first.id, Decision.approve(remember=Remember(ttl_seconds=60)))
        same = await engine.create(AGENT, review(amount=500, order="A-1"))
        assert same.status is Status.VERIFIED
        other = await engine.create(AGENT, review(amount=500, order="A-2"))
        assert other.status is Status.POSTED
        clock.advance(61)
        assert (await engine.create(AGENT, review(amount=500, order="A-1"))).status is (
            Status.POSTED
        )
        assert await engine.list_standing(ADMIN) == []
        assert len(await engine.list_standing(ADMIN, active=False)) == 1

    async def test_a_granter_who_lost_authority_covers_nothing(self, engine: Engine) -> None:
        first = await engine.create(AGENT, review(amount=500))
        await engine.decide(DAVE, first.id, Decision.approve(remember=Remember(ttl_seconds=600)))
        await engine.put_group(ADMIN, "support", ["alice"])
        assert (await engine.create(AGENT, review(amount=500))).status is Status.POSTED

    async def test_what_cannot_be_remembered(self, engine: Engine) -> None:
        quorum = await engine.create(AGENT, review(amount=5000))
        with pytest.raises(ValidationError, match="several reviewers"):
            await engine.decide(
                ALICE, quorum.id, Decision.approve(remember=Remember(ttl_seconds=60))
            )
        await engine.put_policy(ADMIN, {"rules": [{**RULES[3], "standing": False}]})
        strict = await engine.create(AGENT, review(amount=500))
        with pytest.raises(ValidationError, match="does not allow standing approvals"):
            await engine.decide(
                ALICE, strict.id, Decision.approve(remember=Remember(ttl_seconds=60))
            )
        with pytest.raises(ValueError, match="only an approve"):
            Decision(type=DecisionType.REJECT, message="x", remember=Remember(ttl_seconds=1))

    async def test_others_revoke_only_as_admins(self, engine: Engine) -> None:
        first = await engine.create(AGENT, review(amount=500))
        await engine.decide(DAVE, first.id, Decision.approve(remember=Remember(ttl_seconds=60)))
        [granted] = await engine.list_standing(ADMIN)
        with pytest.raises(PermissionDenied):
            await engine.revoke_standing(ALICE, granted.id)
        assert (await engine.revoke_standing(ADMIN, granted.id)).revoked_by == "root"
        assert (await engine.revoke_standing(ADMIN, granted.id)).version == 2  # once


class TestAnswerLifetime:
    async def test_a_stale_approval_never_fires(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(AGENT, review(amount=40))  # the rule: 600 s
        decision = task.decision
        assert decision is not None and decision.expires_at == task.created_at + timedelta(
            seconds=600
        )
        assert decision_of(task, clock.now()) == decision and not decision.expired(clock.now())
        clock.advance(601)
        stale = decision_of(task, clock.now())
        assert stale.type is DecisionType.REJECT
        assert (stale.reason_code, stale.rule_id) == (ReasonCode.EXPIRED, "small-refund")
        assert stale.retryable

    async def test_the_shortest_shelf_life_wins(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(AGENT, {**review(amount=500), "answer_ttl_seconds": 300})
        short = clock.now() + timedelta(seconds=100)
        done = await engine.decide(
            DAVE, task.id, Decision(type=DecisionType.APPROVE, expires_at=short)
        )
        decision = (await engine.get(AGENT, done.id)).decision
        assert decision is not None and decision.expires_at == short
        other = await engine.create(AGENT, {**review(amount=500), "answer_ttl_seconds": 300})
        await engine.decide(DAVE, other.id, Decision.approve())
        decision = (await engine.get(AGENT, other.id)).decision
        assert decision is not None and decision.expires_at == clock.now() + timedelta(seconds=300)
        with pytest.raises(ValidationError, match="must be in the future"):
            third = await engine.create(AGENT, review(amount=500))
            await engine.decide(
                DAVE, third.id, Decision(type=DecisionType.APPROVE, expires_at=clock.now())
            )

    async def test_rejects_carry_no_shelf_life(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**review(amount=500), "answer_ttl_seconds": 30})
        await engine.decide(DAVE, task.id, Decision.reject("no"))
        decision = (await engine.get(AGENT, task.id)).decision
        assert decision is not None and decision.expires_at is None


class TestTimeouts:
    async def test_the_rules_timeout_caps_the_sla(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(AGENT, {**review("pay", card="4111"), "max_attempts": 3})
        assert (task.sla_seconds, task.max_attempts) == (60, 1)
        clock.advance(61)
        [expired] = await engine.expire_due()
        assert expired.status is Status.EXPIRED
        said = decision_of(expired)
        assert (said.reason_code, said.rule_id, said.retryable) == (ReasonCode.TIMEOUT, "pay", True)

    async def test_a_rule_may_approve_when_nobody_answers(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        rules = [{**RULES[4], "on_timeout": "approve"}]
        await engine.put_policy(ADMIN, {"rules": rules})
        task = await engine.create(AGENT, review("pay", card="4111"))
        clock.advance(61)
        [done] = await engine.expire_due()
        decision = (await engine.get(AGENT, done.id)).decision
        assert done.status is Status.VERIFIED and decision is not None
        assert (decision.type, decision.reason_code, decision.reviewer_id) == (
            DecisionType.APPROVE,
            ReasonCode.TIMEOUT,
            "rule:pay",
        )
        events = [e.event for e in await engine.history(AGENT, task.id)]
        assert events == [Event.CREATE, Event.POLICY]


class TestRedaction:
    async def test_masked_for_reviewers_intact_for_the_requester(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("pay", card="4111-1111", amount=5))
        assert task.redact == ("args.card",)
        assert task.action is not None and task.action.args["card"] == "4111-1111"
        [queued] = await engine.queue(ALICE)
        assert queued.action is not None
        assert queued.action.args == {"card": "[redacted]", "amount": 5}
        seen = await engine.get(ALICE, task.id)
        assert seen.action is not None and seen.action.args["card"] == "[redacted]"
        # the reviewer edits the amount and sends the card back as it saw it
        done = await engine.decide(
            ALICE, task.id, Decision.modify({"card": "[redacted]", "amount": 3})
        )
        assert done.decision is not None and done.decision.args == {
            "card": "[redacted]",
            "amount": 3,
        }
        mine = (await engine.get(AGENT, task.id)).decision
        assert mine is not None and mine.args == {"card": "4111-1111", "amount": 3}
        assert mine.patch == ({"op": "replace", "path": "/amount", "value": 3},)
        for event in await engine.history(AGENT, task.id):
            assert "4111" not in event.model_dump_json()
        for entry in await audit(engine):
            assert "4111" not in entry.line()

    async def test_a_new_secret_is_masked_in_the_patch(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review("pay", card="4111", amount=5))
        await engine.decide(ALICE, task.id, Decision.modify({"card": "5500", "amount": 5}))
        full = await engine.get(AGENT, task.id)
        assert full.decision is not None and full.decision.args == {"card": "5500", "amount": 5}
        shown = full.redacted().decision
        assert shown is not None
        assert shown.patch == ({"op": "replace", "path": "/card", "value": "[redacted]"},)
        history = " ".join(e.model_dump_json() for e in await engine.history(AGENT, task.id))
        assert "5500" not in history and "4111" not in history

    async def test_the_requester_may_name_fields_too(self, engine: Engine) -> None:
        task = await engine.create(
            AGENT,
            {**review("email", to="a@b.c"), "redact": ["args.to"], "payload": {"ssn": "1"}},
        )
        seen = await engine.get(BOB, task.id)
        assert seen.action is not None and seen.action.args == {"to": "[redacted]"}
        with pytest.raises(ValidationError, match=r"must start with 'args\.'"):
            await engine.create(AGENT, {**review("email"), "redact": ["to"]})


class TestDecisionTokens:
    async def mint(self, engine: Engine, task: Task, who: str = "dave", **kw: Any) -> str:
        token, claims = await engine.mint_decision_token(ADMIN, task.id, who, **kw)
        assert (claims.task_id, claims.reviewer_id) == (task.id, who)
        return token

    async def test_a_token_decides_once(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=500))
        token = await self.mint(engine, task)
        done = await engine.redeem_decision_token(token, {"type": "approve"}, task_id=task.id)
        assert done.status is Status.VERIFIED
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(token, {"type": "approve"}, task_id=task.id)
        assert caught.value.reason == "used"
        submit = [e for e in await engine.history(AGENT, task.id) if e.event is Event.SUBMIT]
        assert submit[0].actor == "dave" and "token_id" in submit[0].data
        kinds = [e.kind for e in await audit(engine)]
        assert kinds.count("token.minted") == 1 and kinds.count("decision.refused") == 1

    async def test_late_mismatched_and_forged_tokens_change_nothing(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        task = await engine.create(AGENT, review(amount=500))
        other = await engine.create(AGENT, review(amount=600))
        token = await self.mint(engine, task, ttl_seconds=60)
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(token, {"type": "approve"}, task_id=other.id)
        assert caught.value.reason == "wrong_task"
        only_reject = await self.mint(engine, task, decision="reject")
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(only_reject, {"type": "approve"})
        assert caught.value.reason == "wrong_decision"
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(forged, {"type": "approve"})
        assert caught.value.reason == "invalid"
        elsewhere = DecisionTokens(b"z" * 32).mint(
            org_id="acme",
            task_id=task.id,
            reviewer_id="dave",
            expires_at=clock.now() + timedelta(hours=1),
        )[0]
        with pytest.raises(TokenRejected):
            await engine.redeem_decision_token(elsewhere, {"type": "approve"})
        clock.advance(61)
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(token, {"type": "approve"})
        assert caught.value.reason == "expired"
        for untouched in (task, other):
            assert (await engine.get(AGENT, untouched.id)).status is Status.POSTED

    @pytest.mark.parametrize("token", ["hrdt_a.é", "hrdt_é.é", "hrdt_a.\u2603"])
    async def test_a_non_ascii_token_is_invalid_not_a_crash(
        self, engine: Engine, token: str
    ) -> None:
        task = await engine.create(AGENT, review(amount=500))
        with pytest.raises(TokenRejected) as caught:
            await engine.redeem_decision_token(token, {"type": "approve"}, task_id=task.id)
        assert caught.value.reason == "invalid"
        assert (await engine.get(AGENT, task.id)).status is Status.POSTED

    async def test_tokens_obey_authority(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=500))  # support: alice, dave
        with pytest.raises(NotEligible):
            await self.mint(engine, task, who="bob")
        with pytest.raises(NotEligible):
            await self.mint(engine, task, who="agent")
        token = await self.mint(engine, task, who="alice")
        await engine.put_group(ADMIN, "support", ["dave"])  # alice leaves before she clicks
        with pytest.raises(NotEligible):
            await engine.redeem_decision_token(token, {"type": "approve"})
        with pytest.raises(PermissionDenied):
            await engine.mint_decision_token(ALICE, task.id, "dave")
        without = Engine(engine.store, clock=engine.clock)
        with pytest.raises(TokenRejected) as caught:
            await without.mint_decision_token(ADMIN, task.id, "dave")
        assert caught.value.reason == "unavailable"


class TestAuditTrail:
    async def test_a_review_leaves_a_verifiable_chain(self, engine: Engine) -> None:
        task = await engine.create(AGENT, review(amount=500))
        await engine.decide(ALICE, task.id, Decision.approve())
        entries = await audit(engine)
        kinds = [e.kind for e in entries]
        assert kinds[:4] == ["policy.updated", "group.updated", "group.updated", "task.create"]
        assert kinds[-3:] == ["task.claim", "task.submit", "task.verify"]
        decided = entries[-2]
        assert decided.actor == "alice" and decided.data["data"]["key_id"] == "k-alice"
        created = entries[3]
        assert created.data["data"]["key_id"] == "k-agent"
        report = await engine.verify_audit(ADMIN)
        assert report.ok and report.checked == len(entries) == report.head_seq
        with pytest.raises(PermissionDenied):
            await engine.verify_audit(ALICE)

    @pytest.mark.parametrize("store", ["memory"], indirect=True)  # SQL: tests/core/test_audit.py
    async def test_tampering_in_memory_is_caught(self, engine: Engine, store: Store) -> None:
        assert isinstance(store, MemoryStore)
        task = await engine.create(AGENT, review(amount=500))
        await engine.decide(DAVE, task.id, Decision.reject("no"))
        chain = store._audit["acme"]
        chain[4] = chain[4].model_copy(update={"actor": "mallory"})
        report = await engine.verify_audit(ADMIN)
        assert (report.ok, report.broken_at) == (False, 5)
        assert "contents do not match" in (report.reason or "")
