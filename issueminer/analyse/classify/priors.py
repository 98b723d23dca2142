"""What the study already knows, as a prior the model can outvote: the keyword rules.

Most categories of a study have a handful of labelled issues; a model cannot learn them
from so few, while the study's names, aliases, definitions and codebook examples
(`knowledge`, `systems.keyword_rules`) say something about every one. Each label's
probability is a blend of the model's and the rules':

    p(label) = (1 - a) * p_model(label) + a * p_rules(label),   a = m / (m + n_label)

where n_label is the label's number of training issues: a label with many issues follows
the model, a rare one leans on its rule, and a label without training issues (one the
study defines that the training part lacks) is the rules' alone. The pseudo-count m is
chosen by inner cross-validation on the training issues only, among `PSEUDO_COUNTS`: 0
means the model alone, `RULES_ALONE` the rules alone (a guard for training sets too small
to trust a model). The choice maximises the held-out log-likelihood of the true labels,
not their macro-F1: on a few dozen issues macro-F1 moves in large steps with one issue
and picks m by chance, while the likelihood scores every issue's probabilities (measured
on the sample's stages, 3-fold: macro-F1 0.36-0.43 across seeds with the macro-F1 choice,
0.56-0.61 with the likelihood). Small training sets repeat the inner folds with other
shuffles to steady the choice; large ones use `DEFAULT_PSEUDO_COUNT` without inner folds
(their labels have issues enough).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

RULES_ALONE = math.inf  # the pseudo-count that leaves the model out
PSEUDO_COUNTS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, RULES_ALONE)
DEFAULT_PSEUDO_COUNT = 3.0
INNER_FOLDS = 3
INNER_MAX_ISSUES = 1500  # above this, inner folds cost more than a chosen m gains
INNER_REPEATS = 3  # shuffles of the inner folds for training sets up to REPEAT_MAX_ISSUES
REPEAT_MAX_ISSUES = 300
RULE_TIE_BREAK = 1e-3  # no rule fired: the training frequencies decide (as the baseline)
PROBABILITY_FLOOR = 1e-4  # a true label given no probability costs log(1e-4), not infinity

# (labels, frame) -> scores, each row from its issue alone (so rows may be scored at once)
RuleScorer = Callable[[Sequence[str], pd.DataFrame], np.ndarray]


def describe(pseudo_count: float) -> str:
    """What a chosen pseudo-count means, for the model's metadata."""
    if pseudo_count <= 0:
        return "model alone"
    if math.isinf(pseudo_count):
        return "rules alone"
    return f"model and rules (m={pseudo_count:g})"


def rule_proba(
    score: RuleScorer, classes: Sequence[str], counts: np.ndarray, frame: pd.DataFrame
) -> np.ndarray:
    """The keyword rules' scores as probabilities (the keyword baseline's)."""
    return _as_proba(score(classes, frame), counts)


def _as_proba(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rule scores as probabilities: the training frequencies break ties, rows sum to 1."""
    prior = counts / max(counts.sum(), 1)
    out = scores + RULE_TIE_BREAK * prior
    return out / np.maximum(out.sum(axis=1, keepdims=True), np.finfo(float).tiny)


def blend(
    model: np.ndarray, rules: np.ndarray, counts: np.ndarray, pseudo_count: float
) -> np.ndarray:
    if pseudo_count <= 0:
        return model
    if math.isinf(pseudo_count):
        return rules
    share = pseudo_count / (pseudo_count + counts)
    mixed = (1 - share) * model + share * rules
    return mixed / np.maximum(mixed.sum(axis=1, keepdims=True), np.finfo(float).tiny)


def label_counts(classes: Sequence[str], y: Sequence[str]) -> np.ndarray:
    counts = Counter(y)
    return np.array([counts[c] for c in classes], dtype=float)


def choose_pseudo_count(
    fit_proba: Callable[[np.ndarray, np.ndarray], tuple[list[str], np.ndarray]],
    score: RuleScorer,
    frame: pd.DataFrame,
    y: Sequence[str],
    classes: Sequence[str],
    seed: int = 0,
) -> float:
    """The pseudo-count whose blend gives the true labels of inner held-out issues the
    highest log-likelihood.

    `fit_proba(train_rows, test_rows)` fits on the training rows and returns (its classes,
    probabilities of the test rows); `classes` are every label the model may give
    (the training labels and the study's others). Ties go to the smaller pseudo-count.
    """
    if len(y) > INNER_MAX_ISSUES:
        return DEFAULT_PSEUDO_COUNT
    if len(y) < 2 * INNER_FOLDS:
        return RULES_ALONE  # a handful of issues: the rules know more than a model
    labels = np.asarray(y)
    index = {c: i for i, c in enumerate(classes)}
    likelihood = dict.fromkeys(PSEUDO_COUNTS, 0.0)
    # a row's rule scores do not depend on the fold: scored once, not once per repeat
    scored = score(classes, frame)
    repeats = INNER_REPEATS if len(y) <= REPEAT_MAX_ISSUES else 1
    for repeat in range(repeats):
        folds = KFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed + repeat)
        for train, test in folds.split(labels):
            fitted_classes, proba = fit_proba(train, test)
            model = np.zeros((len(test), len(classes)))
            for column, label in enumerate(fitted_classes):
                model[:, index[label]] = proba[:, column]
            counts = label_counts(classes, labels[train].tolist())
            rules = _as_proba(scored[test], counts)
            truth = np.array([index[label] for label in labels[test]])
            for m in PSEUDO_COUNTS:
                right = blend(model, rules, counts, m)[np.arange(len(test)), truth]
                likelihood[m] += float(np.log(np.maximum(right, PROBABILITY_FLOOR)).sum())
    return max(PSEUDO_COUNTS, key=lambda m: (round(likelihood[m], 6), -m))


def prior_part(classes: Sequence[str], y: Sequence[str], pseudo_count: float) -> dict[str, Any]:
    """What a fitted model keeps to blend at prediction time."""
    return {"counts": label_counts(classes, y).tolist(), "pseudo_count": float(pseudo_count)}
