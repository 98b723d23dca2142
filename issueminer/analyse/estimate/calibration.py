"""Calibration data for the quantification estimator: the classifier's out-of-fold
predictions on the study's labelled issues, and the tables estimated with them.

For each target (issue type, stage, symptom, how-to topic) the labelled issues with text
are split into folds; a model trained on the other folds (as `issueminer train` trains:
same features and classifier) predicts each held-out issue, so every labelled issue gets a
prediction from a model that never saw it. Issues without a label for the target (how-to
questions for the stage model) are predicted by a model trained on all of the target's
labels, which never saw them either. The pairs (true label, predicted label) are M's data
in `quantify`.

A table is quantified on composite classes, so that its shares need no second model's
errors to be ignored: an issue's class is the table's category when it is of the table's
kind (a fault, for stages) and `OTHER` otherwise, both for its true label and for its
predictions (the issue-type model's and the table's model's together). With the models'
probabilities (PACC), an issue's scores are its expected composite class: P(fault) times
P(stage) for a stage, 1 - P(fault) for `OTHER`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from issueminer.analyse.classify import (
    Examples,
    get_target,
    load_examples,
    predict,
    train_model,
)
from issueminer.analyse.classify.evaluation import fold_indices, stratification_keys
from issueminer.analyse.estimate import quantify as acc
from issueminer.analyse.estimate.sample import Interval
from issueminer.taxonomy import Taxonomy

OTHER = "(other)"  # not of the table's kind (not a fault, for a fault table)
NONE = "(none)"  # of the table's kind but without this dimension (a fault without inner)
TABLE_TARGET = {  # the model whose predictions a table's categories come from
    "issue_types": "issue_type",
    "stages": "stage",
    "inner_categories": "symptom",
    "leaf_symptoms": "symptom",
    "howto_topics": "howto_topic",
}
Predicted = dict[str, dict[str, str]]  # uid -> field -> label
Scores = dict[str, dict[str, dict[str, float]]]  # uid -> field -> label -> probability
FAULT_FIELDS = {"stages": ("fault", "stage"), "howto_topics": ("how-to question", "howto_topic")}


@dataclass
class Calibrated:
    """Out-of-fold predictions of one model: labels and probabilities per issue."""

    labels: Predicted = field(default_factory=dict)
    probabilities: Scores = field(default_factory=dict)


def out_of_fold(
    session: Session,
    taxonomy: Taxonomy,
    target_name: str,
    folds: int = 5,
    seed: int = 0,
    types: Examples | None = None,
) -> Calibrated:
    """Every labelled issue with text, predicted by a `target_name` model that did not see
    it (see the module docstring); {} when the target has too few labels to learn.
    `types`: the issue-type examples (every labelled issue with text), when already read."""
    if types is None:
        types = load_examples(session, get_target("issue_type"), taxonomy)
    target = get_target(target_name)
    examples = types if target_name == "issue_type" else load_examples(session, target, taxonomy)
    everyone = types.documents
    labels = examples.labels
    if len({str(v) for v in labels}) < 2 or len(labels) < folds:
        return Calibrated()
    try:
        return _predicted_out_of_fold(examples, everyone, target, taxonomy, folds, seed)
    except ValueError:  # a fold the model cannot learn from (one label, no usable word)
        return Calibrated()


def _predicted_out_of_fold(
    examples: Any, everyone: list[Any], target: Any, taxonomy: Taxonomy, folds: int, seed: int
) -> Calibrated:
    labels = examples.labels
    found = Calibrated(defaultdict(dict), defaultdict(dict))
    splits = fold_indices(stratification_keys(target, labels), folds, seed)
    for train, test in splits:
        model = train_model(
            [examples.documents[i] for i in train],
            [labels[i] for i in train],
            target,
            taxonomy,
            folds=0,
        )
        for p in predict(model, [examples.documents[i] for i in test]):
            found.labels[p.uid][p.field] = p.label
            found.probabilities[p.uid][p.field] = p.probabilities
    learned = {d.uid for d in examples.documents}
    rest = [d for d in everyone if d.uid not in learned]
    if rest:
        model = train_model(examples.documents, labels, target, taxonomy, folds=0)
        for p in predict(model, rest):
            found.labels[p.uid][p.field] = p.label
            found.probabilities[p.uid][p.field] = p.probabilities
    return Calibrated(dict(found.labels), dict(found.probabilities))


def composite(keys: dict[str, float], denominator: float) -> str:
    """An issue's one class for a single-label table (see the module docstring)."""
    if denominator <= 0:
        return OTHER
    return next(iter(keys)) if keys else NONE


