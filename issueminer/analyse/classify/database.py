"""The classifier and the store: training examples from final labels, predictions out.

Predictions go to the `prediction` table only, never to annotations or final labels, so
`stats`, `agree` and the exports, which read those, never see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from issueminer.analyse.classify.features import Document
from issueminer.analyse.classify.model import PredictedLabel, TrainedModel, predict
from issueminer.analyse.classify.targets import (
    MULTI,
    ORDERS,
    PATH,
    ClassifierError,
    OnProgress,
    Target,
    get_target,
    prediction_field,
)
from issueminer.analyse.classify.thread import ReplyText
from issueminer.store import FinalLabel, Issue, Prediction, Reply
from issueminer.store.schema import utcnow
from issueminer.taxonomy import Taxonomy

CHUNK = 500  # keeps IN (...) lists well under every backend's parameter limit
PREDICT_BATCH = 2000  # issues featurised and predicted at once: fast, and memory stays flat
SUGGESTIONS = 3  # what the annotation app shows


@dataclass
class Examples:
    documents: list[Document]
    labels: list[Any]
    without_text: int = 0  # labelled issues skipped: imported from a sheet with a link only


def _document(uid: str, title: str | None, body: str | None, source: str) -> Document:
    return Document(title or "", body or "", source, uid)


def load_examples(session: Session, target: Target, taxonomy: Taxonomy) -> Examples:
    """One example per labelled issue with text: its document and its label for `target`.

    Issue type: an issue with final labels of several types (at most one each) counts
    with the first in the taxonomy's order. Stage, symptom and fix patterns come from
    fault labels; a symptom is its (stage, inner category, leaf) path.
    """
    query = (
        select(FinalLabel, Issue.title, Issue.body, Issue.source)
        .join(Issue, Issue.uid == FinalLabel.issue_uid)
        .order_by(FinalLabel.issue_uid, FinalLabel.id)
    )
    order = {name: i for i, name in enumerate(taxonomy.names("issue_type"))}
    chosen: dict[str, tuple[Document | None, Any, int]] = {}
    for final, title, body, source in session.execute(query):
        label = _label(final, target)
        if label is None:
            continue
        rank = order.get(final.issue_type or "", len(order))
        previous = chosen.get(final.issue_uid)
        if previous is not None and previous[2] <= rank:
            continue
        text = bool((title or "").strip() or (body or "").strip())
        document = _document(final.issue_uid, title, body, source) if text else None
        chosen[final.issue_uid] = (document, label, rank)
    with_text = [(d, label) for d, label, _ in chosen.values() if d is not None]
    threads = with_replies(session, [d for d, _ in with_text])
    with_text = [(d, label) for d, (_, label) in zip(threads, with_text, strict=True)]
    return Examples(
        [d for d, _ in with_text], [label for _, label in with_text], len(chosen) - len(with_text)
    )


def _label(final: FinalLabel, target: Target) -> Any:
    if target.kind == PATH:
        if final.leaf_symptom and final.stage:
            return (final.stage, final.inner_category, final.leaf_symptom)
        return None
    if target.kind == MULTI:
        return tuple(final.fix_patterns) if final.fix_patterns else None
    return getattr(final, target.field) or None


def unlabelled_documents(
    session: Session, limit: int | None = None, include_labelled: bool = False
) -> list[Document]:
    """Issues with text and without any final label (or every issue with text), in uid
    order, with their replies."""
    query = select(Issue.uid, Issue.title, Issue.body, Issue.source).where(
        or_(Issue.title.is_not(None), Issue.body.is_not(None))
    )
    if not include_labelled:
        query = query.where(~exists().where(FinalLabel.issue_uid == Issue.uid))
    query = query.order_by(Issue.uid).limit(limit)
    return with_replies(session, [_document(*row) for row in session.execute(query)])


def with_replies(session: Session, documents: Sequence[Document]) -> list[Document]:
    """The documents with their issues' stored answers and comments, in thread order."""
    found: dict[str, list[ReplyText]] = {}
    uids = sorted({d.uid for d in documents})
    for start in range(0, len(uids), CHUNK):
        query = (
            select(Reply.issue_uid, Reply.kind, Reply.body, Reply.accepted)
            .where(Reply.issue_uid.in_(uids[start : start + CHUNK]))
            .order_by(Reply.issue_uid, Reply.created_at.is_(None), Reply.created_at, Reply.id)
        )
        for uid, kind, body, accepted in session.execute(query):
            found.setdefault(uid, []).append(ReplyText(kind, body or "", bool(accepted)))
    return [replace(d, replies=tuple(found[d.uid])) if d.uid in found else d for d in documents]


def store_predictions(
    session: Session, model: TrainedModel, predicted: Sequence[PredictedLabel]
) -> int:
    """Insert or replace (same issue, model and field) predictions; returns how many."""
    now = utcnow()
    for start in range(0, len(predicted), CHUNK):
        chunk = predicted[start : start + CHUNK]
        uids = sorted({p.uid for p in chunk})
        existing = {
            (row.issue_uid, row.target): row
            for row in session.scalars(
                select(Prediction).where(
                    Prediction.model_id == model.model_id, Prediction.issue_uid.in_(uids)
                )
            )
        }
        for p in chunk:
            values = {
                "label": p.label,
                "probability": p.probability,
                "probabilities": p.probabilities,
                "created_at": now,
            }
            row = existing.get((p.uid, p.field))
            if row is None:
                session.add(
                    Prediction(issue_uid=p.uid, model_id=model.model_id, target=p.field, **values)
                )
            else:
                for key, value in values.items():
                    setattr(row, key, value)
    session.flush()
    return len(predicted)


