"""Labelling sessions as plain functions: rounds, queues, saves, undo, adjudication.

The web app (`issueminer.label.webapp`) is a thin layer over these; each can be tested without
a server. Every save appends an `Annotation` row; nothing is updated in place.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from issueminer.findings import Report
from issueminer.label.agreement import current_annotations, live_labels
from issueminer.label.draw import candidate_rows, shortfall, stratified
from issueminer.label_cells import OLD_CELL_NAMES, Labels, Where, normalise_labels
from issueminer.store import (
    ANNOTATOR,
    LABEL_CELLS,
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


class StaleLabel(LabelingError):
    """A save based on a label that has changed since (a second tab, an undo elsewhere)."""

    def __init__(self, saved: Annotation | None, version: int | None) -> None:
        super().__init__(
            "this label was saved again (in another tab or window) after this page was "
            "opened; nothing was saved: keep the saved label, or save yours over it"
        )
        # the label as it stands now, read while its session is open (empty: undone)
        self.labels = label_values(saved) if saved is not None else {}
        self.status = saved.status if saved is not None else None
        self.version = version


# a save from a caller that does not track versions (imports, scripts): never stale
ANY_VERSION: Any = object()


# ---- who may take part ---------------------------------------------------------------------
def check_member(session: Session, round_name: str, name: str) -> None:
    """LabelingError unless `name` labels in the round (names compare exactly, so a typo or
    another case would be a stranger whose labels `agree` counts and `round status` hides)."""
    members = get_round(session, round_name).annotators
    if name in members:
        return
    near = [m for m in members if m.casefold() == name.casefold()]
    hint = f"; did you mean '{near[0]}'? (names compare exactly)" if near else ""
    raise LabelingError(
        f"'{name}' is not a member of round '{round_name}' (members: {', '.join(members)}){hint}"
    )


def check_adjudicator(session: Session, round_name: str, name: str) -> None:
    """LabelingError when adjudicating now would break the round's independence: a member
    sees the other members' labels only once every member has finished the round."""
    if name not in get_round(session, round_name).annotators:
        return
    unfinished = [
        f"{row['annotator']} ({row['left']} left)"
        for row in round_status(session, round_name)
        if row["left"] > 0
    ]
    if unfinished:
        raise LabelingError(
            f"'{name}' labels in round '{round_name}' and would see the others' labels before "
            f"every member has finished: {', '.join(unfinished)}; adjudicate when they are "
            "done, or name someone outside the round"
        )


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
    allow_empty: bool = False,
) -> list[str]:
    """Draw `size` issues not yet in any round and without a final label; returns their uids.

    Only issues with text (a title or a body stored) are drawn unless `allow_empty`: an
    imported study lists many issues by link alone, and annotators cannot label a link
    (`draw.round_candidates` counts what was left out). With `stratify="source"`, each
    source gets a share proportional to its size (largest remainders), as the study sampled
    Stack Overflow and GitHub alike.
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
    every = candidate_rows(session)
    rows = [(uid, source) for uid, source, text in every if text or allow_empty]
    if size > len(rows):
        raise LabelingError(shortfall(size, len(rows), len(every) - len(rows)))
    rng = random.Random(seed)
    if stratify == "source":
        chosen = stratified(rows, size, rng)
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
    round's `current_by_issue`, when the caller has it already)."""
    drawn = list(
        session.scalars(
            select(RoundItem.issue_uid).where(RoundItem.round == name).order_by(RoundItem.position)
        )
    )
    if drawn:
        return drawn
    return sorted(labelled if labelled is not None else current_by_issue(session, name))


def in_round(session: Session, name: str, issue_uid: str) -> bool:
    """Whether the issue was drawn into the round (the one query a save or page needs)."""
    return (
        session.scalar(
            select(RoundItem.id).where(RoundItem.round == name, RoundItem.issue_uid == issue_uid)
        )
        is not None
    )


def round_status(session: Session, name: str) -> list[dict[str, Any]]:
    """Per annotator: done, pending, skipped and left in the round."""
    labeling_round = get_round(session, name)
    by_issue = current_by_issue(session, name)
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


