"""Consensus over several workers' answers: majority, reliability-weighted majority, and
one-coin Dawid–Skene.

One-coin Dawid–Skene (Dawid & Skene 1979, with one accuracy per worker rather than a full
confusion matrix) estimates, from many items each labelled by a few workers, how often each
worker is right and which label each item most likely has. It runs expectation-maximisation
from a majority-vote start:

- E-step: ``log P(item i has class k) = log prior_k + Σ over i's labels of
  log a_w if the label is k, else log((1 - a_w) / (K - 1))``;
- M-step: ``a_w = (Σ P(item has the label w gave) + α) / (labels by w + α + β)``
  (a Beta(α, β) prior keeps a worker with few labels near the prior mean), and the class
  priors are the mean posteriors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DawidSkene", "Vote", "dawid_skene", "majority", "weighted_majority"]

L = TypeVar("L", bound=Hashable)
ItemT = TypeVar("ItemT", bound=Hashable)
WorkerT = TypeVar("WorkerT", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Vote(Generic[L]):
    """The winning label and its share of the (weighted) vote, 0..1; ``tied`` when another
    label has the same weight."""

    label: L
    share: float
    tied: bool


def weighted_majority(
    labels: Sequence[tuple[Hashable, L]], weights: Mapping[Hashable, float]
) -> Vote[L]:
    """The label with the most weight; each worker's vote counts ``weights[worker]``
    (default 1). ``labels`` pairs each worker with its label."""
    if not labels:
        raise ValueError("no labels to vote on")
    tally: dict[L, float] = {}
    for worker, label in labels:
        tally[label] = tally.get(label, 0.0) + max(weights.get(worker, 1.0), 0.0)
    total = sum(tally.values())
    ranked = sorted(tally.items(), key=lambda kv: -kv[1])
    label, weight = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == weight
    return Vote(label, weight / total if total else 0.0, tied)


def majority(labels: Sequence[L]) -> Vote[L]:
    """Plain majority: every label counts one."""
    counts = Counter(labels)
    if not counts:
        raise ValueError("no labels to vote on")
    (label, n), *rest = counts.most_common()
    return Vote(label, n / len(labels), bool(rest) and rest[0][1] == n)


@dataclass(frozen=True)
class DawidSkene(Generic[ItemT, WorkerT, L]):
    accuracy: dict[WorkerT, float]
    """Each worker's estimated probability of giving the true label."""
    labels: dict[ItemT, L]
    """Each item's most likely label."""
    confidence: dict[ItemT, float]
    """The posterior probability of that label."""
    iterations: int
    converged: bool


def dawid_skene(
    labels: Iterable[tuple[ItemT, WorkerT, L]],
    *,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
    prior: tuple[float, float] = (2.0, 1.0),
) -> DawidSkene[ItemT, WorkerT, L]:
    """One-coin Dawid–Skene over ``(item, worker, label)`` triples (see the module docs).

    ``prior`` is the Beta(α, β) prior on accuracies (default: mean 2/3). Stops when no
    accuracy moves by more than ``tolerance``.
    """
    import numpy as np  # noqa: PLC0415 - here, not at import: `import handrail` stays light

    triples = list(labels)
    if not triples:
        raise ValueError("no labels")
    items = {i: n for n, i in enumerate(dict.fromkeys(t[0] for t in triples))}
    workers = {w: n for n, w in enumerate(dict.fromkeys(t[1] for t in triples))}
    classes = {c: n for n, c in enumerate(dict.fromkeys(t[2] for t in triples))}
    n_items, n_workers, k = len(items), len(workers), len(classes)
    it = np.fromiter((items[t[0]] for t in triples), dtype=np.int64, count=len(triples))
    wk = np.fromiter((workers[t[1]] for t in triples), dtype=np.int64, count=len(triples))
    lb = np.fromiter((classes[t[2]] for t in triples), dtype=np.int64, count=len(triples))
    cell = it * k + lb

    # start from the (soft) majority vote
    post = np.bincount(cell, minlength=n_items * k).reshape(n_items, k).astype(float)
    post /= post.sum(axis=1, keepdims=True)
    alpha, beta = prior
    per_worker = np.bincount(wk, minlength=n_workers).astype(float)
    accuracy = np.full(n_workers, alpha / (alpha + beta))
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported below
        # M-step
        agree = np.bincount(wk, weights=post[it, lb], minlength=n_workers)
        new = (agree + alpha) / (per_worker + alpha + beta)
        new = np.clip(new, 1e-6, 1 - 1e-6)
        class_prior = np.clip(post.mean(axis=0), 1e-9, None)
        shift = float(np.max(np.abs(new - accuracy)))
        accuracy = new
        # E-step
        right = np.log(accuracy[wk])
        wrong = np.log((1 - accuracy[wk]) / max(k - 1, 1))
        logp = np.tile(np.log(class_prior), (n_items, 1))
        logp += np.bincount(it, weights=wrong, minlength=n_items)[:, None]
        logp += np.bincount(cell, weights=right - wrong, minlength=n_items * k).reshape(n_items, k)
        logp -= logp.max(axis=1, keepdims=True)
        post = np.exp(logp)
        post /= post.sum(axis=1, keepdims=True)
        if shift < tolerance:
            converged = True
            break
    by_index = list(classes)
    best = post.argmax(axis=1)
    return DawidSkene(
        accuracy={w: float(accuracy[n]) for w, n in workers.items()},
        labels={i: by_index[best[n]] for i, n in items.items()},
        confidence={i: float(post[n, best[n]]) for i, n in items.items()},
        iterations=iterations,
        converged=converged,
    )
