"""Reliability statistics of coded items: kappa, alpha, Fleiss' kappa, their intervals.

The published figures come from maintained implementations: scikit-learn's
`cohen_kappa_score`, the `krippendorff` package (with the MASI distance for sets of
labels), statsmodels' `fleiss_kappa`. Their 95% intervals come from a seeded percentile
bootstrap over items; each resample is a vector of item weights (how often the resample drew
each item), so a thousand resamples are a few matrix products rather than a thousand calls.
The weighted formulas reproduce the libraries' figures at weight one (the tests check it).

Items are a code matrix: one row per item, one column per annotator, -1 where the annotator
gave no value; codes index `Units.values`.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 2023
LEVEL = 0.95

# Landis and Koch (1977): the words reviewers read kappa in, by upper bound
BANDS = (
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
)


def landis_koch(kappa: float | None) -> str | None:
    """Landis and Koch's word for a kappa: below 0 poor, 0-.20 slight, .21-.40 fair,
    .41-.60 moderate, .61-.80 substantial, .81-1 almost perfect."""
    if kappa is None:
        return None
    if kappa < 0:
        return "poor"
    return next((word for upper, word in BANDS if kappa <= upper), "almost perfect")


@dataclass
class Units:
    """Items x annotators as codes; `values[code]` is the value a code stands for."""

    codes: np.ndarray  # int, shape (items, annotators), -1 = no value
    values: list[Hashable]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Hashable | None]]) -> Units:
        values = sorted({v for row in rows for v in row if v is not None}, key=str)
        index = {v: i for i, v in enumerate(values)}
        width = max((len(r) for r in rows), default=0)
        codes = np.full((len(rows), width), -1, dtype=int)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is not None:
                    codes[i, j] = index[value]
        return cls(codes, values)

    def value_counts(self) -> np.ndarray:
        """(items, values): how many annotators gave each value to each item."""
        counts = np.zeros((len(self.codes), len(self.values)))
        for column in self.codes.T:
            given = column >= 0
            counts[np.flatnonzero(given), column[given]] += 1
        return counts


# ---- point estimates from the maintained implementations --------------------------------
def cohen(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """scikit-learn's Cohen's kappa; None when chance agreement is 1 (one shared value)."""
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    if not first or len(set(first) | set(second)) == 1:
        return None
    labels = [str(v) for v in first], [str(v) for v in second]
    return float(cohen_kappa_score(*labels))


def alpha(units: Units, distance: np.ndarray | None = None) -> float | None:
    """Krippendorff's alpha (the `krippendorff` package): nominal, or with `distance`
    (values x values) such as MASI. None when fewer than two values can be paired."""
    import krippendorff

    counts = units.value_counts()
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.size == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    if distance is None:
        metric: Any = "nominal"
    else:
        matrix = distance

        def metric(v1, v2, i1, i2, n_v, dtype=np.float64):  # the package's DistanceMetric
            return matrix[i1, i2].astype(dtype)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = krippendorff.alpha(
            value_counts=counts,
            value_domain=np.arange(len(units.values)),
            level_of_measurement=metric,
        )
    return None if np.isnan(value) else float(value)


def fleiss(units: Units) -> tuple[float | None, int]:
    """statsmodels' Fleiss' kappa over the items every annotator rated; (kappa, items)."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    complete = units.value_counts()[(units.codes >= 0).all(axis=1)]
    if len(complete) == 0 or np.count_nonzero(complete.sum(axis=0)) < 2:
        return None, len(complete)
    return float(fleiss_kappa(complete, method="fleiss")), len(complete)


def masi_distance(first: frozenset[str], second: frozenset[str]) -> float:
    """Passonneau's (2006) MASI distance: 1 - Jaccard x monotonicity (1 same set, 2/3 one
    inside the other, 1/3 overlapping, 0 disjoint)."""
    if first == second:
        return 0.0
    union = first | second
    jaccard = len(first & second) / len(union)
    if first <= second or second <= first:
        monotonicity = 2 / 3
    elif first & second:
        monotonicity = 1 / 3
    else:
        monotonicity = 0.0
    return 1 - jaccard * monotonicity


def distance_matrix(
    values: Sequence[Hashable], distance: Callable[[Any, Any], float]
) -> np.ndarray:
    return np.array([[distance(a, b) for b in values] for a in values], dtype=float)


