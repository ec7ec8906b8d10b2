"""The verification pipeline: each stage alone, then in the engine, tier by tier."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from handrail import (
    Assignment,
    AssignmentStatus,
    Decision,
    Engine,
    InvalidTransition,
    ManualClock,
    MemoryStore,
    PermissionDenied,
    Principal,
    RiskTier,
    Role,
    Status,
    Task,
)
from handrail.expressions import ExpressionError
from handrail.pipeline import (
    AnomalyStage,
    ConsensusStage,
    Evidence,
    GoldStage,
    Pipeline,
    QaStage,
    Rule,
    RulesStage,
    SchemaStage,
    Thresholds,
    TierPolicy,
    categorical,
)
from handrail.testing import make_task
from handrail.workers import WorkerStats

ORG = "org-a"
AGENT = Principal(org_id=ORG, id="agent", roles=frozenset({Role.REQUESTER}))
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))
W = [Principal(org_id=ORG, id=f"w{i}", roles=frozenset({Role.REVIEWER})) for i in range(6)]
VERDICT = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": list("abcde")}},
}
YESNO = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}


# ---------------------------------------------------------------- stages alone


def evidence(
    task: Task,
    outputs: list[Any],
    *,
    seconds: float = 60.0,
    stats: dict[str, WorkerStats] | None = None,
    crowd: WorkerStats | None = None,
    support: float = 1.0,
    tied: bool = False,
) -> Evidence:
    now = task.created_at
    answers = [
        Assignment(
            worker_id=f"w{i}",
            status=AssignmentStatus.SUBMITTED,
            claimed_at=now,
            submitted_at=now + timedelta(seconds=seconds),
            output=out,
        )
        for i, out in enumerate(outputs)
    ]
    return Evidence(
        task=task,
        answers=answers,
        candidate=outputs[0],
        support=support,
        tied=tied,
        stats=stats or {},
        crowd=crowd or WorkerStats(org_id=ORG, worker_id="*", task_type=task.task_type),
        now=now,
        rng=random.Random(1),
    )


@pytest.fixture
def judgment() -> Task:
    return make_task(
        ManualClock(),
        kind="judgment",
        action=None,
        output_schema=VERDICT,
        allowed_decisions=("approve", "reject", "modify"),
        gold_answer=None,
        assignments=(),
    )


@pytest.fixture
def review() -> Task:
    return make_task(ManualClock(), gold_answer=None, assignments=())


def test_schema_stage(judgment: Task, review: Task) -> None:
    assert SchemaStage().run(evidence(judgment, [{"label": "a"}])).verdict == "pass"
    bad = SchemaStage().run(evidence(judgment, [{"label": "z"}, {"labl": "a"}]))
    assert bad.verdict == "fail" and bad.score == 0
    assert any("$.answers[0].label" in r for r in bad.reasons)
    assert any("$.answers[1]" in r for r in bad.reasons)
    modify = Decision.modify({"order_id": "not a number"}).model_dump(mode="json")
    refused = SchemaStage().run(evidence(review, [modify]))
    assert refused.verdict == "fail" and "$.answers[0].args.order_id" in refused.reasons[0]


def test_rules_stage(judgment: Task) -> None:
    rules = {
        "refund": [Rule('if output.label == "a" then payload.vip == true', "a is for VIPs only")],
        "*": [Rule('output.label != "e"', "e is never right")],
    }
    stage = RulesStage(rules)
    assert stage.run(evidence(judgment, [{"label": "a"}])).verdict == "pass"  # payload.vip
    broken = stage.run(evidence(judgment, [{"label": "e"}]))
    assert (broken.verdict, broken.reasons) == ("fail", ("e is never right",))
    other = judgment.model_copy(update={"task_type": "kyc", "payload": {}})
    assert stage.run(evidence(other, [{"label": "a"}])).verdict == "pass"  # refund rule only
    assert "no rules" in RulesStage().run(evidence(judgment, [{"label": "a"}])).reasons[0]
    with pytest.raises(ExpressionError):
        RulesStage({"*": [Rule("output.label ==", "broken")]})


def test_anomaly_stage(judgment: Task) -> None:
    crowd = WorkerStats(
        org_id=ORG,
        worker_id="*",
        task_type="refund",
        durations=tuple(55.0 + i for i in range(20)),
        labels={'{"label":"a"}': 50, '{"label":"b"}': 50},
    )
    calm = AnomalyStage().run(evidence(judgment, [{"label": "a"}], seconds=60, crowd=crowd))
    assert calm.verdict == "pass"
    rushed = AnomalyStage().run(evidence(judgment, [{"label": "a"}], seconds=2, crowd=crowd))
    assert rushed.verdict == "uncertain" and "answered in 2s; the usual is 64s" in rushed.reasons[0]
    drifter = WorkerStats(
        org_id=ORG, worker_id="w0", task_type="refund", labels={'{"label":"a"}': 30}
    )
    drift = AnomalyStage().run(
        evidence(judgment, [{"label": "a"}], crowd=crowd, stats={"w0": drifter})
    )
    assert drift.verdict == "uncertain" and "drift" in drift.reasons[0]
    assert AnomalyStage().run(evidence(judgment, [{"label": "a"}], seconds=1)).verdict == "pass"
    # a tight spread: 40s is many MADs below 64s, but not far below it
    assert (
        AnomalyStage().run(evidence(judgment, [{"label": "a"}], seconds=40, crowd=crowd)).verdict
        == "pass"
    )


def test_gold_stage(judgment: Task) -> None:
    gold = judgment.model_copy(update={"gold_answer": {"label": "b"}})
    assert GoldStage().run(evidence(gold, [{"label": "b"}])).verdict == "pass"
    missed = GoldStage().run(evidence(gold, [{"label": "c"}]))
    assert (missed.verdict, missed.reasons) == ("fail", ("w0 missed a known answer",))
    weak = WorkerStats(
        org_id=ORG, worker_id="w0", task_type="refund", answers=10, gold_total=10, gold_correct=3
    )
    doubtful = GoldStage().run(evidence(judgment, [{"label": "a"}], stats={"w0": weak}))
    assert doubtful.verdict == "uncertain" and "30% of gold tasks" in doubtful.reasons[0]


def test_consensus_stage(judgment: Task) -> None:
    agree = evidence(judgment, [{"label": "a"}, {"label": "a"}])
    assert ConsensusStage().run(agree).score == 100
    assert (
        ConsensusStage()
        .run(evidence(judgment, [{"label": "a"}, {"label": "b"}], support=0.5, tied=True))
        .verdict
        == "uncertain"
    )
    assert (
        ConsensusStage()
        .run(evidence(judgment, [{"label": "a"}] * 2 + [{"label": "b"}], support=0.95))
        .verdict
        == "pass"
    )
    two_person = ConsensusStage(unanimous=True).run(
        evidence(judgment, [{"label": "a"}, {"label": "a"}, {"label": "b"}], support=0.95)
    )
    assert two_person.verdict == "uncertain" and "two-person rule" in two_person.reasons[0]


def test_qa_stage(judgment: Task) -> None:
    assert QaStage(1.0).run(evidence(judgment, [{"label": "a"}])).verdict == "uncertain"
    assert QaStage(0.0).run(evidence(judgment, [{"label": "a"}])).verdict == "pass"
    with pytest.raises(ValueError, match="between 0 and 1"):
        QaStage(1.5)


def test_categorical_schemas() -> None:
    assert categorical(VERDICT) and categorical(YESNO)
    assert not categorical({"type": "object", "properties": {"note": {"type": "string"}}})


def test_pipeline_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown stages"):
        Pipeline(tiers={RiskTier.LOW: TierPolicy(stages=("schema", "astrology"))})
    with pytest.raises(ValueError, match="answers <= max_answers"):
        Pipeline(tiers={RiskTier.LOW: TierPolicy(stages=("schema",), answers=3, max_answers=2)})
    with pytest.raises(ValueError, match="fail_below"):
        Thresholds(verify_at=40, fail_below=60)


# ---------------------------------------------------------------- in the engine


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def engine_with(clock: ManualClock, **pipeline: Any) -> Engine:
    return Engine(MemoryStore(), clock=clock, verifier=Pipeline(seed=7, **pipeline))


async def answer(engine: Engine, task: Task, worker: Principal, output: Any) -> Task:
    await engine.claim(worker, task.id)
    return await engine.submit(worker, task.id, output)


async def test_low_risk_checks_the_schema_only(clock: ManualClock) -> None:
    engine = engine_with(clock, rules={"*": [Rule("false", "never")]})
    task = await engine.create(
        AGENT, {"kind": "judgment", "output_schema": YESNO, "risk_tier": "low"}
    )
    done = await answer(engine, task, W[0], {"ok": True})
    assert done.status is Status.VERIFIED
    assert done.verification is not None
    assert [s.name for s in done.verification.stages] == ["schema"]


async def test_a_broken_rule_fails_or_reposts(clock: ManualClock) -> None:
    rules = {"*": [Rule("output.ok == true", "ok must be true")]}
    engine = engine_with(clock, rules=rules)
    spec = {"kind": "judgment", "output_schema": YESNO, "max_attempts": 2}
    task = await engine.create(AGENT, spec)
    reposted = await answer(engine, task, W[0], {"ok": False})
    assert (reposted.status, reposted.attempt) == (Status.POSTED, 2)
    failed = await answer(engine, reposted, W[1], {"ok": False})
    assert failed.status is Status.FAILED
    assert failed.failure_reason == "rules: ok must be true"
    assert failed.verification is not None and failed.verification.score == 0


async def test_high_risk_wants_agreeing_answers(clock: ManualClock) -> None:
    engine = engine_with(clock)
    spec = {"kind": "judgment", "output_schema": VERDICT, "risk_tier": "high"}
    task = await engine.create(AGENT, spec)
    assert (task.redundancy, task.max_answers) == (2, 3)
    await answer(engine, task, W[0], {"label": "a"})
    split = await answer(engine, task, W[1], {"label": "b"})
    assert (split.status, split.redundancy) == (Status.POSTED, 3)  # one more answer wanted
    done = await answer(engine, split, W[2], {"label": "a"})
    # 2 of 3 reliable-looking workers on 5 labels: a Dawid–Skene posterior of 12/13
    assert (done.status, done.output) == (Status.VERIFIED, {"label": "a"})
    assert done.verification is not None and done.verification.score == pytest.approx(92.31, 0.01)
    agreeing = await engine.create(AGENT, spec)
    await answer(engine, agreeing, W[0], {"label": "c"})
    assert (await answer(engine, agreeing, W[1], {"label": "c"})).status is Status.VERIFIED


async def test_answers_that_stay_split_go_to_a_person(clock: ManualClock) -> None:
    engine = engine_with(clock)
    task = await engine.create(
        AGENT, {"kind": "judgment", "output_schema": YESNO, "risk_tier": "high"}
    )
    await answer(engine, task, W[0], {"ok": True})
    await answer(engine, task, W[1], {"ok": False})
    last = await answer(engine, await engine.get(AGENT, task.id), W[2], {"ok": True})
    # yes/no: two against one is a posterior of 0.75, short of 90
    assert last.status is Status.MANUAL_REVIEW
    assert last.verification is not None and "consensus" in last.verification.reasons[0]


async def test_critical_reviews_need_two_people_who_agree(clock: ManualClock) -> None:
    engine = engine_with(
        clock,
        tiers={
            **Pipeline().tiers,
            RiskTier.CRITICAL: TierPolicy(stages=("schema", "consensus"), two_person_reviews=True),
        },
    )
    spec = {"kind": "review", "action": {"name": "wire_money"}, "risk_tier": "critical"}
    task = await engine.create(AGENT, spec)
    assert task.redundancy == 2
    first = await engine.decide(W[0], task.id, Decision.approve())
    assert first.status is Status.ASSIGNED  # one person is not enough
    with pytest.raises(InvalidTransition):
        await engine.decide(W[0], task.id, Decision.reject("changed my mind"))
    done = await engine.decide(W[1], task.id, Decision.approve())
    assert done.status is Status.VERIFIED
    split = await engine.create(AGENT, spec)
    await engine.decide(W[0], split.id, Decision.approve())
    second = await engine.decide(W[1], split.id, Decision.reject("no"))
    assert second.status is Status.MANUAL_REVIEW


async def test_qa_samples_go_to_manual_review(clock: ManualClock) -> None:
    always = TierPolicy(stages=("schema", "qa"), qa_rate=1.0)
    engine = engine_with(clock, tiers={**Pipeline().tiers, RiskTier.MEDIUM: always})
    task = await engine.create(AGENT, {"kind": "judgment", "output_schema": YESNO})
    done = await answer(engine, task, W[0], {"ok": True})
    assert done.status is Status.MANUAL_REVIEW
    assert done.verification is not None
    assert done.verification.reasons == ("qa: picked for a QA spot check (100% of this tier)",)


async def test_thresholds_are_configurable(clock: ManualClock) -> None:
    strict = engine_with(clock, thresholds=Thresholds(verify_at=95))
    spec = {"kind": "judgment", "output_schema": VERDICT, "risk_tier": "high"}
    task = await strict.create(AGENT, spec)
    await answer(strict, task, W[0], {"label": "a"})
    await answer(strict, task, W[1], {"label": "b"})
    done = await answer(strict, await strict.get(AGENT, task.id), W[2], {"label": "a"})
    assert done.status is Status.MANUAL_REVIEW  # 92 no longer clears the bar


async def test_gold_tasks_measure_workers_unseen(clock: ManualClock) -> None:
    engine = engine_with(clock)
    with pytest.raises(PermissionDenied):
        await engine.create(
            AGENT, {"kind": "judgment", "output_schema": VERDICT, "gold_answer": {"label": "b"}}
        )
    gold_spec = {
        "kind": "judgment",
        "output_schema": VERDICT,
        "task_type": "refund",
        "gold_answer": {"label": "b"},
    }
    seen_by_worker = []
    for worker, label in ((W[0], "b"), (W[1], "c")):
        gold = await engine.create(ADMIN, gold_spec)
        (queued,) = await engine.queue(worker)
        claimed = await engine.claim(worker, gold.id)
        seen_by_worker += [queued.gold_answer, claimed.gold_answer]
        done = await engine.submit(worker, gold.id, {"label": label})
        assert done.status is (Status.VERIFIED if label == "b" else Status.FAILED)
        assert (await engine.get(ADMIN, gold.id)).gold_answer == {"label": "b"}
    assert seen_by_worker == [None] * 4
    real = await engine.create(AGENT, {**gold_spec, "gold_answer": None, "idempotency_key": "k"})
    gold = await engine.create(ADMIN, gold_spec)
    as_seen = [
        (await engine.get(W[2], t.id)).model_dump(
            include={"created_by", "idempotency_key", "gold_answer", "callback_url"}
        )
        for t in (real, gold)
    ]
    assert as_seen[0] == as_seen[1]
    right = await engine.worker_stats(ADMIN, "w0")
    wrong = await engine.worker_stats(W[1], "w1")
    assert [(s.gold_total, s.gold_correct) for s in right] == [(1, 1)]
    assert [(s.gold_total, s.gold_correct) for s in wrong] == [(1, 0)]
    assert right[0].reliability > wrong[0].reliability
    with pytest.raises(PermissionDenied):
        await engine.worker_stats(W[1], "w0")


async def test_outcomes_teach_the_engine(clock: ManualClock) -> None:
    engine = engine_with(clock)
    for _ in range(3):
        task = await engine.create(
            AGENT, {"kind": "judgment", "output_schema": YESNO, "task_type": "spam"}
        )
        await engine.claim(W[0], task.id)
        clock.advance(30)
        await engine.submit(W[0], task.id, {"ok": True})
    (mine,) = await engine.worker_stats(W[0], "w0")
    assert (mine.task_type, mine.answers, mine.agreed, mine.durations) == (
        "spam",
        3,
        3,
        (30.0,) * 3,
    )
    assert mine.labels == {'{"ok":true}': 3}
    async with engine.store.transaction(readonly=True) as tx:
        crowd = await tx.crowd_stats(ORG, "spam")
        nobody = await tx.crowd_stats(ORG, "kyc")
    assert (crowd.answers, crowd.median_duration, crowd.labels) == (3, 30.0, {'{"ok":true}': 3})
    assert (nobody.answers, nobody.durations, nobody.labels) == (0, (), {})


async def test_profiles_limit_what_workers_take(clock: ManualClock) -> None:
    engine = engine_with(clock)
    await engine.put_worker(
        ADMIN, {"id": "w0", "skills": ["spam"], "trust_tier": "medium", "capacity": 1}
    )
    spam = await engine.create(
        AGENT, {"kind": "judgment", "output_schema": YESNO, "task_type": "spam"}
    )
    kyc = await engine.create(
        AGENT, {"kind": "judgment", "output_schema": YESNO, "task_type": "kyc"}
    )
    risky = await engine.create(
        AGENT,
        {"kind": "judgment", "output_schema": YESNO, "task_type": "spam", "risk_tier": "high"},
    )
    assert [t.id for t in await engine.queue(W[0])] == [spam.id]
    with pytest.raises(PermissionDenied, match="does not cover 'kyc'"):
        await engine.claim(W[0], kyc.id)
    with pytest.raises(PermissionDenied, match="at high risk"):
        await engine.claim(W[0], risky.id)
    await engine.claim(W[0], spam.id)
    other = await engine.create(
        AGENT, {"kind": "judgment", "output_schema": YESNO, "task_type": "spam"}
    )
    assert await engine.queue(W[0]) == []  # at capacity
    with pytest.raises(PermissionDenied, match="holds 1 of 1"):
        await engine.claim(W[0], other.id)
    assert {t.id for t in await engine.queue(W[1])} == {kyc.id, risky.id, other.id}  # no profile
    profile = await engine.put_worker(ADMIN, {"id": "w0", "skills": ["spam"], "capacity": 2})
    assert profile.version == 2
    assert [p.id for p in await engine.list_workers(ADMIN)] == ["w0"]
    assert (await engine.get_worker(W[0], "w0")).capacity == 2
    with pytest.raises(PermissionDenied):
        await engine.list_workers(W[0])
