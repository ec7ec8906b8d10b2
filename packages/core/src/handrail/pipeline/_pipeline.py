"""``Pipeline``: the configurable verifier. Which stages run depends on the risk tier."""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import JsonValue

from ..consensus import majority, weighted_majority
from ..lifecycle import Event, Status
from ..models import Assignment, Kind, RiskTier, StageResult, Task, Verification
from ..workers import AnswerSample, WorkerStats
from ._evidence import Evidence, Stage, categorical, label_of
from .stages import AnomalyStage, ConsensusStage, GoldStage, QaStage, Rule, RulesStage, SchemaStage

if TYPE_CHECKING:  # the store imports models the pipeline uses: no cycle at run time
    from ..store import Transaction

__all__ = ["DEFAULT_TIERS", "Pipeline", "Thresholds", "TierPolicy"]

Method = Literal["majority", "weighted", "dawid_skene"]


@dataclass(frozen=True)
class TierPolicy:
    """What a risk tier demands: its stages, how many independent answers a judgment gets
    (``answers``) and may grow to when they disagree (``max_answers``), the QA sampling
    rate, and whether a review needs two reviewers who agree (the two-person rule)."""

    stages: tuple[str, ...]
    answers: int = 1
    max_answers: int = 1
    qa_rate: float = 0.0
    two_person_reviews: bool = False
    consensus: Method = "dawid_skene"


