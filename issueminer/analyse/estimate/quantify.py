"""The quantification estimator: adjusted classify-and-count (ACC, PACC) with a bootstrap.

When no labelled sample of the new population exists, the classifier's own errors,
measured on the study's labelled issues (out-of-fold predictions: the calibration data),
correct the counts of its predictions on the new issues. With M[i, j] = P(predicted i |
true j) from the calibration data and q[i] the share of new issues predicted i,

    q = M p   =>   p = argmin ||M p - q||  (least squares; then clipped to [0, 1])

(Forman, "Quantifying counts and costs via classification", Data Min. Knowl. Disc. 17,
2008: ACC; Bella, Ferri, Hernandez-Orallo and Ramirez-Quintana, "Quantification via
probability estimators", ICDM 2010: PACC, the same with predicted probabilities instead
of 0/1 predictions). The 95% interval is a percentile bootstrap that redraws both the
calibration data (per true class, so M's columns keep their sizes) and the new issues'
predictions, so it carries the uncertainty of the correction as well as of the counts.

Written here rather than taken from QuaPy: QuaPy fits its own classifier and splits the
data itself, while issueminer's predictions already sit in the database and its
calibration predictions come from the classifier's own cross-validation; the estimator is
the two lines above.

Assumption, said in every output: prior shift only, i.e. the new issues of each true
class look to the classifier as the study's issues of that class did (the same
class-conditional text distribution); only the classes' shares may differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from issueminer.analyse.estimate.sample import ALPHA, Interval

ACC_NAME = "adjusted classify-and-count (ACC) with a bootstrap over the calibration data"
PACC_NAME = "probabilistic adjusted classify-and-count (PACC) with a bootstrap"
ASSUMES = (
    "prior shift only: new issues of each true class look to the classifier as the "
    "study's labelled issues of that class did (same class-conditional text distribution); "
    "only the shares of the classes may differ"
)
BOOTSTRAP = 500  # replicates: percentiles at 2.5% and 97.5% are stable to ~0.5 points
CHUNK = 50  # replicates drawn at once (memory: CHUNK x items x classes)


@dataclass(frozen=True)
class Quantified:
    """Estimated shares of each true class, with intervals, and the bootstrap replicates
    (rows: replicates) so that derived quantities (a ratio of shares) get intervals too."""

    classes: list[str]
    shares: np.ndarray
    replicates: np.ndarray

    def interval(self, column: int, alpha: float = ALPHA) -> Interval:
        return derived_interval(self.shares[column], self.replicates[:, column], alpha)

    def derived(
        self, function: Callable[[np.ndarray], np.ndarray], alpha: float = ALPHA
    ) -> Interval:
        """An interval for function(shares) (a row of shares -> a number), e.g. a class's
        share among a group of classes."""
        point = float(function(self.shares[None, :])[0])
        return derived_interval(point, function(self.replicates), alpha)


def derived_interval(point: float, replicates: np.ndarray, alpha: float = ALPHA) -> Interval:
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return Interval(point, float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Interval(float(point), float(min(low, point)), float(max(high, point)))


def adjust(confusion: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Shares p of the true classes from M (predicted x true, columns sum to 1) and the
    observed predicted shares q; batched: `confusion` (B, K, J), `observed` (B, K).

    Least squares, then clipped at 0 and rescaled to sum to 1 (the usual ACC repair when
    sampling noise pushes a share below zero)."""
    solution = np.einsum("bjk,bk->bj", np.linalg.pinv(confusion), observed)
    solution = np.clip(solution, 0.0, None)
    total = solution.sum(axis=1, keepdims=True)
    even = np.full_like(solution, 1.0 / solution.shape[1])
    return np.where(total > 0, solution / np.where(total > 0, total, 1.0), even)


def _columns(true: np.ndarray, scores: np.ndarray, n_classes: int) -> np.ndarray:
    """M: the mean score (one-hot or probabilities) of the items of each true class."""
    matrix = np.zeros((scores.shape[1], n_classes))
    for j in range(n_classes):
        members = scores[true == j]
        if len(members):
            matrix[:, j] = members.mean(axis=0)
    return matrix


def quantify(
    calibration_true: Sequence[int],
    calibration_scores: np.ndarray,
    population_scores: np.ndarray,
    classes: Sequence[str],
    replicates: int = BOOTSTRAP,
    seed: int = 0,
) -> Quantified:
    """ACC when the scores are one-hot predictions, PACC when they are probabilities.

    `calibration_true`: each calibration item's true class (index into `classes`);
    `calibration_scores`, `population_scores`: (items x predicted classes) rows.
    """
    rng = np.random.default_rng(seed)
    true = np.asarray(calibration_true, dtype=int)
    cal = np.asarray(calibration_scores, dtype=float)
    pop = np.asarray(population_scores, dtype=float)
    n_classes = len(classes)
    if len(pop) == 0:
        empty = np.zeros((0, n_classes))
        return Quantified(list(classes), np.zeros(n_classes), empty)
    point = adjust(_columns(true, cal, n_classes)[None], pop.mean(axis=0)[None])[0]
    members = [np.flatnonzero(true == j) for j in range(n_classes)]
    draws = []
    for start in range(0, replicates, CHUNK):
        size = min(CHUNK, replicates - start)
        confusion = np.zeros((size, cal.shape[1], n_classes))
        for j, rows in enumerate(members):
            if len(rows):
                confusion[:, :, j] = _resampled_means(cal[rows], size, rng)
        observed = _resampled_means(pop, size, rng)
        draws.append(adjust(confusion, observed))
    return Quantified(list(classes), point, np.concatenate(draws))


def _resampled_means(scores: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of the rows of `scores`. One-hot rows (ACC): the resampled class
    counts are multinomial, drawn directly; probability rows (PACC): a Poisson bootstrap."""
    n = len(scores)
    if np.all((scores == 0) | (scores == 1)) and np.all(scores.sum(axis=1) == 1):
        return rng.multinomial(n, scores.mean(axis=0), size=size) / n
    # Poisson(1) weights per row: the bootstrap's multiplicities, drawn independently
    # (Hanley and MacGibbon, 2006), so the means are one matrix product
    weights = rng.poisson(1.0, size=(size, n)).astype(float)
    totals = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return weights @ scores / totals


def one_hot(indices: Sequence[int], n_classes: int) -> np.ndarray:
    matrix = np.zeros((len(indices), n_classes))
    matrix[np.arange(len(indices)), np.asarray(indices, dtype=int)] = 1.0
    return matrix
