"""Fix patterns: several labels per issue, with probabilities that mean what they say.

One logistic regression per pattern, without class weights: balanced weights raise every
rare pattern's probability toward one half, and a fixed 0.5 cut-off then predicts three
patterns where the thread has one. Instead:

1. inner cross-validation on the training issues only gives every training issue
   probabilities from models that never saw it;
2. a sigmoid (Platt) map fitted on those probabilities calibrates them (one map for all
   patterns: most patterns have too few issues for a map of their own);
3. the decision rule, a probability threshold, "the most probable patterns up to a share
   of the probability mass", "as many patterns as the issue's calibrated probabilities
   add up to" or "the most probable alone", is the candidate with the best mean
   per-issue F1 on those same out-of-fold probabilities among the candidates that
   predict about as many patterns per issue as the issues have (`COUNT_TOLERANCE`),
   fewer patterns winning a tie;
4. with the taxonomy's keyword rules, each pattern's probability leans on its rule by
   m / (m + n_pattern) before calibration; m is chosen with steps 2 and 3 by the
   log-likelihood of the calibrated out-of-fold probabilities (the smallest m on a tie),
   so rare patterns can borrow from the rules, and the study's patterns no training
   issue has are given by their rules alone.

The outer evaluation's test fold is never seen by any of these steps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import MultiLabelBinarizer

INNER_FOLDS = 3  # out-of-fold probabilities for calibration and the rule
THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
MASSES = (0.5, 0.6, 0.7, 0.8, 0.9)
THRESHOLD, MASS, EXPECTED = "threshold", "mass", "expected"
# "expected": the k most probable patterns, k the issue's expected number of patterns
# (the sum of its calibrated probabilities, rounded, at least 1); with threshold 1.0 (the
# most probable pattern alone) it needs nothing fitted but the calibration
FIXED_RULES = ((EXPECTED, 0.0), (THRESHOLD, 1.0))
DEFAULT_RULE = (THRESHOLD, 0.5)  # models saved before rules were chosen
# A rule may predict at most this many more (or fewer) patterns per issue on the inner
# out-of-fold issues than they truly have: per-issue F1 rewards a second guess whenever
# the first is often wrong, which is the case on a few dozen issues, and then every
# issue gets two or three patterns where it has one.
COUNT_TOLERANCE = 0.15
EPSILON = 1e-6  # keeps logits finite at probabilities of exactly 0 or 1
MIN_INNER_ISSUES = 6  # fewer training issues: no inner folds, the default rule
# the keyword prior's weights tried (see priors), the last the rules alone
PSEUDO_COUNTS = (0.0, 1.0, 3.0, 10.0, 30.0, math.inf)
# (pattern names, training counts) -> the keyword rules' probability of each pattern, per row
RuleProba = Callable[[Sequence[str], np.ndarray], np.ndarray]


def decide(
    probabilities: np.ndarray, rule: Sequence[Any] = DEFAULT_RULE, order: np.ndarray | None = None
) -> np.ndarray:
    """The chosen patterns per row (always at least the most probable one); `order` is
    each row's columns by falling probability, when the caller has sorted already."""
    kind, value = rule[0], float(rule[1])
    rows = np.arange(len(probabilities))
    if kind in (MASS, EXPECTED):
        if order is None:
            order = np.argsort(-probabilities, axis=1, kind="stable")
        ranked = np.take_along_axis(probabilities, order, axis=1)
        if kind == MASS:
            shares = ranked / np.maximum(ranked.sum(axis=1, keepdims=True), EPSILON)
            before = np.cumsum(shares, axis=1) - shares  # the mass of the better-ranked ones
            keep_ranked = before < value
        else:
            expected = np.maximum(np.rint(ranked.sum(axis=1, keepdims=True)), 1)
            keep_ranked = np.arange(ranked.shape[1]) < expected
        chosen = np.zeros_like(probabilities, dtype=bool)
        np.put_along_axis(chosen, order, keep_ranked, axis=1)
    else:
        chosen = probabilities >= value
    if len(probabilities):
        chosen[rows, probabilities.argmax(axis=1)] = True
    return chosen


