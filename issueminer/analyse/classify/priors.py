"""What the study already knows, as a prior the model can outvote: the keyword rules.

Most categories of a study have a handful of labelled issues; a model cannot learn them
from so few, while the taxonomy's names, aliases and definitions (`systems.keyword_rules`)
say something about every one. Each label's probability is a blend of the model's and the
rules':

    p(label) = (1 - a) * p_model(label) + a * p_rules(label),   a = m / (m + n_label)

where n_label is the label's number of training issues: a label with many issues follows
the model, a rare one leans on its rule. The pseudo-count m is chosen by inner
cross-validation on the training issues only (macro-F1 of the blended choice), among
`PSEUDO_COUNTS`; 0 means the rules add nothing. Large training sets use
`DEFAULT_PSEUDO_COUNT` without inner folds (their labels have issues enough).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold

PSEUDO_COUNTS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_PSEUDO_COUNT = 3.0
INNER_FOLDS = 3
INNER_MAX_ISSUES = 1500  # above this, inner folds cost more than a chosen m gains
RULE_TIE_BREAK = 1e-3  # no rule fired: the training frequencies decide (as the baseline)

RuleScorer = Callable[[Sequence[str], pd.DataFrame], np.ndarray]  # (labels, frame) -> scores


def rule_proba(
    score: RuleScorer, classes: Sequence[str], counts: np.ndarray, frame: pd.DataFrame
) -> np.ndarray:
    """The keyword rules' scores as probabilities (the keyword baseline's)."""
    prior = counts / max(counts.sum(), 1)
    out = score(classes, frame) + RULE_TIE_BREAK * prior
    return out / np.maximum(out.sum(axis=1, keepdims=True), np.finfo(float).tiny)


def blend(
    model: np.ndarray, rules: np.ndarray, counts: np.ndarray, pseudo_count: float
) -> np.ndarray:
    if pseudo_count <= 0:
        return model
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
    """The pseudo-count whose blend scores the best inner cross-validated macro-F1.

    `fit_proba(train_rows, test_rows)` fits on the training rows and returns (its classes,
    probabilities of the test rows). Ties go to the smaller pseudo-count.
    """
    if len(y) > INNER_MAX_ISSUES:
        return DEFAULT_PSEUDO_COUNT
    if len(y) < 2 * INNER_FOLDS:
        return PSEUDO_COUNTS[-1]  # a handful of issues: the rules know more than a model
    labels = np.asarray(y)
    index = {c: i for i, c in enumerate(classes)}
    choices = {m: np.empty(len(labels), dtype=object) for m in PSEUDO_COUNTS}
    folds = KFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(labels):
        fitted_classes, proba = fit_proba(train, test)
        model = np.zeros((len(test), len(classes)))
        for column, label in enumerate(fitted_classes):
            model[:, index[label]] = proba[:, column]
        counts = label_counts(classes, labels[train].tolist())
        rules = rule_proba(score, classes, counts, frame.iloc[test])
        for m in PSEUDO_COUNTS:
            picked = blend(model, rules, counts, m).argmax(axis=1)
            choices[m][test] = [classes[i] for i in picked]
    present = sorted(set(labels))

    def quality(m: float) -> float:
        return float(f1_score(labels, choices[m], labels=present, average="macro", zero_division=0))

    return max(PSEUDO_COUNTS, key=lambda m: (round(quality(m), 9), -m))


def prior_part(classes: Sequence[str], y: Sequence[str], pseudo_count: float) -> dict[str, Any]:
    """What a fitted model keeps to blend at prediction time."""
    return {"counts": label_counts(classes, y).tolist(), "pseudo_count": float(pseudo_count)}
