"""Every table `stats` computes, estimated over a population with 95% intervals.

Each issue of the population has final labels (then each property is counted exactly) or
only predictions. For every table row the property is a 0/1 value per issue (is a fault
of stage s; is a how-to question of topic t; ...), and so is the row's denominator (is a
fault; is a how-to question; for issue types: every issue). The estimator then depends
on what exists:

* every issue labelled: `exact` (stats' counts, zero width);
* a labelled sample drawn for the estimate (`round create --for-estimate`): the
  labelled-sample estimator (`sample`: PPI over the predictions, with design weights);
* no sample, but the study's labelled issues have text to calibrate the classifier on:
  the quantification estimator (`quantify`: probabilistic adjusted classify-and-count
  where every issue has the probabilities, else adjusted classify-and-count, on the
  classifier's out-of-fold errors, see `calibration`) for the single-label tables;
* otherwise (and for fix patterns and the specific share, which no single-label model
  predicts): `bounds`, what the labels alone prove (every unlabelled issue might or
  might not have the property); no assumption, and wide.

Categories and their names follow `issueminer.analyse.stats` (paths "stage / inner /
leaf", "(unlabelled)" for a fault without a stage).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.analyse.estimate import quantify as acc
from issueminer.analyse.estimate import sample as ppi
from issueminer.analyse.estimate.design import sample_weights
from issueminer.analyse.estimate.population import Population
from issueminer.analyse.estimate.sample import Interval
from issueminer.analyse.stats import PATH_SEPARATOR
from issueminer.store import FinalLabel, Prediction
from issueminer.taxonomy import FAULT, HOWTO, Taxonomy

CHUNK = 500  # uids per IN (...) query
UNLABELLED = "(unlabelled)"
FIX_PATTERN_JOIN = " & "  # how a multi-label prediction joins its fix patterns
EXACT = "exact"
BOUNDS = "bounds"
ESTIMATORS = {
    EXACT: ("counted on final labels", "none: every issue of the population is labelled"),
    ppi.NAME: (ppi.NAME, ppi.ASSUMES),
    acc.ACC_NAME: (acc.ACC_NAME, acc.ASSUMES),
    acc.PACC_NAME: (acc.PACC_NAME, acc.ASSUMES),
    BOUNDS: (
        "bounds from the labels alone",
        "none (each unlabelled issue may or may not have the property); label a sample "
        "with `issueminer round create --for-estimate` for a real estimate",
    ),
}

Keys = dict[str, float]  # category -> 0/1 (or a count, for an issue with several labels)


@dataclass(frozen=True)
class TableSpec:
    """One table: its name, what its shares are among, and each issue's properties from
    its final labels and from its predictions."""

    name: str
    among: str  # "issues", "faults" or "how-to questions"
    truth: Callable[[list[dict[str, Any]]], tuple[Keys, float]]
    predicted: Callable[[dict[str, str]], tuple[Keys, float]]


def _path(*parts: Any) -> str:
    return PATH_SEPARATOR.join(str(p) for p in parts if isinstance(p, str) and p)


def _of_type(rows: list[dict[str, Any]], issue_type: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["issue_type"] == issue_type]


def _counted(keys: Iterable[str]) -> Keys:
    found: Keys = defaultdict(float)
    for key in keys:
        found[key] += 1.0
    return dict(found)


def _truth_issue_type(rows: list[dict[str, Any]]) -> tuple[Keys, float]:
    return _counted(r["issue_type"] for r in rows if r["issue_type"]), 1.0


def _pred_issue_type(p: dict[str, str]) -> tuple[Keys, float]:
    return ({p["issue_type"]: 1.0} if p.get("issue_type") else {}), 1.0


def _fault_table(
    truth_key: Callable[[dict[str, Any]], list[str]],
    predicted_key: Callable[[dict[str, str]], list[str]],
) -> tuple[Callable[..., tuple[Keys, float]], Callable[..., tuple[Keys, float]]]:
    def truth(rows: list[dict[str, Any]]) -> tuple[Keys, float]:
        faults = _of_type(rows, FAULT)
        return _counted(k for r in faults for k in truth_key(r)), float(len(faults))

    def predicted(p: dict[str, str]) -> tuple[Keys, float]:
        if p.get("issue_type") != FAULT:
            return {}, 0.0
        return _counted(predicted_key(p)), 1.0

    return truth, predicted


def _stage(r: dict[str, Any]) -> list[str]:
    return [r.get("stage") or UNLABELLED]


def _inner(r: dict[str, Any]) -> list[str]:
    inner = r.get("inner_category")
    return [_path(r.get("stage"), inner)] if isinstance(inner, str) and inner else []


def _leaf(r: dict[str, Any]) -> list[str]:
    leaf = r.get("leaf_symptom")
    return [_path(r.get("stage"), r.get("inner_category"), leaf)] if leaf else []


def _specific(r: dict[str, Any]) -> list[str]:
    value = r.get("specific")
    return ["yes" if value else "no"] if value is not None else []


def _fixes(r: dict[str, Any]) -> list[str]:
    patterns = r.get("fix_patterns") or []
    if isinstance(patterns, str):  # a prediction joins several patterns in one label
        patterns = [p for p in patterns.split(FIX_PATTERN_JOIN) if p]
    return list(dict.fromkeys(patterns))


def _howto_truth(rows: list[dict[str, Any]]) -> tuple[Keys, float]:
    howto = _of_type(rows, HOWTO)
    return _counted(r.get("howto_topic") or UNLABELLED for r in howto), float(len(howto))


def _howto_predicted(p: dict[str, str]) -> tuple[Keys, float]:
    if p.get("issue_type") != HOWTO:
        return {}, 0.0
    return ({p["howto_topic"]: 1.0} if p.get("howto_topic") else {}), 1.0


def _no_prediction(_: dict[str, str]) -> list[str]:
    return []  # no classifier predicts it: the sample's labels alone carry the estimate


def table_specs() -> list[TableSpec]:
    return [
        TableSpec("issue_types", "issues", _truth_issue_type, _pred_issue_type),
        TableSpec("stages", "faults", *_fault_table(_stage, _stage)),
        TableSpec("inner_categories", "faults", *_fault_table(_inner, _inner)),
        TableSpec("leaf_symptoms", "faults", *_fault_table(_leaf, _leaf)),
        TableSpec("specific", "faults", *_fault_table(_specific, _no_prediction)),
        TableSpec("fix_patterns", "faults", *_fault_table(_fixes, _fixes)),
        TableSpec("howto_topics", "how-to questions", _howto_truth, _howto_predicted),
    ]


TABLE_NAMES = tuple(spec.name for spec in table_specs())


# ---- reading the store ---------------------------------------------------------------
def _chunks(uids: tuple[str, ...] | list[str]) -> Iterable[list[str]]:
    for start in range(0, len(uids), CHUNK):
        yield list(uids[start : start + CHUNK])


def final_rows(session: Session, uids: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Each labelled issue's final label rows (one per issue type)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    fields = ("issue_type", "specific", "stage", "inner_category", "leaf_symptom")
    for chunk in _chunks(uids):
        query = select(FinalLabel).where(FinalLabel.issue_uid.in_(chunk))
        for row in session.scalars(query.order_by(FinalLabel.id)):
            values = {name: getattr(row, name) for name in fields}
            values["fix_patterns"] = list(row.fix_patterns or [])
            values["howto_topic"] = row.howto_topic
            found[row.issue_uid].append(values)
    return dict(found)


def _newest(session: Session, uids: Iterable[str]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(uid, field) -> (created, id, label, probabilities) of the newest prediction."""
    newest: dict[tuple[str, str], tuple[Any, ...]] = {}
    for chunk in _chunks(list(uids)):
        query = select(
            Prediction.issue_uid,
            Prediction.target,
            Prediction.created_at,
            Prediction.id,
            Prediction.label,
            Prediction.probabilities,
        ).where(Prediction.issue_uid.in_(chunk))
        for uid, target, *row in session.execute(query):
            current = newest.get((uid, target))
            if current is None or tuple(row[:2]) > current[:2]:
                newest[(uid, target)] = tuple(row)
    return newest


