"""Adjudication: the round's disagreements, their resolution into final labels (and its undo),
and final labels for what every member agreed on.

Only a round's members count, and only their done labels: an issue still pending for
someone is not a disagreement yet, and an issue nobody labelled cannot be resolved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.label.rounds import (
    LabelingError,
    as_written,
    check_labels,
    current_by_issue,
    get_round,
    round_issue_uids,
)
from issueminer.store import (
    ADJUDICATOR,
    LABEL_FIELDS,
    RETRACTED,
    Annotation,
    FinalLabel,
    label_values,
)
from issueminer.taxonomy import Taxonomy


# ---- disagreements --------------------------------------------------------------------------
@dataclass
class Disagreement:
    issue_uid: str
    labels: dict[str, Annotation]  # annotator -> current label
    dimensions: list[str]  # where they differ


def _field_value(annotation: Annotation, name: str) -> Any:
    value = getattr(annotation, name)
    return tuple(sorted(value or [])) if name == "fix_patterns" else value


def differing_fields(labels: Iterable[Annotation]) -> list[str]:
    """The label fields on which these labels differ: the one rule for "they agree", shared
    by adjudication (what to show) and `finalize_agreed` (what becomes final unasked)."""
    labels = list(labels)
    return [name for name in LABEL_FIELDS if len({_field_value(a, name) for a in labels}) > 1]


def disagreements(session: Session, round_name: str) -> list[Disagreement]:
    """Issues of the round on which at least two members saved a done label and those labels
    differ, not yet resolved. An issue still pending or unlabelled for someone waits."""
    resolved = resolved_issues(session, round_name)
    by_issue = current_by_issue(session, round_name)
    order = {uid: i for i, uid in enumerate(round_issue_uids(session, round_name, by_issue))}
    found = []
    for uid, labels in by_issue.items():
        done = {name: a for name, a in labels.items() if a.status == "done"}
        if len(done) < 2 or uid in resolved:
            continue
        differing = differing_fields(done.values())
        if differing:
            found.append(Disagreement(uid, done, differing))
    return sorted(found, key=lambda d: (order.get(d.issue_uid, 10**9), d.issue_uid))


RESOLVED = "app:adjudication"  # provenance of an adjudicator's resolution in the app
UNRESOLVED = "app:adjudication-undo"  # ... and of the row that undoes one


def resolved_issues(session: Session, round_name: str) -> set[str]:
    """Issues of the round whose newest adjudicator row stands (not undone)."""
    newest: dict[str, str] = {}
    rows = session.execute(
        select(Annotation.issue_uid, Annotation.status)
        .where(Annotation.round == round_name, Annotation.role == ADJUDICATOR)
        .order_by(Annotation.id)
    )
    for uid, status in rows:
        newest[uid] = status
    return {uid for uid, status in newest.items() if status != RETRACTED}


def undo_resolution(session: Session, round_name: str, resolver: str) -> Annotation | None:
    """Undo the resolver's newest resolution in the round not undone yet: its final label
    goes, the disagreement is open again. Returns the undone resolution (None: nothing)."""
    rows = session.scalars(
        select(Annotation)
        .where(
            Annotation.round == round_name,
            Annotation.role == ADJUDICATOR,
            Annotation.annotator == resolver,
            Annotation.provenance.in_((RESOLVED, UNRESOLVED)),
        )
        .order_by(Annotation.id.desc())
    ).all()
    undone = {(r.raw_labels or {}).get("undo_of") for r in rows if r.provenance == UNRESOLVED}
    target = next((r for r in rows if r.provenance == RESOLVED and r.id not in undone), None)
    if target is None:
        return None
    session.add(
        Annotation(
            issue_uid=target.issue_uid,
            annotator=resolver,
            round=round_name,
            role=ADJUDICATOR,
            status=RETRACTED,
            provenance=UNRESOLVED,
            raw_labels={"undo_of": target.id},
        )
    )
    for final in session.scalars(
        select(FinalLabel).where(
            FinalLabel.issue_uid == target.issue_uid,
            FinalLabel.resolved_from == _resolved_from(round_name),
        )
    ):
        session.delete(final)
    session.flush()
    return target


def _resolved_from(round_name: str) -> str:
    return f"round {round_name} adjudication"


def resolve(
    session: Session,
    taxonomy: Taxonomy,
    round_name: str,
    issue_uid: str,
    resolver: str,
    fields: dict[str, Any],
) -> FinalLabel:
    """Record the adjudicated label: a final label, and an adjudicator annotation as history.

    Only a current disagreement of the round can be resolved: an issue nobody (or one
    member) labelled, or one already resolved, is refused."""
    if issue_uid not in {d.issue_uid for d in disagreements(session, round_name)}:
        raise LabelingError(
            f"issue {issue_uid} is not a disagreement to resolve in round '{round_name}': "
            "two members must have saved differing done labels, and it must not be resolved"
        )
    labels = check_labels(taxonomy, fields, "done")
    session.add(
        Annotation(
            issue_uid=issue_uid,
            annotator=resolver,
            round=round_name,
            role=ADJUDICATOR,
            status="done",
            provenance=RESOLVED,
            raw_labels=as_written(fields),
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
        resolved_from=_resolved_from(round_name),
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
    by_issue = current_by_issue(session, round_name)
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
