"""Inter-rater agreement: percent agreement, Cohen's kappa, Krippendorff's alpha (nominal).

Computed from the current annotation of each (issue, annotator, round): the newest save.
An item counts for a dimension when at least two annotators gave it a value there. Only a
round's members count: a name outside the round (a typo, another case) is no second opinion.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issueminer.store import ANNOTATOR, RETRACTED, Annotation, LabelingRound


def _fix_patterns(annotation: Annotation) -> str | None:
    # a set of patterns is one nominal value: annotators agree when they chose the same set
    return " & ".join(sorted(annotation.fix_patterns)) if annotation.fix_patterns else None


DIMENSIONS: dict[str, Callable[[Annotation], Hashable | None]] = {
    "issue_type": lambda a: a.issue_type,
    "stage": lambda a: a.stage,
    "leaf_symptom": lambda a: a.leaf_symptom,
    "fix_pattern": _fix_patterns,
    "howto_topic": lambda a: a.howto_topic,
}


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items; None when chance agreement is 1."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Nominal alpha; each unit lists the values its raters gave (None = not rated)."""
    coincidences: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue  # a value nobody else rated cannot be compared
        for i, j in combinations(range(m), 2):
            coincidences[(values[i], values[j])] += 1 / (m - 1)
            coincidences[(values[j], values[i])] += 1 / (m - 1)
    totals: Counter[Hashable] = Counter()
    for (c, _k), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    if n <= 1:
        return None
    disagreement = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if expected == 0:
        return None
    return 1 - (n - 1) * disagreement / expected


@dataclass
class AgreementRow:
    round: str
    dimension: str
    n: int
    agreement: float | None
    kappa: float | None
    alpha: float | None
    annotators: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def newest_annotation_ids(role: str | None = ANNOTATOR, round_name: str | None = None) -> Any:
    """Subquery: the id of the newest annotation per (issue, annotator, round), the current
    label; `role=None` takes every role, each on its own (an adjudication is not a save)."""
    groups = [Annotation.issue_uid, Annotation.annotator, Annotation.round]
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


def agreement_table(session: Session, round_name: str | None = None) -> list[AgreementRow]:
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
        for dimension, value_of in DIMENSIONS.items():
            rows.append(_dimension_row(name, dimension, annotations, annotators, value_of))
    return rows


def round_order(name: str | None) -> tuple[int, str]:
    """Sort key of round names: round2 before round10; names without a number last."""
    digits = "".join(ch for ch in name or "" if ch.isdigit())
    return (int(digits) if digits else 10**9, name or "")


def _dimension_row(
    name: str,
    dimension: str,
    annotations: list[Annotation],
    annotators: list[str],
    value_of: Callable[[Annotation], Hashable | None],
) -> AgreementRow:
    table: dict[str, dict[str, Hashable | None]] = defaultdict(dict)
    for annotation in annotations:
        if annotation.status in ("skipped", RETRACTED):
            continue
        table[annotation.issue_uid][annotation.annotator] = value_of(annotation)
    units = [[ratings.get(a) for a in annotators] for ratings in table.values()]
    units = [u for u in units if sum(v is not None for v in u) >= 2]
    kappas, agreements = [], []
    for i, j in combinations(range(len(annotators)), 2):
        pairs = [(u[i], u[j]) for u in units if u[i] is not None and u[j] is not None]
        if not pairs:
            continue
        first, second = zip(*pairs, strict=True)
        agreements.append(sum(a == b for a, b in pairs) / len(pairs))
        kappa = cohen_kappa(first, second)
        if kappa is not None:
            kappas.append(kappa)
    # with more than two annotators, kappa is the mean over pairs (Light's kappa)
    return AgreementRow(
        round=name,
        dimension=dimension,
        n=len(units),
        agreement=_mean(agreements),
        kappa=_mean(kappas),
        alpha=krippendorff_alpha(units),
        annotators=annotators,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