def newest_predictions(session: Session, uids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each issue's newest predicted label per field (issue_type, stage, ...)."""
    return read_predictions(session, uids)[0]


def read_predictions(
    session: Session, uids: Iterable[str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]]]:
    """From one read of the newest predictions: each issue's label per field, and its
    probabilities per field ({label: probability}) where the model stored them."""
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    probabilities: dict[str, dict[str, Any]] = defaultdict(dict)
    for (uid, target), row in _newest(session, uids).items():
        labels[uid][target] = row[2]
        if row[3]:
            probabilities[uid][target] = row[3]
    return dict(labels), dict(probabilities)


# ---- estimating ----------------------------------------------------------------------
@dataclass
class EstimatedRow:
    category: str
    labelled: float  # counted on final labels
    count: Interval
    share: Interval

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "labelled": int(self.labelled),
            "count": self.count.as_dict(1),
            "share": self.share.as_dict(4),
        }


@dataclass
class EstimatedTable:
    name: str
    among: str
    estimator: str
    denominator: Interval
    rows: list[EstimatedRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        name, assumes = ESTIMATORS[self.estimator]
        return {
            "table": self.name,
            "shares_among": self.among,
            "estimator": name,
            "assumes": assumes,
            self.among: self.denominator.as_dict(1),
            "rows": [row.as_dict() for row in self.rows],
        }


@dataclass
class Estimate:
    population: Population
    labelled: int
    unlabelled: int
    sample: int  # labelled issues of the estimate's random sample
    unpredicted: int  # unlabelled issues with no prediction at all
    tables: dict[str, EstimatedTable]
    left_out: int = 0  # of them, left out of the estimate (the estimator needs predictions)

    def as_json(self) -> dict[str, Any]:
        return {
            "population": {
                "filters": self.population.filters,
                "issues": len(self.population.uids),
                "labelled": self.labelled,
                "unlabelled": self.unlabelled,
                "sample": self.sample,
                "unpredicted": self.unpredicted,
                "left_out": self.left_out,
            },
            "tables": {name: table.as_dict() for name, table in self.tables.items()},
        }


@dataclass
class _Matrix:
    """Per issue of one group (labelled, sample, unlabelled): each category's value and
    the denominator, from labels (`y`) and from predictions (`yhat`)."""

    y: dict[str, np.ndarray]
    y_den: np.ndarray
    yhat: dict[str, np.ndarray]
    yhat_den: np.ndarray


def _matrix(
    spec: TableSpec,
    uids: list[str],
    labels: dict[str, list[dict[str, Any]]],
    predictions: dict[str, dict[str, str]],
    categories: list[str],
) -> _Matrix:
    truth = [spec.truth(labels.get(uid, [])) for uid in uids]
    guess = [spec.predicted(predictions.get(uid, {})) for uid in uids]
    return _Matrix(
        {c: np.array([keys.get(c, 0.0) for keys, _ in truth]) for c in categories},
        np.array([den for _, den in truth]),
        {c: np.array([keys.get(c, 0.0) for keys, _ in guess]) for c in categories},
        np.array([den for _, den in guess]),
    )


def estimate_tables(
    session: Session,
    taxonomy: Taxonomy,
    population: Population,
    tables: list[str] | None = None,
    quantification: bool = True,
    folds: int = 5,
) -> Estimate:
    """Every table (or those named) over `population`; see the module docstring.
    `quantification=False` skips the cross-validation the quantification estimator needs."""
    uids = population.uids
    labels = final_rows(session, uids)
    predictions, probabilities = read_predictions(session, uids)
    weights = {u: w for u, w in sample_weights(session).items() if u in labels}
    # a sampled issue counts only with the predictions the estimator compares its label to
    sampled = [u for u in uids if u in weights and u in predictions]
    labelled = [u for u in uids if u in labels]
    unlabelled = [u for u in uids if u not in labels]
    if not unlabelled:
        estimator = EXACT
    elif len(sampled) >= 2:
        estimator = ppi.NAME
    else:
        estimator = BOUNDS
    specs = [spec for spec in table_specs() if not tables or spec.name in tables]
    calibration: dict[str, Any] = {}
    if estimator == BOUNDS and quantification:
        from issueminer.analyse.estimate.calibration import by_target

        calibration = by_target(session, taxonomy, [spec.name for spec in specs], folds)
    # the calibration issues' labels, read once for every table that is quantified; those
    # of the population were read with it
    calibrated_uids = {uid for c in calibration.values() for uid in c.labels}
    unread = tuple(sorted(calibrated_uids - labels.keys()))
    calibration_truth = {
        **{uid: labels[uid] for uid in calibrated_uids & labels.keys()},
        **final_rows(session, unread),
    }
    unpredicted = [u for u in unlabelled if u not in predictions]
    left_out = 0
    if estimator == ppi.NAME or any(c.labels for c in calibration.values()):
        # the estimators read predictions: an issue without any (no text to classify)
        # is neither in the sample's frame nor predictable, so it is left out and said
        left_out, unlabelled = len(unpredicted), [u for u in unlabelled if u in predictions]
        population = replace(
            population, uids=tuple(u for u in population.uids if u in labels or u in predictions)
        )
    found = {}
    for spec in specs:
        categories = _categories(spec, labelled, unlabelled, labels, predictions)
        quantified = _quantified_table(
            spec,
            categories,
            labels,
            (predictions, probabilities),
            (labelled, unlabelled),
            calibration,
            calibration_truth,
        )
        if quantified is not None:
            found[spec.name] = quantified
            continue
        known = _matrix(spec, labelled, labels, predictions, categories)
        drawn = _matrix(spec, sampled, labels, predictions, categories)
        rest = _matrix(spec, unlabelled, labels, predictions, categories)
        w = np.array([weights[u] for u in sampled])
        found[spec.name] = _estimate_table(spec, estimator, categories, known, drawn, rest, w)
    return Estimate(
        population,
        len(labelled),
        len(unlabelled),
        len(sampled),
        len(unpredicted),
        found,
        left_out=left_out,
    )


def _categories(
    spec: TableSpec,
    labelled: list[str],
    unlabelled: list[str],
    labels: dict[str, list[dict[str, Any]]],
    predictions: dict[str, dict[str, str]],
) -> list[str]:
    seen: dict[str, float] = defaultdict(float)
    for uid in labelled:
        for key, value in spec.truth(labels[uid])[0].items():
            seen[key] += value
    for uid in unlabelled:
        for key in spec.predicted(predictions.get(uid, {}))[0]:
            seen.setdefault(key, 0.0)
    return sorted(seen, key=lambda k: (-seen[k], k))


def _estimate_table(
    spec: TableSpec,
    estimator: str,
    categories: list[str],
    known: _Matrix,
    drawn: _Matrix,
    rest: _Matrix,
    weights: np.ndarray,
) -> EstimatedTable:
    n_rest = len(rest.yhat_den)
    known_den = float(known.y_den.sum())
    if estimator == ppi.NAME:
        den = ppi.ppi_count(known_den, drawn.y_den, drawn.yhat_den, rest.yhat_den, weights)
    else:
        den = Interval(known_den, known_den, known_den + n_rest)
        if spec.among == "issues":  # every issue counts: the denominator is known
            den = Interval(known_den + n_rest, known_den + n_rest, known_den + n_rest)
    table = EstimatedTable(spec.name, spec.among, estimator, den)
    for category in categories:
        labelled = float(known.y[category].sum())
        if estimator == ppi.NAME:
            count = ppi.ppi_count(
                labelled, drawn.y[category], drawn.yhat[category], rest.yhat[category], weights
            )
            share = _share(spec, count, den, labelled, known_den, drawn, rest, category, weights)
        else:
            count = Interval(labelled, labelled, labelled + n_rest)
            share = _bounded_share(count, den, n_rest) if estimator == BOUNDS else count
            if estimator == EXACT:
                exact = labelled / known_den if known_den else float("nan")
                share = Interval(exact, exact, exact)
        table.rows.append(EstimatedRow(category, labelled, count, share))
    return table


def _share(
    spec: TableSpec,
    count: Interval,
    den: Interval,
    labelled: float,
    known_den: float,
    drawn: _Matrix,
    rest: _Matrix,
    category: str,
    weights: np.ndarray,
) -> Interval:
    if spec.among == "issues":  # the denominator, the population's size, is known
        return count.shifted(0.0, 1.0 / den.estimate)
    return ppi.ppi_share(
        ppi.RatioInputs(
            labelled,
            known_den,
            drawn.y[category],
            drawn.y_den,
            drawn.yhat[category],
            drawn.yhat_den,
            rest.yhat[category],
            rest.yhat_den,
        ),
        weights,
    )


def _bounded_share(count: Interval, den: Interval, n_rest: int) -> Interval:
    """What labels alone prove about a share: none of the unlabelled issues has the
    property, or all of them do (shares among issues: the denominator is known)."""
    if den.low == den.high:
        return count.shifted(0.0, 1.0 / den.low) if den.low else Interval(float("nan"), 0, 1)
    total = den.low + n_rest
    middle = count.low / den.low if den.low else float("nan")
    low, high = count.low / total, (count.low + n_rest) / total
    return Interval(middle, low if middle != middle else min(low, middle), high)


def _quantified_table(
    spec: TableSpec,
    categories: list[str],
    labels: dict[str, list[dict[str, Any]]],
    predicted_population: tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]]],
    labelled_unlabelled: tuple[list[str], list[str]],
    calibration: dict[str, Any],
    truth_rows: dict[str, list[dict[str, Any]]],
) -> EstimatedTable | None:
    """The table by probabilistic adjusted classify-and-count where every issue has the
    probabilities it needs (issue types, stages, how-to topics), else by adjusted
    classify-and-count; None when it cannot be (no model for it, no calibration data, a
    multi-label table)."""
    from issueminer.analyse.estimate.calibration import (
        TABLE_TARGET,
        composite,
        probabilistic,
        quantified_rows,
        quantify_table,
    )

    calibrated = calibration.get(TABLE_TARGET.get(spec.name, ""))
    if not calibrated or not calibrated.labels:
        return None
    predicted = calibrated.labels
    predictions, probabilities = predicted_population
    labelled, unlabelled = labelled_unlabelled
    cal_uids = [uid for uid in sorted(predicted) if uid in truth_rows]
    truth = [composite(*spec.truth(truth_rows[uid])) for uid in cal_uids]
    name = acc.PACC_NAME
    result = probabilistic(
        spec.name,
        truth,
        [calibrated.probabilities.get(uid, {}) for uid in cal_uids],
        [probabilities.get(uid, {}) for uid in unlabelled],
        categories,
    )
    if result is None:  # no probabilities for every issue: the labels' counts
        name = acc.ACC_NAME
        result = quantify_table(
            truth,
            [composite(*spec.predicted(predicted[uid])) for uid in cal_uids],
            [composite(*spec.predicted(predictions.get(uid, {}))) for uid in unlabelled],
            categories,
        )
    if result is None:
        return None
    known: dict[str, float] = defaultdict(float)
    known_den = 0.0
    for uid in labelled:
        keys, den = spec.truth(labels[uid])
        known_den += den
        for key, value in keys.items():
            known[key] += value
    den_interval, rows = quantified_rows(
        result, categories, known, known_den, len(unlabelled), spec.among == "issues"
    )
    table = EstimatedTable(spec.name, spec.among, name, den_interval)
    for category, count, share in rows:
        table.rows.append(EstimatedRow(category, known.get(category, 0.0), count, share))
    return table