def classify_unlabelled(
    session: Session,
    model: TrainedModel,
    limit: int | None = None,
    on_progress: OnProgress | None = None,
    include_labelled: bool = False,
) -> list[PredictedLabel]:
    """Predict every issue without a final label (with `include_labelled`, every issue)
    and store the predictions; `on_progress` hears of (issues done, issues in all) after
    each batch."""
    documents = unlabelled_documents(session, limit, include_labelled)
    found: list[PredictedLabel] = []
    for start in range(0, len(documents), PREDICT_BATCH):
        batch = predict(model, documents[start : start + PREDICT_BATCH])
        store_predictions(session, model, batch)
        found += batch
        if on_progress:
            on_progress(len(found), len(documents))
    return found


def issue_urls(session: Session, uids: Sequence[str]) -> dict[str, str]:
    """uid -> URL (or '' for an issue without one) for the given uids."""
    found: dict[str, str] = {}
    for start in range(0, len(uids), CHUNK):
        query = select(Issue.uid, Issue.url).where(Issue.uid.in_(uids[start : start + CHUNK]))
        found.update({uid: url or "" for uid, url in session.execute(query)})
    return found


# ---- for the annotation app ------------------------------------------------------------------
def uncertainty(field: str, probabilities: dict[str, float], probability: float = 0.0) -> float:
    """How unsure a prediction is, from 0 (sure) to 1.

    One label: 1 minus the margin between the two most probable labels. Fix patterns
    (each decided on its own): the pattern closest to a coin flip decides.
    """
    values = sorted(probabilities.values(), reverse=True) or [probability]
    if field == get_target("fix_pattern").field:
        return 1.0 - min(abs(2 * p - 1) for p in values)
    second = values[1] if len(values) > 1 else 1.0 - values[0]
    return 1.0 - (values[0] - second)


def _newest(rows: Iterable[Prediction]) -> dict[str, Prediction]:
    newest: dict[str, Prediction] = {}
    for row in rows:
        current = newest.get(row.issue_uid)
        if current is None or (row.created_at, row.id) > (current.created_at, current.id):
            newest[row.issue_uid] = row
    return newest


def suggestions(
    session: Session, issue_uid: str, target: str = "symptom", k: int = SUGGESTIONS
) -> list[tuple[str, float]]:
    """The top `k` (label, probability) for an issue from the newest model's prediction.

    `target` is a target name (issue_type, stage, symptom, fix_pattern, howto_topic), a
    label field (leaf_symptom, fix_patterns, inner_category) or "leaf". Empty when no
    model has predicted this issue. For a symptom, the stage and inner category the same
    model predicted (`target="stage"`) are the path its top leaf sits under.
    """
    rows = session.scalars(
        select(Prediction).where(
            Prediction.issue_uid == issue_uid, Prediction.target == prediction_field(target)
        )
    )
    row = _newest(rows).get(issue_uid)
    if row is None:
        return []
    probabilities = row.probabilities or {row.label: row.probability}
    # stored probabilities are rounded: on a tie the model's own choice comes first
    ranked = sorted(
        probabilities.items(), key=lambda item: (-float(item[1]), item[0] != row.label, item[0])
    )
    return [(label, float(p)) for label, p in ranked[:k]]


def uncertainty_order(
    session: Session, uids: Sequence[str], target: str | None = None
) -> list[str]:
    """`uids` with the least certain predictions first (margin sampling), for a queue.

    Uses each issue's newest prediction (of `target`, or of any target when None); issues
    no model has predicted keep their order at the end. The order is stable, so ties
    keep the caller's order.
    """
    newest: dict[str, Prediction] = {}
    for start in range(0, len(uids), CHUNK):
        query = select(Prediction).where(Prediction.issue_uid.in_(uids[start : start + CHUNK]))
        if target is not None:
            query = query.where(Prediction.target == prediction_field(target))
        newest.update(_newest(session.scalars(query)))
    scored = [uid for uid in uids if uid in newest]
    scored.sort(
        key=lambda uid: (
            -uncertainty(
                newest[uid].target, newest[uid].probabilities or {}, newest[uid].probability
            )
        )
    )
    return scored + [uid for uid in uids if uid not in newest]


def prediction_queue(
    session: Session, predicted: Sequence[PredictedLabel], field: str, order: str = "issue"
) -> list[dict[str, Any]]:
    """The predictions of one field with each issue's url and title, in queue order."""
    if order not in ORDERS:
        raise ClassifierError(f"unknown order '{order}'; choose one of {', '.join(ORDERS)}")
    by_uid = {p.uid: p for p in predicted if p.field == field}
    unsure = {u: uncertainty(field, p.probabilities, p.probability) for u, p in by_uid.items()}
    uids = list(by_uid)
    if order == "uncertainty":  # the predictions just made are each issue's newest
        uids.sort(key=lambda uid: -unsure[uid])
    issues: dict[str, tuple[str | None, str | None]] = {}
    for start in range(0, len(uids), CHUNK):
        query = select(Issue.uid, Issue.url, Issue.title).where(
            Issue.uid.in_(uids[start : start + CHUNK])
        )
        issues.update({uid: (url, title) for uid, url, title in session.execute(query)})
    return [
        {
            "uid": uid,
            "url": issues.get(uid, (None, None))[0],
            "title": issues.get(uid, (None, None))[1],
            "label": by_uid[uid].label,
            "probability": round(by_uid[uid].probability, 4),
            "uncertainty": round(unsure[uid], 4),
        }
        for uid in uids
    ]
