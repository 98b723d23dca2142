"""The data model: issues and their replies, labels by people, labels by the model, crawl runs.

Human labels are append-only (`Annotation`): a save never overwrites, the newest row per
(issue, annotator, round) is the current one. Adjudicated labels live in `FinalLabel`;
classifier output lives in `Prediction` and is never mixed with human labels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from issueminer.store.label_fields import LABEL_CELLS, LABEL_FIELDS  # noqa: F401 (re-exported)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands them back naive otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime()}


class Meta(Base):
    """Key/value facts about the database itself (for example the study it was created for)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Issue(Base):
    __tablename__ = "issue"
    __table_args__ = (
        # the annotation queue and its progress count only issues that have text
        Index(
            "ix_issue_has_text",
            "uid",
            sqlite_where=text("text IS NOT NULL"),
            postgresql_where=text("text IS NOT NULL"),
        ),
    )

    uid: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(30), index=True)  # stackoverflow | github | unknown
    origin: Mapped[str] = mapped_column(
        String(300)
    )  # site or repository, or the sheet it came from
    native_id: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(String(500), unique=True)
    framework: Mapped[str | None] = mapped_column(String(100), index=True)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)  # as fetched (HTML or Markdown)
    text: Mapped[str | None] = mapped_column(Text)  # normalised plain text, code removed
    tags: Mapped[list[str]] = mapped_column(default=list)
    state: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    accepted_answer_id: Mapped[str | None] = mapped_column(String(50))
    score: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str | None] = mapped_column(String(200))  # display name or login, decoded
    flags: Mapped[list[str]] = mapped_column(default=list)  # e.g. label-only (no link in the sheet)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the item exactly as it arrived
    found_by: Mapped[str | None] = mapped_column(String(200))  # crawl run or import that added it
    updated_on: Mapped[datetime | None]
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)

    replies: Mapped[list[Reply]] = relationship(
        back_populates="issue", cascade="all, delete-orphan"
    )


class IssuePayload(Base):
    """An issue's earlier payloads (collect/payloads.py): the issue row holds the newest one
    its source sent; each row here keeps the payload a newer one replaced, with what changed
    ({field: [old, new]}), or an older one that came late and was not applied."""

    __tablename__ = "issue_payload"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"), index=True)
    found_by: Mapped[str | None] = mapped_column(String(200))  # the crawl that brought it
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the payload this row keeps
    raw_updated_on: Mapped[datetime | None]  # when the source last updated that payload


class Reply(Base):
    """An answer or a comment, attached to its issue."""

    __tablename__ = "reply"
    __table_args__ = (UniqueConstraint("issue_uid", "native_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"))
    native_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # answer | comment
    author: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)

    issue: Mapped[Issue] = relationship(back_populates="replies")


class LabelFields:
    """The label dimensions shared by annotations, final labels and their exports."""

    issue_type: Mapped[str | None] = mapped_column(String(50))
    specific: Mapped[bool | None] = mapped_column(Boolean)  # the fault lies in the study's subject
    stage: Mapped[str | None] = mapped_column(String(100))
    inner_category: Mapped[str | None] = mapped_column(String(100))
    leaf_symptom: Mapped[str | None] = mapped_column(String(200))
    fix_patterns: Mapped[list[str]] = mapped_column(default=list)
    howto_topic: Mapped[str | None] = mapped_column(String(100))
    howto_subtopic: Mapped[str | None] = mapped_column(String(100))
    memo: Mapped[str | None] = mapped_column(Text)


def label_values(row: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A label's fields as a dict: `LABEL_CELLS` (the label fields and the memo) by default."""
    return {name: getattr(row, name) for name in names or LABEL_CELLS}


# Annotation.role: an independent label, or the label a round's adjudication settled on
ANNOTATOR = "annotator"
ADJUDICATOR = "adjudicator"
# Annotation.status of a save, and of a row that undoes an earlier save (the save stays,
# as history)
STATUSES = ("done", "pending", "skipped")
RETRACTED = "retracted"


class LabelingRound(Base):
    __tablename__ = "labeling_round"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), default="reliability")  # pilot | reliability
    annotators: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # size, seed, stratification


class RoundItem(Base):
    """An issue drawn into a labelling round, in the order annotators see it."""

    __tablename__ = "round_item"
    __table_args__ = (UniqueConstraint("round", "issue_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round: Mapped[str] = mapped_column(ForeignKey("labeling_round.name", ondelete="CASCADE"))
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)


class Annotation(LabelFields, Base):
    """One save by one person; never updated in place."""

    __tablename__ = "annotation"
    __table_args__ = (Index("ix_annotation_current", "issue_uid", "annotator", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(100))
    round: Mapped[str | None] = mapped_column(String(100))
    # annotator: independent label; adjudicator: the label a round agreed on
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    # done | pending | skipped; "retracted" undoes an earlier save without deleting it
    status: Mapped[str] = mapped_column(String(20), default="done")
    provenance: Mapped[str | None] = mapped_column(String(300))  # file/sheet/row or app session
    raw_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # cells as written
    # which of the issue's labels in this round (1, 2, ...): a sheet gives one issue several
    # rows when it holds several faults or questions, and the k-th rows of two annotators
    # are compared with each other
    part: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FinalLabel(LabelFields, Base):
    """An adjudicated label of an issue. An issue may hold several of one type (one GitHub
    issue can report several faults): `part` numbers them 1, 2, ... in the sheet's order."""

    __tablename__ = "final_label"
    __table_args__ = (
        UniqueConstraint("issue_uid", "issue_type", "part", name="uq_final_label_part"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"))
    part: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_from: Mapped[str | None] = mapped_column(String(300))
    raw_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelChange(Base):
    """A label rewritten by a command rather than an annotator (e.g. `taxonomy merge`).

    Annotations are never edited: a merge appends a new annotation (`new_row_id`) after the
    one it supersedes (`row_id`). Final labels are edited in place; `before` keeps what
    every label field held, so each change can be traced and undone by hand.
    """

    __tablename__ = "label_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch: Mapped[str] = mapped_column(String(64), index=True)  # one command run
    action: Mapped[str] = mapped_column(String(30))  # merge
    dimension: Mapped[str] = mapped_column(String(50))
    old_value: Mapped[str] = mapped_column(String(200))
    new_value: Mapped[str] = mapped_column(String(200))
    table_name: Mapped[str] = mapped_column(String(30))  # annotation | final_label
    row_id: Mapped[int] = mapped_column(Integer)
    new_row_id: Mapped[int | None] = mapped_column(Integer)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"), index=True)
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    changed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    __tablename__ = "prediction"
    __table_args__ = (UniqueConstraint("issue_uid", "model_id", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_uid: Mapped[str] = mapped_column(ForeignKey("issue.uid", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(200))
    probability: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrawlRun(Base):
    """What a crawl or import asked for and how far it got, so that it can resume."""

    __tablename__ = "crawl_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(50))
    query: Mapped[dict[str, Any]] = mapped_column(default=dict)
    query_key: Mapped[str] = mapped_column(String(64), index=True)  # hash of source + query
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | done | failed
    checkpoint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    items_stored: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    message: Mapped[str | None] = mapped_column(Text)


class CrawlItem(Base):
    """What a crawl run has kept so far, one row per item, written with the checkpoint that
    covers it: a data-dump scan's kept questions and attached answers. Rows are only ever
    added, so a commit writes what is new instead of the whole set again."""

    __tablename__ = "crawl_item"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("crawl_run.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
