"""The estimators of `issueminer.analyse.estimate`, checked by simulation.

Populations with known true shares, a classifier whose errors are known (a confusion
matrix P(predicted | true)), labelled samples of several sizes: over hundreds of
repetitions the 95% intervals must cover the population's true share in 93% or more of
them. Counting predictions as labels is run beside them and shown to miss; each coverage
is recorded (`record_property`, visible with `pytest --junitxml`).
"""

from __future__ import annotations

import numpy as np
import pytest

from issueminer.analyse.estimate.quantify import one_hot, quantify
from issueminer.analyse.estimate.sample import RatioInputs, naive_share, ppi_count, ppi_share

REPETITIONS = 1000  # the coverage of a 95% interval is then known to about +-1.4 points
POPULATION = 2000
TRUE_SHARES = np.array([0.5, 0.3, 0.2])  # e.g. faults of three stages
STUDY_SHARES = np.array([0.25, 0.45, 0.30])  # the labelled study the classifier knows
# P(predicted i | true j): accuracy 0.6-0.8 and lopsided, so counting predictions is biased
CONFUSION = np.array([[0.70, 0.10, 0.20], [0.25, 0.80, 0.20], [0.05, 0.10, 0.60]])
MIN_COVERAGE = 0.93
QUANTIFY_REPETITIONS = 300  # each runs a 200-replicate bootstrap