DEFAULT_TIERS: Mapping[RiskTier, TierPolicy] = {
    RiskTier.LOW: TierPolicy(stages=("schema",)),
    RiskTier.MEDIUM: TierPolicy(stages=("schema", "rules", "anomaly")),
    RiskTier.HIGH: TierPolicy(
        stages=("schema", "rules", "anomaly", "gold", "consensus"), answers=2, max_answers=3
    ),
    RiskTier.CRITICAL: TierPolicy(
        stages=("schema", "rules", "anomaly", "gold", "consensus", "qa"),
        answers=3,
        max_answers=5,
        qa_rate=0.1,
        two_person_reviews=True,
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """The combined score (the weakest stage's) decides: at or above ``verify_at``
    verified, below ``fail_below`` failed (re-posted while attempts remain), between them
    manual review."""

    verify_at: float = 90.0
    fail_below: float = 50.0

    def __post_init__(self) -> None:
        if not 0 <= self.fail_below <= self.verify_at <= 100:
            raise ValueError("need 0 <= fail_below <= verify_at <= 100")


@dataclass
class Pipeline:
    """The verification pipeline (a ``Verifier``): schema, rules, anomaly, gold, consensus
    and QA stages, chosen per risk tier.

    ``rules`` maps task types (``"*"`` for all) to :class:`Rule` lists. ``seed`` makes QA
    sampling repeatable.
    """

    tiers: Mapping[RiskTier, TierPolicy] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    thresholds: Thresholds = field(default_factory=Thresholds)
    rules: Mapping[str, Sequence[Rule]] = field(default_factory=dict)
    anomaly: AnomalyStage = field(default_factory=AnomalyStage)
    gold: GoldStage = field(default_factory=GoldStage)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._rules = RulesStage(self.rules)
        known = {"schema", "rules", "anomaly", "gold", "consensus", "qa"}
        for tier, policy in self.tiers.items():
            unknown = set(policy.stages) - known
            if unknown:
                raise ValueError(f"{tier} names unknown stages: {sorted(unknown)}")
            if not 1 <= policy.answers <= policy.max_answers:
                raise ValueError(f"{tier}: need 1 <= answers <= max_answers")

    def _stages(self, task: Task, policy: TierPolicy) -> list[Stage]:
        two_person = task.kind is Kind.REVIEW and policy.two_person_reviews
        by_name: dict[str, Stage] = {
            "schema": SchemaStage(),
            "rules": self._rules,
            "anomaly": self.anomaly,
            "gold": self.gold,
            "consensus": ConsensusStage(unanimous=two_person),
            "qa": QaStage(policy.qa_rate),
        }
        names = list(policy.stages)
        if task.gold_answer is not None and "gold" not in names:
            names.append("gold")  # a known answer is always checked
        if len(task.answers()) > 1 and "consensus" not in names:
            names.append("consensus")  # so is agreement, whenever there are several answers
        return [by_name[n] for n in names]

    def plan(self, task: Task) -> Task:
        """Set how many answers the task wants, and may grow to, for its tier."""
        policy = self.tiers[task.risk_tier]
        if task.kind is Kind.REVIEW:
            wanted = max(task.redundancy, 2 if policy.two_person_reviews else 1)
            cap = max(task.max_answers, wanted)
        else:
            wanted = max(task.redundancy, policy.answers)
            cap = max(task.max_answers, policy.max_answers, wanted)
        if wanted == task.redundancy and cap == task.max_answers:
            return task  # as it was: no new version
        return task.model_copy(update={"redundancy": wanted, "max_answers": cap})

    async def verify(self, tx: Transaction, task: Task) -> Verification:
        policy = self.tiers[task.risk_tier]
        answers = list(task.answers())
        workers = [a.worker_id for a in answers]
        stats = await tx.worker_stats(task.org_id, task.task_type, workers)
        crowd = await tx.crowd_stats(task.org_id, task.task_type)
        candidate, support, tied = _consensus(task, answers, stats, policy.consensus)
        evidence = Evidence(
            task=task,
            answers=answers,
            candidate=candidate,
            support=support,
            tied=tied,
            stats=stats,
            crowd=crowd,
            now=task.updated_at,
            rng=self._rng,
        )
        results = tuple(stage.run(evidence) for stage in self._stages(task, policy))
        return self._decide(task, results, candidate)

    # ---------------------------------------------------------------- learning (a Hook)

    async def on_create(self, tx: Transaction, task: Task) -> None:
        return None

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        """When answers are judged (verified or failed out of verification or manual
        review), record for each worker its time on task, the answer's category, agreement
        with the outcome and gold accuracy; and add the answers to the task type's crowd
        record (append-only samples)."""
        judged = before.status in (Status.SUBMITTED, Status.MANUAL_REVIEW)
        if not judged or after.status not in (Status.VERIFIED, Status.FAILED):
            return
        answers = after.answers()
        if not answers:
            return
        final = after.answer_key(after.output) if after.status is Status.VERIFIED else None
        gold = after.answer_key(after.gold_answer) if after.gold_answer is not None else None
        for answer in answers:
            key = after.answer_key(answer.output)
            seconds = (
                (answer.submitted_at - answer.claimed_at).total_seconds()
                if answer.submitted_at is not None
                else None
            )
            sample = AnswerSample(
                org_id=after.org_id,
                task_type=after.task_type,
                worker_id=answer.worker_id,
                seconds=seconds,
                label=label_of(after, answer.output),
                at=after.updated_at,
            )
            await tx.learn(
                sample, gold=(key == gold) if gold is not None else None, agreed=key == final
            )

    def _decide(
        self, task: Task, results: tuple[StageResult, ...], candidate: JsonValue
    ) -> Verification:
        score = min((r.score for r in results), default=100.0)
        reasons = tuple(
            f"{r.name}: {why}" for r in results if r.verdict != "pass" for why in r.reasons
        )
        split = any(r.name == "consensus" and r.verdict == "uncertain" for r in results)
        hard_fail = any(r.verdict == "fail" for r in results)
        if split and not hard_fail and len(task.answers()) < task.max_answers:
            outcome: Literal["verified", "failed", "manual_review", "repost", "more_answers"]
            outcome = "more_answers"
        elif score >= self.thresholds.verify_at:
            outcome = "verified"
        elif score < self.thresholds.fail_below:
            outcome = "repost" if task.attempt < task.max_attempts else "failed"
        else:
            outcome = "manual_review"
        return Verification(
            outcome=outcome, score=score, stages=results, output=candidate, reasons=reasons
        )


def _consensus(
    task: Task, answers: Sequence[Assignment], stats: Mapping[str, WorkerStats], method: Method
) -> tuple[JsonValue, float, bool]:
    """The proposed answer, how strongly the answers back it, and whether it is a tie."""
    if not answers:
        raise ValueError("nothing to verify: no answers")
    first: dict[str, JsonValue] = {}
    keyed = []
    for a in answers:
        key = task.answer_key(a.output)
        first.setdefault(key, a.output)
        keyed.append((a.worker_id, key))
    if len(first) == 1:
        return answers[0].output, 1.0, False
    accuracy: dict[Hashable, float] = {
        w: min(max(s.reliability, 0.01), 0.99) for w, s in stats.items()
    }
    if method == "majority":
        vote = majority([k for _, k in keyed])
        return first[vote.label], vote.share, vote.tied
    if method == "weighted":
        weighted = weighted_majority(keyed, accuracy)
        return first[weighted.label], weighted.share, weighted.tied
    # one-coin Dawid–Skene posterior for this one item, given each worker's accuracy
    classes = max(len(first), _category_count(task) or 0, 2)
    logp = dict.fromkeys(first, 0.0)
    for worker, given in keyed:
        right = accuracy.get(worker, 0.75)
        for k in logp:
            logp[k] += math.log(right) if k == given else math.log((1 - right) / (classes - 1))
    top = max(logp.values())
    weights = {k: math.exp(v - top) for k, v in logp.items()}
    total = sum(weights.values())
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])
    tied = len(ranked) > 1 and math.isclose(ranked[0][1], ranked[1][1])
    return first[ranked[0][0]], ranked[0][1] / total, tied


def _category_count(task: Task) -> int | None:
    """How many different answers the task allows, when that is a small number."""
    if task.kind is Kind.REVIEW:
        return len(task.allowed_decisions)
    return _categories(task.output_schema)


def _categories(schema: JsonValue) -> int | None:
    if not isinstance(schema, dict) or not categorical(schema):
        return None
    options = schema.get("enum")
    if isinstance(options, list):
        return len(options)
    if "const" in schema:
        return 1
    if schema.get("type") == "boolean":
        return 2
    props = schema.get("properties")
    count = 1
    for prop in props.values() if isinstance(props, dict) else ():
        n = _categories(prop)
        if n is None:
            return None
        count *= n
    return count