def newest_row(
    session: Session, issue_uid: str, annotator: str, round_name: str | None
) -> Annotation | None:
    """The annotator's newest row for the issue, an undo included: its id is the version a
    save must be based on."""
    return session.scalar(
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


def standing(row: Annotation | None) -> Annotation | None:
    """The label a newest row leaves standing: none when it undid the one before."""
    return None if row is None or row.status == RETRACTED else row


def current_label(
    session: Session, issue_uid: str, annotator: str, round_name: str | None
) -> Annotation | None:
    return standing(newest_row(session, issue_uid, annotator, round_name))


# ---- saving --------------------------------------------------------------------------------
def check_labels(taxonomy: Taxonomy, fields: dict[str, Any], status: str) -> Labels:
    """Canonical labels of a form, or LabelingError naming every problem."""
    if status not in STATUSES:
        raise LabelingError(f"status must be one of {STATUSES}")
    cells = as_written(fields)  # a page loaded before a rename may still post an old name
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
    missing = taxonomy.missing(labels.fields()) if status == "done" else []
    if missing:  # the study file's `required:`; pending and skipped labels may be partial
        names = [taxonomy.label(dimension) for dimension in missing]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        raise LabelingError(
            f"a {labels.issue_type} needs its {listed} before it can be done "
            "(or mark the issue pending)"
        )
    return labels


def as_written(fields: dict[str, Any]) -> dict[str, Any]:
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
    based_on: int | None = ANY_VERSION,
) -> Annotation:
    """Append one annotation (the annotator's current label for the issue from now on).

    `based_on` is the version (`newest_row` id, None for "no label yet") the form was
    opened with; when the label has changed since, StaleLabel is raised and nothing saved.
    """
    if session.get(Issue, issue_uid) is None:
        raise LabelingError(f"no issue {issue_uid}")
    if round_name is not None and not in_round(session, round_name, issue_uid):
        raise LabelingError(f"issue {issue_uid} is not in round '{round_name}'")
    if based_on is not ANY_VERSION:
        newest = newest_row(session, issue_uid, annotator, round_name)
        version = newest.id if newest is not None else None
        if version != based_on:
            raise StaleLabel(standing(newest), version)
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
        raw_labels=as_written(fields),
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


HISTORY = 10  # decisions listed in the app's history panel


def recent_decisions(
    session: Session, annotator: str, round_name: str | None, limit: int = HISTORY
) -> list[dict[str, Any]]:
    """The annotator's newest decisions, one per issue, newest first: what the history panel
    lists, each a click away from editing it again."""
    rows = session.execute(
        select(Annotation.issue_uid, Annotation.status, Annotation.issue_type, Issue.title)
        .join(Issue, Issue.uid == Annotation.issue_uid)
        .where(
            Annotation.annotator == annotator,
            Annotation.role == ANNOTATOR,
            _in_round(Annotation.round, round_name),
        )
        .order_by(Annotation.id.desc())
        .limit(limit * 5)  # a few saves per issue at most, in practice
    )
    decisions: dict[str, dict[str, Any]] = {}
    for uid, status, issue_type, title in rows:
        if uid not in decisions and len(decisions) < limit:
            decisions[uid] = {
                "issue": uid,
                "title": title or uid,
                "status": "undone" if status == RETRACTED else status,
                "issue_type": issue_type,
            }
    return list(decisions.values())


# ---- suggestions (from the classifier, when it has run) ----------------------------------
def suggestions(
    session: Session, issue_uid: str, round_name: str | None = None
) -> list[dict[str, Any]]:
    """Top predictions of the newest model per target; empty when no classifier has run.

    In a round, only predictions made before the round began: a model trained later may
    have learnt from the round's own labels (another member's, through agreed finals)."""
    query = select(Prediction).where(Prediction.issue_uid == issue_uid)
    if round_name is not None:
        query = query.where(Prediction.created_at < get_round(session, round_name).created_at)
    rows = session.scalars(query.order_by(Prediction.created_at.desc(), Prediction.id.desc())).all()
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


def current_by_issue(session: Session, round_name: str) -> dict[str, dict[str, Annotation]]:
    """The round's current (not undone) labels by its members: issue -> annotator -> label.
    A name outside the round is nobody's second opinion, whatever it saved."""
    members = set(get_round(session, round_name).annotators)
    by_issue: dict[str, dict[str, Annotation]] = defaultdict(dict)
    for annotation in current_annotations(session, round_name, live=True):
        if not members or annotation.annotator in members:
            by_issue[annotation.issue_uid][annotation.annotator] = annotation
    return by_issue
