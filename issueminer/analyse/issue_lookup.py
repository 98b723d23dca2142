"""Look up stored issues with their labels (for `issueminer issues`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.analyse.issue_listing import assemble
from issueminer.collect.payload_history import payload_history
from issueminer.ids import parse_issue_url
from issueminer.store import LABEL_FIELDS, Annotation, FinalLabel, Issue, Reply, label_values
from issueminer.text import render_body

STREAM_ROWS = 500  # rows fetched at a time by `list_issues`


def _labels(label: FinalLabel | Annotation) -> dict[str, Any]:
    return label_values(label, LABEL_FIELDS)


def list_issues(
    session: Session,
    *,
    source: str | None = None,
    issue_type: str | None = None,
    symptom: str | None = None,
    labelled_only: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Issues with their final labels; filters combine (AND)."""
    # the listed columns only (bodies and raw items stay in the database), streamed, so a
    # --limit stops reading early
    listed = (Issue.uid, Issue.url, Issue.source, Issue.framework, Issue.title)
    query = select(*listed, FinalLabel).outerjoin(FinalLabel, FinalLabel.issue_uid == Issue.uid)
    if source:
        query = query.where(Issue.source == source)
    if issue_type:
        query = query.where(FinalLabel.issue_type == issue_type)
    if symptom:
        query = query.where(FinalLabel.leaf_symptom == symptom)
    if labelled_only or issue_type or symptom:
        query = query.where(FinalLabel.id.is_not(None))
    query = query.order_by(Issue.source, Issue.url, Issue.uid, FinalLabel.id)
    rows = session.execute(query.execution_options(yield_per=STREAM_ROWS))
    return assemble(
        ((*issue, None if final is None else _labels(final)) for *issue, final in rows), limit
    )


def find_issue(session: Session, key: str) -> Issue | None:
    """An issue by uid, or by any URL form of it."""
    issue = session.get(Issue, key.strip())
    if issue is not None:
        return issue
    ref = parse_issue_url(key)
    url = ref.url if ref else key.strip()
    return session.scalar(select(Issue).where(Issue.url == url))


def reply_entries(session: Session, issue: Issue) -> list[dict[str, Any]]:
    """The issue's answers and comments in thread order (creation time, then id), each with
    its stored body and the body rendered for reading."""
    replies = session.scalars(
        select(Reply)
        .where(Reply.issue_uid == issue.uid)
        .order_by(Reply.created_at.is_(None), Reply.created_at, Reply.id)
    )
    return [
        {
            "native_id": r.native_id,
            "kind": r.kind,
            "author": r.author,
            "accepted": bool(r.accepted),
            "score": r.score,
            "created_at": r.created_at,
            "body": r.body,
            "rendered": render_body(r.body, issue.source),
        }
        for r in replies
    ]


def describe_issue(session: Session, issue: Issue) -> dict[str, Any]:
    """Everything `issues show` prints: the issue, its body (stored and rendered), its
    replies, its final labels and every annotation."""
    finals = session.scalars(select(FinalLabel).where(FinalLabel.issue_uid == issue.uid))
    annotations = session.scalars(
        select(Annotation).where(Annotation.issue_uid == issue.uid).order_by(Annotation.id)
    )
    return {
        "uid": issue.uid,
        "url": issue.url,
        "source": issue.source,
        "framework": issue.framework,
        "title": issue.title,
        "state": issue.state,
        "tags": issue.tags,
        "flags": issue.flags,
        "created_at": issue.created_at,
        "found_by": issue.found_by,
        "author": issue.author,
        "history": payload_history(session, issue.uid),  # the source's changes, oldest first
        "text": issue.text,
        "body": issue.body,
        "rendered": render_body(issue.body, issue.source),
        "replies": reply_entries(session, issue),
        "final_labels": [
            {**_labels(f), "resolved_by": f.resolved_by, "resolved_from": f.resolved_from}
            for f in finals
        ],
        "annotations": [
            {
                **_labels(a),
                "annotator": a.annotator,
                "round": a.round,
                "role": a.role,
                "status": a.status,
                "memo": a.memo,
                "provenance": a.provenance,
                "created_at": a.created_at,
            }
            for a in annotations
        ],
    }