def _draw(rng: np.random.Generator, shares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True classes and the classifier's predictions of n issues."""
    true = rng.choice(len(shares), size=n, p=shares)
    cumulative = np.cumsum(CONFUSION[:, true].T, axis=1)
    predicted = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    return true, predicted


def _probabilities(rng: np.random.Generator, true: np.ndarray) -> np.ndarray:
    """Soft scores whose distribution depends on the true class only (prior shift holds)."""
    logits = rng.normal(0.0, 1.0, size=(len(true), 3))
    logits[np.arange(len(true)), true] += 1.2
    scores = np.exp(logits)
    return scores / scores.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("sample_size", [100, 200, 400])
def test_labelled_sample_intervals_cover_the_true_share(sample_size, record_property):
    rng = np.random.default_rng(sample_size)
    hits = {"count": 0, "share_among": 0, "naive": 0}
    widths = []
    for _ in range(REPETITIONS):
        true, predicted = _draw(rng, TRUE_SHARES, POPULATION)
        labelled = np.zeros(POPULATION, dtype=bool)
        labelled[rng.choice(POPULATION, sample_size, replace=False)] = True
        y, yhat = (true == 0).astype(float), (predicted == 0).astype(float)
        count = ppi_count(y[labelled].sum(), y[labelled], yhat[labelled], yhat[~labelled])
        hits["count"] += count.covers(y.sum())
        widths.append(count.width / POPULATION)
        # class 1 among classes 1 and 2 (a stage's share among faults): a ratio
        num, den = (true == 1).astype(float), (true >= 1).astype(float)
        num_hat, den_hat = (predicted == 1).astype(float), (predicted >= 1).astype(float)
        share = ppi_share(
            RatioInputs(
                num[labelled].sum(),
                den[labelled].sum(),
                num[labelled],
                den[labelled],
                num_hat[labelled],
                den_hat[labelled],
                num_hat[~labelled],
                den_hat[~labelled],
            )
        )
        hits["share_among"] += share.covers(num.sum() / den.sum())
        hits["naive"] += naive_share(yhat).covers(y.mean())
    coverage = {name: value / REPETITIONS for name, value in hits.items()}
    for name, value in coverage.items():
        record_property(f"coverage_{name}_n{sample_size}", value)
    assert coverage["count"] >= MIN_COVERAGE, coverage
    assert coverage["share_among"] >= MIN_COVERAGE, coverage
    # the classifier over-predicts class 0 (0.7*0.5 + 0.1*0.3 + 0.2*0.2 = 0.42 vs 0.5):
    # intervals around the predicted share almost never hold the truth
    assert coverage["naive"] < 0.2, coverage
    # more labels, narrower intervals (a useful estimator, not only a wide one)
    record_property(f"mean_width_n{sample_size}", float(np.mean(widths)))
    assert np.mean(widths) < 2 * 1.96 * np.sqrt(0.25 / sample_size)


def test_intervals_narrow_as_the_sample_grows():
    rng = np.random.default_rng(7)
    true, predicted = _draw(rng, TRUE_SHARES, POPULATION)
    y, yhat = (true == 0).astype(float), (predicted == 0).astype(float)
    widths = []
    for size in (50, 200, 800):
        labelled = np.zeros(POPULATION, dtype=bool)
        labelled[rng.choice(POPULATION, size, replace=False)] = True
        widths.append(
            ppi_count(y[labelled].sum(), y[labelled], yhat[labelled], yhat[~labelled]).width
        )
    assert widths[0] > widths[1] > widths[2] > 0


@pytest.mark.parametrize("soft", [False, True], ids=["ACC", "PACC"])
def test_quantification_intervals_cover_under_prior_shift(soft, record_property):
    """The study's labels calibrate the classifier; the new population has other shares
    but the same class-conditional behaviour (the estimator's assumption)."""
    rng = np.random.default_rng(11 + soft)
    hits = {"estimate": 0, "naive": 0}
    for repetition in range(QUANTIFY_REPETITIONS):
        study_true, study_predicted = _draw(rng, STUDY_SHARES, 1000)
        true, predicted = _draw(rng, TRUE_SHARES, POPULATION)
        if soft:
            calibration, population = _probabilities(rng, study_true), _probabilities(rng, true)
        else:
            calibration, population = one_hot(study_predicted, 3), one_hot(predicted, 3)
        estimate = quantify(
            study_true, calibration, population, ["a", "b", "c"], replicates=200, seed=repetition
        )
        truth = float((true == 0).mean())
        hits["estimate"] += estimate.interval(0).covers(truth)
        hits["naive"] += naive_share(population.argmax(axis=1) == 0).covers(truth)
    coverage = {name: value / QUANTIFY_REPETITIONS for name, value in hits.items()}
    for name, value in coverage.items():
        record_property(f"coverage_{name}_{'pacc' if soft else 'acc'}", value)
    assert coverage["estimate"] >= MIN_COVERAGE, coverage
    assert coverage["naive"] < 0.2, coverage


def test_quantification_shares_sum_to_one_and_derive_ratios():
    rng = np.random.default_rng(3)
    study_true, study_predicted = _draw(rng, STUDY_SHARES, 1000)
    true, predicted = _draw(rng, TRUE_SHARES, 20000)
    estimate = quantify(study_true, one_hot(study_predicted, 3), one_hot(predicted, 3), "abc")
    assert estimate.shares.sum() == pytest.approx(1.0)
    assert np.allclose(estimate.replicates.sum(axis=1), 1.0)
    # with a large population the point estimate is close to the truth, the naive one not
    assert abs(estimate.shares[0] - 0.5) < 0.04
    assert abs((predicted == 0).mean() - 0.5) > 0.06
    among = estimate.derived(lambda s: s[:, 1] / s[:, 1:].sum(axis=1))
    assert among.low <= 0.3 / 0.5 <= among.high


def test_a_fully_labelled_population_has_exact_zero_width_estimates():
    y = np.array([1.0, 0.0, 1.0, 1.0])
    count = ppi_count(y.sum(), y, y, np.array([]))
    assert (count.estimate, count.width) == (3.0, 0.0)
    empty = np.array([])
    share = ppi_share(RatioInputs(2.0, 3.0, empty, empty, empty, empty, empty, empty))
    assert (share.estimate, share.width) == (pytest.approx(2 / 3), 0.0)


def test_sample_and_predictions_must_pair_up():
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        ppi_count(0, [1, 0, 1], [1, 0], [0, 1])


def test_design_weights_correct_a_sample_stratified_by_prediction(record_property):
    """Four fifths of the sample from the issues predicted class 0 (about 42% of them),
    a fifth from the rest (a design `round create --for-estimate` records): with the
    recorded weights (frame / sample per stratum) the intervals cover; without, they miss."""
    rng = np.random.default_rng(21)
    hits = {"weighted": 0, "unweighted": 0}
    for _ in range(REPETITIONS):
        true, predicted = _draw(rng, TRUE_SHARES, POPULATION)
        labelled = np.zeros(POPULATION, dtype=bool)
        weights = np.zeros(POPULATION)
        for members, size in (
            (np.flatnonzero(predicted == 0), 160),
            (np.flatnonzero(predicted != 0), 40),
        ):
            chosen = rng.choice(members, size, replace=False)
            labelled[chosen] = True
            weights[chosen] = len(members) / size
        y, yhat = (true == 0).astype(float), (predicted == 0).astype(float)
        for name, w in (("weighted", weights[labelled]), ("unweighted", None)):
            count = ppi_count(y[labelled].sum(), y[labelled], yhat[labelled], yhat[~labelled], w)
            hits[name] += count.covers(y.sum())
    coverage = {name: value / REPETITIONS for name, value in hits.items()}
    for name, value in coverage.items():
        record_property(f"coverage_stratified_{name}", value)
    assert coverage["weighted"] >= MIN_COVERAGE, coverage
    assert coverage["unweighted"] < coverage["weighted"] - 0.1, coverage