# ---- the same figures with item weights, for the bootstrap --------------------------------
def weighted_pair(units: Units, i: int, j: int, weights: np.ndarray) -> tuple[Any, Any, Any]:
    """Per weight row: (items, percent agreement, Cohen's kappa) of annotators i and j."""
    both = (units.codes[:, i] >= 0) & (units.codes[:, j] >= 0)
    k = len(units.values)
    first = np.zeros((len(units.codes), k))
    second = np.zeros((len(units.codes), k))
    first[np.flatnonzero(both), units.codes[both, i]] = 1
    second[np.flatnonzero(both), units.codes[both, j]] = 1
    same = (both & (units.codes[:, i] == units.codes[:, j])).astype(float)
    n = weights @ both.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = (weights @ same) / n
        expected = np.einsum("bk,bk->b", weights @ first, weights @ second) / n**2
        kappa = np.where(expected < 1 - 1e-12, (observed - expected) / (1 - expected), np.nan)
    return n, observed, kappa


def weighted_alpha(counts: np.ndarray, distance: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Alpha per weight row: 1 - (n-1) sum(o * delta) / sum(n_c n_k delta), where o is the
    coincidence matrix of the weighted items (Krippendorff 2011, eq. for any metric)."""
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m, weights = counts[pairable], m[pairable], weights[:, pairable]
    observed_unit = np.einsum("uk,kl,ul->u", counts, distance, counts) / (m - 1)
    totals = weights @ counts
    n = totals.sum(axis=1)
    expected = np.einsum("bk,kl,bl->b", totals, distance, totals)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - (n - 1) * (weights @ observed_unit) / expected, np.nan)


def weighted_fleiss(units: Units, weights: np.ndarray) -> np.ndarray:
    """Fleiss' kappa per weight row over the items every annotator rated."""
    complete = (units.codes >= 0).all(axis=1)
    counts = units.value_counts()[complete]
    weights = weights[:, complete]
    raters = units.codes.shape[1]
    per_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    n = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = (weights @ counts) / (n * raters)[:, None]
        chance = (shares**2).sum(axis=1)
        observed = (weights @ per_item) / n
        return np.where(chance < 1 - 1e-12, (observed - chance) / (1 - chance), np.nan)


def nominal(values: Sequence[Hashable]) -> np.ndarray:
    return 1.0 - np.eye(len(values))


# ---- intervals -----------------------------------------------------------------------------
def resample_weights(items: int, resamples: int, seed: int, *names: str) -> np.ndarray:
    """(resamples, items): how often each resample drew each item. Seeded by `seed` and the
    names (round, dimension), so one row's interval does not depend on which others ran."""
    entropy = [seed, *(zlib.crc32(name.encode()) for name in names)]
    rng = np.random.default_rng(entropy)
    drawn = rng.integers(0, items, size=(resamples, items))
    weights = np.zeros((resamples, items))
    np.add.at(weights, (np.arange(resamples)[:, None], drawn), 1)
    return weights


def interval(samples: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The percentile interval of the defined resamples; None when too few are defined."""
    defined = samples[~np.isnan(samples)]
    if len(defined) < 0.5 * len(samples) or len(defined) == 0:
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return [round(float(low), 6), round(float(high), 6)]


# ---- per category and confusions ----------------------------------------------------------
def specific_agreement(units: Units) -> list[dict[str, Any]]:
    """Per value: specific (positive) agreement, the share of the value's pairable uses that
    another annotator matched: sum n_uc (n_uc - 1) / sum n_uc (m_u - 1); for two annotators
    2 n_cc / (n_c. + n_.c)."""
    counts = units.value_counts()
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    matched = (counts * (counts - 1)).sum(axis=0)
    possible = (counts * (m - 1)[:, None]).sum(axis=0)
    rows = []
    for code, value in enumerate(units.values):
        if possible[code] == 0:
            continue
        rows.append(
            {
                "category": value,
                "uses": int(counts[:, code].sum()),
                "specific_agreement": round(float(matched[code] / possible[code]), 6),
            }
        )
    return sorted(rows, key=lambda r: (r["specific_agreement"], -r["uses"]))


def confusion(units: Units, i: int, j: int) -> dict[str, Any]:
    """Annotator i's values (rows) against annotator j's (columns) on the items both rated."""
    both = (units.codes[:, i] >= 0) & (units.codes[:, j] >= 0)
    used = sorted(set(units.codes[both, i]) | set(units.codes[both, j]))
    position = {code: k for k, code in enumerate(used)}
    matrix = [[0] * len(used) for _ in used]
    for a, b in zip(units.codes[both, i], units.codes[both, j], strict=True):
        matrix[position[a]][position[b]] += 1
    return {"labels": [units.values[c] for c in used], "counts": matrix}


def pairs_of(annotators: Sequence[str]) -> list[tuple[int, int]]:
    return list(combinations(range(len(annotators)), 2))