def samples_f1(truth: np.ndarray, chosen: np.ndarray) -> float:
    """Mean per-issue F1 between true and chosen pattern sets."""
    hits = (truth & chosen).sum(axis=1)
    sizes = truth.sum(axis=1) + chosen.sum(axis=1)
    return float(np.mean(np.where(sizes > 0, 2 * hits / np.maximum(sizes, 1), 1.0)))


def choose_rule(probabilities: np.ndarray, truth: np.ndarray) -> tuple[str, float]:
    """The candidate rule with the best mean per-issue F1 among those that predict about
    as many patterns per issue as the issues have (`COUNT_TOLERANCE`); ties go to fewer
    patterns. When none does, the one whose count comes closest."""
    candidates = [*FIXED_RULES, *((THRESHOLD, t) for t in THRESHOLDS)]
    candidates += [(MASS, m) for m in MASSES]
    true_mean = float(truth.sum(axis=1).mean()) if len(truth) else 1.0

    # sorted once for every ranked rule (each would sort the same rows again)
    order = np.argsort(-probabilities, axis=1, kind="stable")

    def key(rule: tuple[str, float]) -> tuple[bool, float, float]:
        chosen = decide(probabilities, rule, order)
        gap = abs(float(chosen.sum(axis=1).mean()) - true_mean) if len(chosen) else 0.0
        close = gap <= COUNT_TOLERANCE
        quality = round(samples_f1(truth, chosen), 9) if close else -gap
        return close, quality, -float(chosen.sum())

    return max(candidates, key=key)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def fit_calibration(probabilities: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(a, b) of the sigmoid map p -> 1 / (1 + exp(-(a * logit(p) + b))), all patterns pooled."""
    x, y = _logit(probabilities).reshape(-1, 1), truth.reshape(-1)
    if y.min() == y.max():
        return 1.0, 0.0
    platt = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


def calibrate(probabilities: np.ndarray, calibration: Sequence[float] | None) -> np.ndarray:
    if calibration is None:
        return probabilities
    a, b = calibration
    return 1.0 / (1.0 + np.exp(-(a * _logit(probabilities) + b)))


def _out_of_fold(
    make: Callable[[], Any], matrix: Any, indicator: np.ndarray, seed: int
) -> np.ndarray | None:
    """Each training issue's probabilities from a model fitted on the other inner folds."""
    if indicator.shape[0] < MIN_INNER_ISSUES:
        return None
    found = np.zeros(indicator.shape, dtype=float)
    folds = KFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(indicator):
        part = indicator[train]
        present = part.any(axis=0) & ~part.all(axis=0)
        if not present.any():
            found[np.ix_(test, np.flatnonzero(part.all(axis=0)))] = 1.0
            continue
        model = make().fit(matrix[train], part[:, present].astype(int))
        found[np.ix_(test, np.flatnonzero(present))] = _positive(
            model.predict_proba(matrix[test]), int(present.sum())
        )
        # a pattern on every (or no) inner training issue is certain (impossible) there
        found[np.ix_(test, np.flatnonzero(part.all(axis=0)))] = 1.0
    return found


def _positive(probabilities: np.ndarray, patterns: int) -> np.ndarray:
    """One column per pattern (a one-pattern problem is binary: its last column is "yes")."""
    return probabilities[:, -1:] if patterns == 1 else probabilities


def fit_multilabel(
    make: Callable[[], Any],
    matrix: Any,
    y: Sequence[tuple[str, ...]],
    seed: int = 0,
    rules: RuleProba | None = None,
    known: Sequence[str] = (),
) -> dict[str, Any]:
    """The fitted parts of a fix-pattern model: classes, estimator, calibration, rule, and
    with `rules` (the keyword rules' per-pattern probabilities of training rows) a prior
    whose pseudo-count is chosen with the calibration and the rule (see `priors`). With
    rules, the `known` patterns no training issue has follow the trained ones as classes
    whose probability is the rules' alone."""
    binarizer = MultiLabelBinarizer()
    indicator = binarizer.fit_transform(y).astype(bool)
    seen = [str(c) for c in binarizer.classes_]
    if len(seen) == 1:
        return {"classes": seen, "estimator": None, "rule": list(DEFAULT_RULE)}
    with warnings.catch_warnings():
        # a pattern on every training issue is kept as a constant predictor, which is right
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        warnings.filterwarnings("ignore", message="Label not .* is present")
        out_of_fold = _out_of_fold(make, matrix, indicator, seed)
        estimator = make().fit(matrix, indicator.astype(int))
    unseen = [c for c in known if c not in set(seen)] if rules is not None else []
    classes = [*seen, *unseen]
    parts: dict[str, Any] = {"classes": classes, "estimator": estimator}
    truth = _padded(indicator, len(classes)).astype(bool)
    counts = truth.sum(axis=0).astype(float)
    if out_of_fold is None:
        # a handful of issues: no inner folds to choose with; the rules know more than a
        # model (as `priors` decides for one-label targets)
        parts["rule"] = list(DEFAULT_RULE)
        if rules is None:
            parts["classes"] = seen
        else:
            parts["prior"] = {"counts": counts.tolist(), "pseudo_count": math.inf}
        return parts
    out_of_fold = _padded(out_of_fold, len(classes))
    keyword = rules(classes, counts) if rules is not None else None
    best: tuple[float, np.ndarray] | None = None
    for m in PSEUDO_COUNTS if keyword is not None else (0.0,):
        blended = blend_patterns(out_of_fold, keyword, counts, m)
        # calibrated on the trained patterns: the others are never true in training
        calibration = fit_calibration(blended[:, : len(seen)], indicator)
        calibrated = calibrate(blended, calibration)
        likelihood = round(_log_likelihood(calibrated, truth), 6)
        if best is None or likelihood > best[0]:
            best = (likelihood, calibrated)
            parts["calibration"] = list(calibration)
            parts["prior"] = {"counts": counts.tolist(), "pseudo_count": m}
    assert best is not None
    parts["rule"] = list(choose_rule(best[1], truth))  # the rule of the chosen calibration
    return parts


def _padded(matrix: np.ndarray, columns: int) -> np.ndarray:
    """`matrix` with zero columns appended up to `columns` (the patterns it lacks)."""
    missing = columns - matrix.shape[1]
    return (
        np.hstack([matrix, np.zeros((matrix.shape[0], missing), matrix.dtype)])
        if missing
        else matrix
    )


def _log_likelihood(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Bernoulli log-likelihood of every (issue, pattern) answer: the pseudo-count is chosen
    by it, as in `priors`, since per-issue F1 on a few dozen issues picks by chance."""
    p = np.clip(probabilities, EPSILON, 1 - EPSILON)
    return float(np.where(truth, np.log(p), np.log(1 - p)).sum())


def blend_patterns(
    model: np.ndarray, keyword: np.ndarray | None, counts: np.ndarray, pseudo_count: float
) -> np.ndarray:
    """Each pattern's probability leaning on its rule by m / (m + n_pattern); patterns are
    yes/no questions of their own, so rows are not renormalised."""
    if keyword is None or pseudo_count <= 0:
        return model
    if math.isinf(pseudo_count):
        return keyword
    share = pseudo_count / (pseudo_count + counts)
    return (1 - share) * model + share * keyword


def multilabel_proba(
    parts: dict[str, Any], matrix: Any, rules: RuleProba | None = None
) -> np.ndarray:
    if parts["estimator"] is None:
        return np.ones((matrix.shape[0], 1))
    proba = _padded(parts["estimator"].predict_proba(matrix), len(parts["classes"]))
    prior = parts.get("prior")
    if prior and prior["pseudo_count"] > 0 and rules is not None:
        counts = np.asarray(prior["counts"], dtype=float)
        proba = blend_patterns(
            proba, rules(parts["classes"], counts), counts, prior["pseudo_count"]
        )
    return calibrate(proba, parts.get("calibration"))
