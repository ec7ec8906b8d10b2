"""The verification pipeline: no payment moves and no agent acts on an answer until it
passes. Stages (schema, rules, anomaly, gold, consensus, QA) behind one small ``Stage``
protocol, chosen per risk tier; the weakest stage's score decides the outcome."""

from ._evidence import Evidence, Stage, categorical, label_of
from ._pipeline import DEFAULT_TIERS, Pipeline, Thresholds, TierPolicy
from .stages import (
    AnomalyStage,
    ConsensusStage,
    GoldStage,
    QaStage,
    Rule,
    RulesStage,
    SchemaStage,
)

__all__ = [
    "DEFAULT_TIERS",
    "AnomalyStage",
    "ConsensusStage",
    "Evidence",
    "GoldStage",
    "Pipeline",
    "QaStage",
    "Rule",
    "RulesStage",
    "SchemaStage",
    "Stage",
    "Thresholds",
    "TierPolicy",
    "categorical",
    "label_of",
]
