"""Labelling sessions as plain functions: rounds, queues, saves, undo, adjudication.

The web app (`issueminer.label.webapp`) is a thin layer over these; each can be tested without
a server. Every save appends an `Annotation` row; nothing is updated in place.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from issueminer.findings import Report
from issueminer.label.agreement import current_annotations, live_labels
from issueminer.label_cells import OLD_CELL_NAMES, Labels, Where, normalise_labels
from issueminer.store import (
    ADJUDICATOR,
    ANNOTATOR,
    LABEL_CELLS,
    LABEL_FIELDS,
    RETRACTED,
    STATUSES,
    Annotation,
    FinalLabel,
    Issue,
    LabelingRound,
    Prediction,
    RoundItem,
    label_values,
)
from issueminer.taxonomy import Taxonomy

UNDO = "app:undo"  # provenance of the rows that undo a save
# provenance prefix of rows `taxonomy merge` appended (see issueminer.label.taxonomy_merge)
MERGED = "merge:"
SUGGESTIONS = 3
# prediction targets the form can take in one key (see the classifier's target names)
SUGGESTED_TARGETS = ("issue_type", "leaf_symptom", "fix_patterns", "howto_topic")


class LabelingError(ValueError):
    """A request the session cannot honour (unknown round, invalid label, ...)."""


# ---- rounds --------------------------------------------------------------------------------
def create_round(
    session: Session,
    name: str,
    size: int,
    annotators: list[str],
    *,
    stratify: str | None = None,
    seed: int = 0,
    kind: str = "reliability",
) -> list[str]:
    """Draw `size` issues not yet in any round and without a final label; returns their uids.

    With `stratify="source"`, each source gets a share proportional to its size (largest
    remainders), as the study sampled Stack Overflow and GitHub alike.
    """
    if not name.strip():
        raise LabelingError("a round needs a name")
    if session.get(LabelingRound, name) is not None:
        raise LabelingError(f"round '{name}' already exists")
    if size < 1:
        raise LabelingError(f"a round needs at least one issue, not {size}")
    if len(annotators) < 1:
        raise LabelingError("a round needs at least one annotator")
    twice = sorted({a for a in annotators if annotators.count(a) > 1})
    if twice:
        raise LabelingError(f"each annotator once: {', '.join(twice)} named more than once")
    in_a_round = select(RoundItem.issue_uid)
    finalised = select(FinalLabel.issue_uid)
    rows = session.execute(
        select(Issue.uid, Issue.source)
        .where(Issue.uid.not_in(in_a_round), Issue.uid.not_in(finalised), Issue.url.is_not(None))
        .order_by(Issue.uid)
    ).all()
    if size > len(rows):
        raise LabelingError(f"only {len(rows)} unlabelled issues are not in a round yet")
    rng = random.Random(seed)
    if stratify == "source":
        chosen = _stratified(rows, size, rng)
    elif stratify is None:
        chosen = rng.sample([uid for uid, _ in rows], size)
    else:
        raise LabelingError(f"cannot stratify by '{stratify}' (only: source)")
    session.add(
        LabelingRound(
            name=name,
            kind=kind,
            annotators=annotators,
            settings={"size": size, "seed": seed, "stratify": stratify},
        )
    )
    session.flush()
    session.add_all(
        RoundItem(round=name, issue_uid=uid, position=i) for i, uid in enumerate(chosen)
    )
    return chosen


def _stratified(rows: list[Any], size: int, rng: random.Random) -> list[str]:
    by_source: dict[str, list[str]] = defaultdict(list)
    for uid, source in rows:
        by_source[source].append(uid)
    total = len(rows)
    quotas = {s: size * len(uids) / total for s, uids in by_source.items()}
    counts = {s: int(q) for s, q in quotas.items()}
    for source in sorted(quotas, key=lambda s: quotas[s] - counts[s], reverse=True):
        if sum(counts.values()) >= size:
            break
        counts[source] += 1
    chosen = [uid for s in sorted(by_source) for uid in rng.sample(by_source[s], counts[s])]
    rng.shuffle(chosen)  # annotators should not see all of one source first
    return chosen


def get_round(session: Session, name: str) -> LabelingRound:
    labeling_round = session.get(LabelingRound, name)
    if labeling_round is None:
        raise LabelingError(f"no round '{name}'")
    return labeling_round


def round_issue_uids(
    session: Session, name: str, labelled: dict[str, Any] | None = None
) -> list[str]:
    """The round's issues in the order annotators see them; for a round labelled before it
    came here (imported, so nothing was drawn), the issues labelled in it (`labelled`: the
    round's `_current_by_issue`, when the caller has it already)."""
    drawn = list(
        session.scalars(
            select(RoundItem.issue_uid).where(RoundItem.round == name).order_by(RoundItem.position)
        )
    )
    if drawn:
        return drawn
    return sorted(labelled if labelled is not None else _current_by_issue(session, name))


def round_status(session: Session, name: str) -> list[dict[str, Any]]:
    """Per annotator: done, pending, skipped and left in the round."""
    labeling_round = get_round(session, name)
    by_issue = _current_by_issue(session, name)
    size = len(round_issue_uids(session, name, by_issue))
    rows = []
    for annotator in labeling_round.annotators:
        counts = Counter(
            labels[annotator].status for labels in by_issue.values() if annotator in labels
        )
        rows.append(
            {
                "round": name,
                "annotator": annotator,
                "size": size,
                "done": counts["done"],
                "pending": counts["pending"],
                "skipped": counts["skipped"],
                "left": size - counts["done"] - counts["pending"] - counts["skipped"],
            }
        )
    return rows


# ---- the queue -----------------------------------------------------------------------------
def _in_round(column: Any, round_name: str | None) -> Any:
    """Annotations of the round, or (no round: the open queue) those saved outside any round."""
    return column.is_(None) if round_name is None else column == round_name


def _newest_status(annotator: str, round_name: str | None) -> Any:
    """Correlated subquery: the status of the annotator's newest save of the issue ('none')."""
    latest = aliased(Annotation)
    status = (
        select(latest.status)
        .where(
            latest.issue_uid == Issue.uid,
            latest.annotator == annotator,
            _in_round(latest.round, round_name),
            latest.role == ANNOTATOR,
        )
        .order_by(latest.id.desc())
        .limit(1)
        .correlate(Issue)
        .scalar_subquery()
    )
    return func.coalesce(status, "none")


def next_issue(
    session: Session, annotator: str, round_name: str | None, after: str | None = None
) -> str | None:
    """The next issue to label: not yet done or skipped by this annotator; pending ones last."""
    for statuses in ((*STATUSES,), ("done", "skipped")):
        query = select(Issue.uid).where(_newest_status(annotator, round_name).not_in(statuses))
        if round_name is not None:
            query = query.join(
                RoundItem, and_(RoundItem.issue_uid == Issue.uid, RoundItem.round == round_name)
            )
            query = query.order_by(RoundItem.position)
        else:
            query = query.where(
                Issue.text.is_not(None), ~exists().where(FinalLabel.issue_uid == Issue.uid)
            )
            query = query.order_by(Issue.uid)
        uids = list(session.scalars(query.limit(2)))
        uids = [u for u in uids if u != after] or uids
        if uids:
            return uids[0]
    return None


def progress(
    session: Session, annotator: str, round_name: str | None, total: int | None = None
) -> dict[str, int]:
    """Done, pending, skipped and left; `total` may be passed in when the caller caches it."""
    counts = _status_counts(session, annotator, round_name)  # "retracted" is not counted
    if total is None:
        total = queue_size(session, round_name)
    return {
        "done": counts["done"],
        "pending": counts["pending"],
        "skipped": counts["skipped"],
        "left": max(0, total - counts["done"] - counts["pending"] - counts["skipped"]),
        "total": total,
    }


def queue_size(session: Session, round_name: str | None) -> int:
    """Issues in the round, or (without a round) every issue that has text to label."""
    if round_name is not None:
        return (
            session.scalar(
                select(func.count()).select_from(RoundItem).where(RoundItem.round == round_name)
            )
            or 0
        )
    return (
        session.scalar(select(func.count()).select_from(Issue).where(Issue.text.is_not(None))) or 0
    )


def _status_counts(session: Session, annotator: str, round_name: str | None) -> Counter[str]:
    """How many of the annotator's current labels have each status (counted in SQL)."""
    newest = (
        select(func.max(Annotation.id))
        .where(
            Annotation.annotator == annotator,
            Annotation.role == ANNOTATOR,
            _in_round(Annotation.round, round_name),
        )
        .group_by(Annotation.issue_uid)
    )
    query = (
        select(Annotation.status, func.count())
        .where(Annotation.id.in_(newest))
        .group_by(Annotation.status)
    )
    return Counter({status: n for status, n in session.execute(query)})


def current_label(
    session: Session, issue_uid: str, annotator: str, round_name: str | None
) -> Annotation | None:
    annotation = session.scalar(
        select(Annotation)
        .where(
            Annotation.issue_uid == issue_uid,
            Annotation.annotator == annotator,
            Annotation.role == ANNOTATOR,
            _in_round(Annotation.round, round_name),
        )
        .order_by(Annotation.id.desc())
        .limit(1)
    )
    return None if annotation is None or annotation.status == RETRACTED else annotation


# ---- saving --------------------------------------------------------------------------------
def check_labels(taxonomy: Taxonomy, fields: dict[str, Any], status: str) -> Labels:
    """Canonical labels of a form, or LabelingError naming every problem."""
    if status not in STATUSES:
        raise LabelingError(f"status must be one of {STATUSES}")
    cells = _as_written(fields)  # a page loaded before a rename may still post an old name
    if isinstance(cells.get("fix_patterns"), list):
        cells["fix_patterns"] = " & ".join(cells["fix_patterns"])
    report = Report()
    labels = normalise_labels(taxonomy, cells, Where("form"), report)
    # in open coding a proposed category has no place on the tree yet
    fatal = {"unknown-label", "misplaced", "orphan-subtopic"}
    fatal |= set() if taxonomy.open_coding else {"off-tree"}
    problems = [
        f"{f.column}: {f.message}" if f.column else f.message
        for f in report.findings
        if f.kind in fatal
    ]
    if problems and status == "done":
        raise LabelingError("; ".join(p.removeprefix("form: ") for p in problems))
    if status == "done" and labels.issue_type is None:
        raise LabelingError("choose an issue type (or mark the issue pending)")
    return labels


def _as_written(fields: dict[str, Any]) -> dict[str, Any]:
    """The label cells of a form, and any under an old name (`OLD_CELL_NAMES`)."""
    return {
        **{k: fields.get(k) for k in LABEL_CELLS},
        **{k: fields[k] for k in OLD_CELL_NAMES if k in fields},
    }


def save_label(
    session: Session,
    taxonomy: Taxonomy,
    issue_uid: str,
    annotator: str,
    round_name: str | None,
    fields: dict[str, Any],
    status: str = "done",
) -> Annotation:
    """Append one annotation (the annotator's current label for the issue from now on)."""
    if session.get(Issue, issue_uid) is None:
        raise LabelingError(f"no issue {issue_uid}")
    if round_name is not None:
        in_round = session.scalar(
            select(RoundItem.id).where(
                RoundItem.round == round_name, RoundItem.issue_uid == issue_uid
            )
        )
        if in_round is None:
            raise LabelingError(f"issue {issue_uid} is not in round '{round_name}'")
    labels = check_labels(taxonomy, fields, status)
    if status == "skipped" and labels.issue_type is None:
        labels.issue_type = "not relevant"
    annotation = Annotation(
        issue_uid=issue_uid,
        annotator=annotator,
        round=round_name,
        role=ANNOTATOR,
        status=status,
        provenance="app",
        raw_labels=_as_written(fields),
        **labels.fields(),
    )
    session.add(annotation)
    session.flush()
    return annotation


def proposals(session: Session, taxonomy: Taxonomy) -> dict[str, list[tuple[str | None, ...]]]:
    """Categories annotators proposed (open coding): labels in use that the taxonomy lacks.

    Shown in every annotator's pickers so that one name is reused rather than retyped.
    """
    found: dict[str, set[tuple[str | None, ...]]] = defaultdict(set)
    current = live_labels(role=None)  # history (replaced, undone, merged away) proposes nothing
    for table, where in ((Annotation, current), (FinalLabel, ())):
        columns = (table.stage, table.inner_category, table.leaf_symptom, table.howto_topic)
        labels = select(*columns, table.howto_subtopic, table.fix_patterns).where(*where)
        # one read of the current labels (JSON has no equality in PostgreSQL: no DISTINCT)
        for stage, inner, leaf, topic, sub, patterns in session.execute(labels):
            if leaf is not None and not taxonomy.on_tree(stage, inner, leaf):
                found["symptoms"].add((stage, inner, leaf))
            if topic is not None and not (
                taxonomy.is_known("howto_topic", topic)
                and taxonomy.is_known("howto_subtopic", sub, topic)
            ):
                found["howto"].add((topic, sub))
            for name in patterns or []:
                if not taxonomy.is_known("fix_pattern", name):
                    found["fix_patterns"].add((name,))
    return {
        key: sorted(values, key=lambda t: [v or "" for v in t]) for key, values in found.items()
    }


def undo_last(session: Session, annotator: str, round_name: str | None) -> str | None:
    """Undo the newest save not undone yet, by appending the state before it.

    Returns the issue whose label changed. Repeated undos walk back through the saves,
    like an editor's undo; the undone rows stay in the table as history.
    """
    mine = (
        select(Annotation)
        .where(
            Annotation.annotator == annotator,
            Annotation.role == ANNOTATOR,
            _in_round(Annotation.round, round_name),
        )
        .order_by(Annotation.id.desc())
    )
    rows = session.scalars(
        mine.where(
            Annotation.provenance.in_(("app", UNDO)) | Annotation.provenance.startswith(MERGED)
        )
    ).all()
    undone = {r.raw_labels.get("undo_of") for r in rows if r.provenance == UNDO}
    target = None
    for row in rows:
        if (row.provenance or "").startswith(MERGED):
            return None  # undo stops at a merge: going past it would bring back the old name
        if row.provenance == "app" and row.id not in undone:
            target = row
            break
    if target is None:
        return None
    before = session.scalar(
        mine.where(Annotation.issue_uid == target.issue_uid, Annotation.id < target.id).limit(1)
    )
    restored = label_values(before) if before else {}
    session.add(
        Annotation(
            issue_uid=target.issue_uid,
            annotator=annotator,
            round=target.round,
            role=ANNOTATOR,
            provenance=UNDO,
            status=before.status if before else RETRACTED,
            raw_labels={"undo_of": target.id},
            **restored,
        )
    )
    session.flush()
    return target.issue_uid


# ---- suggestions (from the classifier, when it has run) ----------------------------------
def suggestions(session: Session, issue_uid: str) -> list[dict[str, Any]]:
    """Top predictions of the newest model per target; empty when no classifier has run."""
    rows = session.scalars(
        select(Prediction)
        .where(Prediction.issue_uid == issue_uid)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
    ).all()
    newest: dict[str, Prediction] = {}
    for row in rows:
        # a symptom model also stores its stage and inner category; the leaf implies them
        if row.target not in SUGGESTED_TARGETS:
            continue
        newest.setdefault(row.target, row)
    ranked = []
    for prediction in newest.values():
        probabilities = prediction.probabilities or {prediction.label: prediction.probability}
        for label, p in probabilities.items():
            ranked.append(
                {
                    "target": prediction.target,
                    "label": label,
                    "probability": float(p),
                    "model": prediction.model_id,
                }
            )
    ranked.sort(key=lambda s: -s["probability"])
    return ranked[:SUGGESTIONS]


# ---- adjudication --------------------------------------------------------------------------
@dataclass
class Disagreement:
    issue_uid: str
    labels: dict[str, Annotation]  # annotator -> current label
    dimensions: list[str]  # where they differ


def _current_by_issue(session: Session, round_name: str) -> dict[str, dict[str, Annotation]]:
    """The round's current (not undone) annotator labels: issue -> annotator -> label."""
    by_issue: dict[str, dict[str, Annotation]] = defaultdict(dict)
    for annotation in current_annotations(session, round_name, live=True):
        by_issue[annotation.issue_uid][annotation.annotator] = annotation
    return by_issue


def _field_value(annotation: Annotation, name: str) -> Any:
    value = getattr(annotation, name)
    return tuple(sorted(value or [])) if name == "fix_patterns" else value


def differing_fields(labels: Iterable[Annotation]) -> list[str]:
    """The label fields on which these labels differ: the one rule for "they agree", shared
    by adjudication (what to show) and `finalize_agreed` (what becomes final unasked)."""
    labels = list(labels)
    return [name for name in LABEL_FIELDS if len({_field_value(a, name) for a in labels}) > 1]


def disagreements(session: Session, round_name: str) -> list[Disagreement]:
    """Issues of the round whose annotators' current labels differ, not yet resolved."""
    resolved = set(
        session.scalars(
            select(Annotation.issue_uid).where(
                Annotation.round == round_name, Annotation.role == ADJUDICATOR
            )
        )
    )
    by_issue = _current_by_issue(session, round_name)
    order = {uid: i for i, uid in enumerate(round_issue_uids(session, round_name, by_issue))}
    found = []
    for uid, labels in by_issue.items():
        if len(labels) < 2 or uid in resolved:
            continue
        differing = differing_fields(labels.values())
        if any(a.status != "done" for a in labels.values()):
            differing.append("status")
        if differing:
            found.append(Disagreement(uid, labels, differing))
    return sorted(found, key=lambda d: (order.get(d.issue_uid, 10**9), d.issue_uid))


def resolve(
    session: Session,
    taxonomy: Taxonomy,
    round_name: str,
    issue_uid: str,
    resolver: str,
    fields: dict[str, Any],
) -> FinalLabel:
    """Record the adjudicated label: a final label, and an adjudicator annotation as history."""
    labels = check_labels(taxonomy, fields, "done")
    session.add(
        Annotation(
            issue_uid=issue_uid,
            annotator=resolver,
            round=round_name,
            role=ADJUDICATOR,
            status="done",
            provenance="app:adjudication",
            raw_labels=_as_written(fields),
            **labels.fields(),
        )
    )
    # the adjudicated label replaces whatever final label the issue had
    for old in session.scalars(select(FinalLabel).where(FinalLabel.issue_uid == issue_uid)):
        session.delete(old)
    session.flush()
    final = FinalLabel(
        issue_uid=issue_uid,
        resolved_by=resolver,
        resolved_from=f"round {round_name} adjudication",
        **labels.fields(),
    )
    session.add(final)
    session.flush()
    return final


AGREEMENT = "agreement"  # resolved_by of final labels taken from agreeing annotators


def finalize_agreed(session: Session, round_name: str) -> Counter[str]:
    """Final labels for the round's issues on which every annotator gave the same label.

    Only complete agreement counts: every annotator of the round saved the issue as done
    and every label field is equal. Disagreements are left to adjudication; issues that
    already have a final label are left alone. Returns how many issues ended which way.
    """
    round_annotators = get_round(session, round_name).annotators
    by_issue = _current_by_issue(session, round_name)
    uids = round_issue_uids(session, round_name, by_issue)
    has_final = set(
        session.scalars(select(FinalLabel.issue_uid).where(FinalLabel.issue_uid.in_(uids)))
    )
    counts: Counter[str] = Counter()
    for uid in uids:
        labels = by_issue.get(uid, {})
        if uid in has_final:
            counts["already final"] += 1
        elif len(labels) < max(2, len(round_annotators)) or any(
            a.status != "done" for a in labels.values()
        ):
            counts["not labelled by everyone"] += 1
        elif differing_fields(labels.values()):
            counts["disagreeing (adjudicate)"] += 1
        else:
            first = labels[min(labels)]
            memos = dict.fromkeys(a.memo for a in labels.values() if a.memo)
            session.add(
                FinalLabel(
                    issue_uid=uid,
                    resolved_by=AGREEMENT,
                    resolved_from=f"round {round_name} agreement",
                    **label_values(first, LABEL_FIELDS),
                    memo="; ".join(memos) or None,
                )
            )
            counts["finalized"] += 1
    session.flush()
    return counts
