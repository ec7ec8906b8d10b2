"""Majorities and Dawid–Skene."""

from __future__ import annotations

import random

import pytest

from handrail.consensus import dawid_skene, majority, weighted_majority


def test_majority_and_ties() -> None:
    vote = majority(["a", "b", "a"])
    assert (vote.label, round(vote.share, 3), vote.tied) == ("a", 0.667, False)
    assert majority(["a", "b"]).tied
    with pytest.raises(ValueError, match="no labels"):
        majority([])


def test_weights_can_overturn_the_head_count() -> None:
    labels = [("novice1", "a"), ("novice2", "a"), ("expert", "b")]
    assert weighted_majority(labels, {}).label == "a"
    vote = weighted_majority(labels, {"novice1": 0.2, "novice2": 0.2, "expert": 0.9})
    assert (vote.label, round(vote.share, 3)) == ("b", 0.692)


def synthetic(
    seed: int, workers: int, items: int, per_item: int, classes: int
) -> tuple[dict[str, float], dict[int, int], list[tuple[int, str, int]]]:
    rng = random.Random(seed)
    accuracy = {f"w{j}": rng.uniform(0.55, 0.95) for j in range(workers)}
    truth: dict[int, int] = {}
    triples = []
    for item in range(items):
        truth[item] = rng.randrange(classes)
        for worker in rng.sample(sorted(accuracy), per_item):
            right = rng.random() < accuracy[worker]
            label = (
                truth[item]
                if right
                else rng.choice([c for c in range(classes) if c != truth[item]])
            )
            triples.append((item, worker, label))
    return accuracy, truth, triples


def test_dawid_skene_recovers_worker_accuracies() -> None:
    """50 workers with accuracies in [0.55, 0.95], 2,000 items, 5 labels each (about 200
    per worker), 4 classes: the estimates land within 0.05 on average and 0.15 at worst,
    and the inferred labels beat a plain majority."""
    accuracy, truth, triples = synthetic(seed=7, workers=50, items=2_000, per_item=5, classes=4)
    result = dawid_skene(triples)
    errors = [abs(result.accuracy[w] - accuracy[w]) for w in accuracy]
    assert result.converged
    assert sum(errors) / len(errors) < 0.05
    assert max(errors) < 0.15
    by_item: dict[int, list[int]] = {}
    for item, _, label in triples:
        by_item.setdefault(item, []).append(label)
    plain = sum(majority(labels).label == truth[i] for i, labels in by_item.items())
    inferred = sum(result.labels[i] == truth[i] for i in truth)
    assert inferred >= plain
    assert inferred / len(truth) > 0.9
    assert all(0.25 <= c <= 1 for c in result.confidence.values())


def test_dawid_skene_needs_labels() -> None:
    with pytest.raises(ValueError, match="no labels"):
        dawid_skene([])
    one = dawid_skene([("i", "w", "x")])
    assert one.labels == {"i": "x"}