def quantify_table(
    truth: Sequence[str],
    calibration: Sequence[str],
    population: Sequence[str],
    categories: Sequence[str],
    seed: int = 0,
) -> acc.Quantified | None:
    """ACC on composite classes: `truth`/`calibration` are the labelled issues' true and
    out-of-fold predicted classes, `population` the unlabelled issues' predicted ones."""
    if not truth or not population:
        return None
    classes = list(dict.fromkeys([*categories, *truth, NONE, OTHER]))
    predicted = list(dict.fromkeys([*classes, *calibration, *population]))
    index = {c: i for i, c in enumerate(classes)}
    column = {c: i for i, c in enumerate(predicted)}
    true_idx = [index.get(t, index[OTHER]) for t in truth]
    return acc.quantify(
        true_idx,
        acc.one_hot([column[c] for c in calibration], len(predicted)),
        acc.one_hot([column[c] for c in population], len(predicted)),
        classes,
        seed=seed,
    )


def quantified_rows(
    result: acc.Quantified,
    categories: Sequence[str],
    known: dict[str, float],
    known_den: float,
    n_rest: int,
    among_all: bool,
) -> tuple[Interval, list[tuple[str, Interval, Interval]]]:
    """The denominator and each category's (count, share) intervals: labelled counts plus
    |U| times the quantified shares; shares among the table's kind (or all issues)."""
    classes = result.classes
    kind = np.array([c != OTHER for c in classes])
    den = result.derived(lambda s: s[:, kind].sum(axis=1)).shifted(known_den, n_rest)
    if among_all:
        den = Interval(known_den + n_rest, known_den + n_rest, known_den + n_rest)
    rows = []
    shown = [c for c in dict.fromkeys([*categories, *classes]) if c not in (OTHER, NONE)]
    for category in shown:
        j = classes.index(category)
        count = result.interval(j).shifted(known.get(category, 0.0), n_rest)

        def share(s: np.ndarray, j: int = j, category: str = category) -> np.ndarray:
            total = den.estimate if among_all else known_den + n_rest * s[:, kind].sum(axis=1)
            return (known.get(category, 0.0) + n_rest * s[:, j]) / np.maximum(total, 1e-12)

        rows.append((category, count, result.derived(share).clipped(0.0, 1.0)))
    return den, rows


def by_target(
    session: Session, taxonomy: Taxonomy, tables: Sequence[str], folds: int = 5
) -> dict[str, Calibrated]:
    """Out-of-fold predictions of every model the tables need, with the issue-type
    model's merged in (a table's composite class reads both)."""
    needed = {"issue_type", *(TABLE_TARGET[t] for t in tables if t in TABLE_TARGET)}
    # every model is calibrated against the issue-type examples: read them (texts, replies)
    # once, not once per model and again as its own target
    types = load_examples(session, get_target("issue_type"), taxonomy)
    found = {
        name: out_of_fold(session, taxonomy, name, folds, types=types) for name in sorted(needed)
    }
    types = found["issue_type"]
    merged: dict[str, Calibrated] = {"issue_type": types}
    for name, calibrated in found.items():
        if name == "issue_type":
            continue
        merged[name] = Calibrated(
            {u: {**f, **types.labels.get(u, {})} for u, f in calibrated.labels.items()},
            {
                u: {**f, **types.probabilities.get(u, {})}
                for u, f in calibrated.probabilities.items()
            },
        )
    return merged


def composite_scores(
    table: str, probabilities: dict[str, dict[str, float]], classes: Sequence[str]
) -> np.ndarray | None:
    """An issue's expected composite class (PACC's scores): for issue types the model's
    probabilities; for stages and how-to topics P(kind) times P(category), the rest
    OTHER. None when a probability the table needs is missing."""
    index = {c: i for i, c in enumerate(classes)}
    scores = np.zeros(len(classes))
    types = probabilities.get("issue_type")
    if not types:
        return None
    if table == "issue_types":
        for label, p in types.items():
            scores[index.get(label, index[OTHER])] += float(p)
        return scores
    kind, dimension = FAULT_FIELDS[table]
    within = probabilities.get(dimension)
    if not within:
        return None
    p_kind = float(types.get(kind, 0.0))
    total = sum(float(p) for p in within.values()) or 1.0
    for label, p in within.items():
        scores[index.get(label, index[NONE])] += p_kind * float(p) / total
    scores[index[OTHER]] += 1.0 - p_kind
    return scores


def probabilistic(
    table: str,
    truth: Sequence[str],
    calibration: Sequence[dict[str, dict[str, float]]],
    population: Sequence[dict[str, dict[str, float]]],
    categories: Sequence[str],
    seed: int = 0,
) -> acc.Quantified | None:
    """PACC on composite classes when every issue has the probabilities the table needs
    (issue types, stages, how-to topics); None otherwise."""
    if table not in ("issue_types", *FAULT_FIELDS) or not truth or not population:
        return None
    classes = list(dict.fromkeys([*categories, *truth, NONE, OTHER]))
    cal = [composite_scores(table, p, classes) for p in calibration]
    pop = [composite_scores(table, p, classes) for p in population]
    if any(row is None for row in cal) or any(row is None for row in pop):
        return None
    index = {c: i for i, c in enumerate(classes)}
    return acc.quantify([index[t] for t in truth], np.array(cal), np.array(pop), classes, seed=seed)
