"""Inter-rater agreement per round and dimension, with intervals and what was left out.

Computed from the current annotation of each (issue, annotator, round): the newest save.
Only a round's members count: a name outside the round (a typo, another case) is no second
opinion. Which items a figure counts is a stated rule (`MISSING_RULES`):

- `skip` (the default): an item counts for a dimension when at least two annotators gave it
  a value there (a fault/how-to disagreement drops the item from the symptom figure);
- `as-category`: "no value" is a value of its own, so every item that at least one
  annotator gave a value, and at least two labelled, counts (the unconditional figures).

Under both rules an item is left out when an annotator left the label pending (a
placeholder such as PENDING in a cell: not decided) without a value there, or when the
importer inferred the annotator's issue type from the other cells (no judgement was
typed); each row says how many items each reason left out.
Symptoms are compared with their path (stage, inner category): the same leaf name under two
stages, or two inner categories, is two values.
The statistics themselves are in `reliability`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issueminer.label import reliability as rel
from issueminer.store import ANNOTATOR, RETRACTED, Annotation, LabelingRound

SKIP, AS_CATEGORY = "skip", "as-category"
MISSING_RULES = (SKIP, AS_CATEGORY)
MISSING_TEXT = {
    SKIP: "an item counts for a dimension when at least two annotators gave it a value there",
    AS_CATEGORY: "'no value' is a category: an item counts when at least two annotators "
    "labelled it and at least one gave the dimension a value",
}
NO_VALUE = "(none)"
LEFT_OUT = ("pending", "inferred", "unlabelled", "no_value")
LEFT_OUT_TEXT = {
    "pending": "an annotator left the label pending (PENDING: not decided) with no value here",
    "inferred": "the importer inferred an annotator's issue type (none was typed)",
    "unlabelled": "fewer than two annotators labelled the issue",
    "no_value": "another annotator gave the dimension no value (rule skip)",
}
LEAF_SEPARATOR = " > "  # between stage, inner category and leaf ("/" occurs in leaf names)


@dataclass(frozen=True)
class Dimension:
    value_of: Callable[[Annotation], Hashable | None]
    cell: str  # its cell in raw_labels (the cells as typed)
    sets: bool = False  # a set of values: MASI-distance alpha beside exact match


def _leaf(annotation: Annotation) -> str | None:
    # a leaf is named with its path: "device error" under two stages, or "others" under two
    # inner categories of one stage, is two symptoms
    if not annotation.leaf_symptom:
        return None
    path = (annotation.stage, annotation.inner_category, annotation.leaf_symptom)
    return LEAF_SEPARATOR.join(p for p in path if p)


def _fix_patterns(annotation: Annotation) -> tuple[str, ...] | None:
    return tuple(sorted(annotation.fix_patterns)) if annotation.fix_patterns else None


DIMENSIONS: dict[str, Dimension] = {
    "issue_type": Dimension(lambda a: a.issue_type, "issue_type"),
    "stage": Dimension(lambda a: a.stage, "stage"),
    "leaf_symptom": Dimension(_leaf, "leaf_symptom"),
    "fix_pattern": Dimension(_fix_patterns, "fix_patterns", sets=True),
    "howto_topic": Dimension(lambda a: a.howto_topic, "howto_topic"),
}


def shown(value: Hashable) -> str:
    """A value as tables print it: a set of fix patterns joined with ' & '."""
    if isinstance(value, tuple):
        return " & ".join(value) if value else NO_VALUE
    return str(value)


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items (scikit-learn's); None when chance
    agreement is 1."""
    return rel.cohen([shown(v) for v in first], [shown(v) for v in second])


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Nominal alpha (the `krippendorff` package); each unit lists the values its raters
    gave (None = not rated)."""
    if not units:
        return None
    return rel.alpha(rel.Units.from_rows(units))


@dataclass
class AgreementRow:
    round: str
    dimension: str
    n: int
    agreement: float | None
    kappa: float | None
    alpha: float | None
    annotators: list[str]
    missing: str = SKIP
    agreement_ci: list[float] | None = None
    kappa_ci: list[float] | None = None
    kappa_band: str | None = None
    alpha_ci: list[float] | None = None
    # fix patterns: alpha with the MASI distance between sets (None for other dimensions)
    alpha_masi: float | None = None
    alpha_masi_ci: list[float] | None = None
    # three or more annotators: Fleiss' kappa over the items all of them labelled
    fleiss: float | None = None
    fleiss_ci: list[float] | None = None
    fleiss_n: int | None = None
    left_out: dict[str, int] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def newest_annotation_ids(role: str | None = ANNOTATOR, round_name: str | None = None) -> Any:
    """Subquery: the id of the newest annotation per (issue, annotator, round, part), the
    current label; `role=None` takes every role, each on its own (an adjudication is not a
    save). An issue holding several faults has one label per part in a round (issue 22)."""
    groups = [Annotation.issue_uid, Annotation.annotator, Annotation.round, Annotation.part]
    newest = select(func.max(Annotation.id))
    if role is None:
        newest = newest.group_by(*groups, Annotation.role)
    else:
        newest = newest.where(Annotation.role == role).group_by(*groups)
    if round_name is not None:
        newest = newest.where(Annotation.round == round_name)
    return newest


def live_labels(role: str | None = ANNOTATOR, round_name: str | None = None) -> tuple[Any, Any]:
    """Where-conditions for the labels that hold now: the newest annotation per (issue,
    annotator, round), unless it undid the one before (then that person has no label)."""
    newest = newest_annotation_ids(role, round_name)
    return Annotation.id.in_(newest), Annotation.status != RETRACTED


def current_annotations(
    session: Session, round_name: str | None = None, role: str = ANNOTATOR, *, live: bool = False
) -> list[Annotation]:
    """The newest annotation per (issue, annotator, round); with `live`, not the undone."""
    if live:
        where = live_labels(role, round_name)
    else:
        where = (Annotation.id.in_(newest_annotation_ids(role, round_name)),)
    query = select(Annotation).where(*where).order_by(Annotation.id)
    return list(session.scalars(query))


def agreement_table(
    session: Session,
    round_name: str | None = None,
    missing: str = SKIP,
    *,
    resamples: int = rel.RESAMPLES,
    seed: int = rel.SEED,
) -> list[AgreementRow]:
    """One row per round with two or more annotators and per dimension (`DIMENSIONS`)."""
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_RULES)}, not '{missing}'")
    members = {r.name: set(r.annotators) for r in session.scalars(select(LabelingRound))}
    by_round: dict[str, list[Annotation]] = defaultdict(list)
    for annotation in current_annotations(session, round_name):
        name = annotation.round or ""
        if not members.get(name) or annotation.annotator in members[name]:
            by_round[name].append(annotation)
    rows: list[AgreementRow] = []
    for name in sorted(by_round, key=round_order):
        annotations = by_round[name]
        annotators = sorted({a.annotator for a in annotations})
        if len(annotators) < 2:
            continue
        for dimension in DIMENSIONS:
            cells = _cells(annotations, annotators, dimension)
            rows.append(
                _dimension_row(name, dimension, cells, annotators, missing, resamples, seed)
            )
    return rows


def round_order(name: str | None) -> tuple[bool, tuple[int, ...], str]:
    """Sort key of round names by the numbers in them, each run of digits its own number:
    round2 before round10, and 2023-round2 before 2023-round10 and 2024-round1 (joining
    every digit made them 20232, 202310 and 20241); names without a number last."""
    numbers = tuple(int(run) for run in re.findall(r"\d+", name or ""))
    return (not numbers, numbers, name or "")


# What one annotator's label holds for one dimension of one item.
VALUE, NONE, PENDING, INFERRED = "value", "none", "pending", "inferred"


def _state(annotation: Annotation, dimension: str) -> tuple[str, Hashable | None]:
    spec = DIMENSIONS[dimension]
    value = spec.value_of(annotation)
    if value is None:
        # a label left pending (a placeholder such as PENDING in one of its cells) is not
        # finished: where it has no value, nothing was decided yet
        return (PENDING if annotation.status == "pending" else NONE), None
    raw = annotation.raw_labels or {}
    if dimension == "issue_type" and spec.cell in raw and not str(raw[spec.cell] or "").strip():
        return INFERRED, value  # the sheet's cell is empty; the importer filled it in
    return VALUE, value


def _cells(
    annotations: list[Annotation], annotators: list[str], dimension: str
) -> dict[tuple[str, int], list[tuple[str, Hashable | None] | None]]:
    """(issue, part) -> per annotator (state, value), None where that annotator has no
    label: the k-th label of an issue in one sheet is compared with the k-th in another."""
    position = {name: i for i, name in enumerate(annotators)}
    cells: dict[tuple[str, int], list[tuple[str, Hashable | None] | None]] = {}
    for annotation in annotations:
        if annotation.status in ("skipped", RETRACTED):
            continue
        row = cells.setdefault((annotation.issue_uid, annotation.part), [None] * len(annotators))
        row[position[annotation.annotator]] = _state(annotation, dimension)
    return cells


def _unit(
    row: list[tuple[str, Hashable | None] | None], missing: str, sets: bool
) -> tuple[list[Hashable | None] | None, str | None]:
    """The item's values as the figure uses them, or (None, the reason it is left out);
    (None, None) when nobody gave the dimension a value (the item is not in question)."""
    states = [cell[0] if cell else None for cell in row]
    if not any(s in (VALUE, INFERRED) for s in states):
        return None, None
    none = () if sets else NO_VALUE
    values = [
        cell[1] if cell and cell[0] == VALUE else none if cell and cell[0] == NONE else None
        for cell in row
    ]
    if missing == SKIP:
        values = [
            v if cell and cell[0] == VALUE else None for v, cell in zip(values, row, strict=True)
        ]
    if sum(v is not None for v in values) >= 2 and any(s == VALUE for s in states):
        return values, None
    if PENDING in states:
        return None, "pending"
    if INFERRED in states:
        return None, "inferred"
    if sum(s is not None for s in states) < 2:
        return None, "unlabelled"
    return None, "no_value"


def _dimension_row(
    name: str,
    dimension: str,
    cells: dict[tuple[str, int], list[tuple[str, Hashable | None] | None]],
    annotators: list[str],
    missing: str,
    resamples: int,
    seed: int,
) -> AgreementRow:
    sets = DIMENSIONS[dimension].sets
    left_out = dict.fromkeys(LEFT_OUT, 0)
    kept: list[list[Hashable | None]] = []
    for item in sorted(cells):
        values, reason = _unit(cells[item], missing, sets)
        if values is not None:
            kept.append(values)
        elif reason:
            left_out[reason] += 1
    units = rel.Units.from_rows(kept)
    row = AgreementRow(
        round=name,
        dimension=dimension,
        n=len(kept),
        agreement=None,
        kappa=None,
        alpha=None,
        annotators=annotators,
        missing=missing,
        left_out=left_out,
    )
    if kept:
        _fill(row, units, sets, rel.resample_weights(len(kept), resamples, seed, name, dimension))
    return row


def _fill(row: AgreementRow, units: rel.Units, sets: bool, weights: np.ndarray) -> None:
    """The row's figures (the libraries') and their bootstrap intervals (`weights`)."""
    nominal = rel.nominal(units.values)
    kappas, agreements, sample_kappas, sample_agreements = [], [], [], []
    for i, j in rel.pairs_of(row.annotators):
        both = (units.codes[:, i] >= 0) & (units.codes[:, j] >= 0)
        first = [units.values[c] for c in units.codes[both, i]]
        second = [units.values[c] for c in units.codes[both, j]]
        if not first:
            continue
        _, observed, kappa = rel.weighted_pair(units, i, j, weights)
        pair_kappa = cohen_kappa(first, second)
        agreement = sum(a == b for a, b in zip(first, second, strict=True)) / len(first)
        agreements.append(agreement)
        sample_agreements.append(observed)
        if pair_kappa is not None:
            kappas.append(pair_kappa)
            sample_kappas.append(kappa)
        row.pairs.append(
            {
                "annotators": [row.annotators[i], row.annotators[j]],
                "n": len(first),
                "agreement": agreement,
                "kappa": pair_kappa,
                "kappa_ci": rel.interval(kappa),
                "kappa_band": rel.landis_koch(pair_kappa),
            }
        )
        row.confusions.append(
            {"annotators": [row.annotators[i], row.annotators[j]], **_shown(units, i, j)}
        )
    # with more than two annotators, kappa is the mean over pairs (Light's kappa)
    row.agreement = _mean(agreements)
    row.agreement_ci = _mean_interval(sample_agreements)
    row.kappa = _mean(kappas)
    row.kappa_ci = _mean_interval(sample_kappas)
    row.kappa_band = rel.landis_koch(row.kappa)
    counts = units.value_counts()
    row.alpha = rel.alpha(units)
    row.alpha_ci = rel.interval(rel.weighted_alpha(counts, nominal, weights))
    if sets:
        masi = rel.distance_matrix(
            units.values, lambda a, b: rel.masi_distance(frozenset(a), frozenset(b))
        )
        row.alpha_masi = rel.alpha(units, masi)
        row.alpha_masi_ci = rel.interval(rel.weighted_alpha(counts, masi, weights))
    if len(row.annotators) >= 3:
        row.fleiss, row.fleiss_n = rel.fleiss(units)
        row.fleiss_ci = rel.interval(rel.weighted_fleiss(units, weights))
    row.categories = [
        {**entry, "category": shown(entry["category"])} for entry in rel.specific_agreement(units)
    ]


def _shown(units: rel.Units, i: int, j: int) -> dict[str, Any]:
    table = rel.confusion(units, i, j)
    return {"labels": [shown(v) for v in table["labels"]], "counts": table["counts"]}


def _mean_interval(samples: list[np.ndarray]) -> list[float] | None:
    # the interval of the mean over pairs: each resample's mean of the pairs' figures (a
    # resample in which no pair has a figure stays undefined)
    if not samples:
        return None
    stacked = np.vstack(samples)
    defined = (~np.isnan(stacked)).sum(axis=0)
    means = np.where(defined > 0, np.nansum(stacked, axis=0) / np.maximum(defined, 1), np.nan)
    return rel.interval(means)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
