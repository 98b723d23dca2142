"""`taxonomy merge OLD NEW`: one name for two categories, in every label that uses the old one.

Open coding leaves several names for one idea ("cold start", "cold-start latency"); when
the team settles on one, every current annotation and final label that uses OLD is
rewritten to NEW. Annotations stay append-only: a merged annotation is a new row after the
one it supersedes, so agreement and adjudication see the new name and the old row stays
as history. Final labels are edited in place. Each change is recorded in `LabelChange`
with the label fields as they were.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.label.agreement import live_labels
from issueminer.label.rounds import MERGED
from issueminer.store import Annotation, FinalLabel, LabelChange, label_values
from issueminer.taxonomy import FIELD_OF, Taxonomy, normalise_key


class MergeError(ValueError):
    """A merge that cannot be done as asked; the message says why."""


@dataclass
class MergeResult:
    old: str
    new: str
    dimension: str
    batch: str
    annotations: int = 0
    final_labels: int = 0
    issues: set[str] = field(default_factory=set)
    by_round: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "dimension": self.dimension,
            "batch": self.batch,
            "annotations_rewritten": self.annotations,
            "final_labels_rewritten": self.final_labels,
            "issues": len(self.issues),
            "annotations_by_round": dict(self.by_round),
            "notes": self.notes,
        }


def _holds(row: Any, label_field: str, value: str) -> bool:
    current = getattr(row, label_field)
    if label_field == "fix_patterns":
        return value in (current or [])
    return current == value


def _using(session: Session, query: Any, table: Any, label_field: str, name: str) -> list[Any]:
    # fix patterns are JSON lists: filtered here, the same way on SQLite and PostgreSQL
    if label_field != "fix_patterns":
        query = query.where(getattr(table, label_field) == name)
    return [r for r in session.scalars(query.order_by(table.id)) if _holds(r, label_field, name)]


def current_rows(session: Session, label_field: str, name: str) -> list[Annotation]:
    """Current annotations (newest per issue, annotator, round and role) that use `name`."""
    query = select(Annotation).where(*live_labels(role=None))
    return _using(session, query, Annotation, label_field, name)


def final_rows(session: Session, label_field: str, name: str) -> list[FinalLabel]:
    return _using(session, select(FinalLabel), FinalLabel, label_field, name)


def uses(session: Session, taxonomy: Taxonomy, dimension: str, name: str) -> bool:
    """Whether `name` is a category of `dimension` (in the study file or in any label)."""
    label_field = FIELD_OF[dimension]
    return (
        any(node.name == name for node in taxonomy.nodes.get(dimension, {}).values())
        or bool(current_rows(session, label_field, name))
        or bool(final_rows(session, label_field, name))
    )


def dimensions_using(session: Session, taxonomy: Taxonomy, name: str) -> list[str]:
    """The dimensions in which `name` is a category (of the study file or of any label)."""
    return [d for d in FIELD_OF if uses(session, taxonomy, d, name)]


def merge_categories(
    session: Session,
    taxonomy: Taxonomy,
    old: str,
    new: str,
    dimension: str | None = None,
    changed_by: str | None = None,
) -> MergeResult:
    """Rewrite OLD to NEW in current annotations and final labels; see the module doc."""
    old, new = old.strip(), new.strip()
    if not old or not new or old == new:
        raise MergeError("give two different category names: OLD NEW")
    dimension = _dimension(session, taxonomy, old, dimension)
    new = _target_name(taxonomy, dimension, new)
    label_field = FIELD_OF[dimension]
    result = MergeResult(old, new, dimension, uuid.uuid4().hex)
    for annotation in current_rows(session, label_field, old):
        _supersede(session, annotation, label_field, result, changed_by)
    for final in final_rows(session, label_field, old):
        _rewrite_final(session, final, label_field, result, changed_by)
    if taxonomy.node(dimension, old) is not None:
        result.notes.append(
            f"'{old}' is still a {dimension} in {taxonomy.path}: remove it there or add it "
            f"to the aliases of '{new}', so that new labels use '{new}'"
        )
    session.flush()
    return result


def _dimension(session: Session, taxonomy: Taxonomy, old: str, dimension: str | None) -> str:
    if dimension is not None:
        if dimension not in FIELD_OF:
            raise MergeError(f"--dimension must be one of {', '.join(FIELD_OF)}")
        if not uses(session, taxonomy, dimension, old):  # a misspelt OLD rewrites nothing
            raise MergeError(f"no label and no {dimension} of the study is named '{old}'")
        return dimension
    found = dimensions_using(session, taxonomy, old)
    if not found:
        raise MergeError(f"no label and no category of the study is named '{old}'")
    if len(found) > 1:
        raise MergeError(f"'{old}' is a category of {', '.join(found)}: choose with --dimension")
    return found[0]


def _target_name(taxonomy: Taxonomy, dimension: str, new: str) -> str:
    """NEW as the study file spells it; outside open coding it must be in the file."""
    for node in taxonomy.nodes.get(dimension, {}).values():
        if normalise_key(node.name) == normalise_key(new):
            return node.name
    if not taxonomy.open_coding:
        raise MergeError(
            f"'{new}' is not a {dimension} of {taxonomy.path}; add it there first "
            "(only open-coding studies take categories that are not in the file)"
        )
    return new


def _renamed(value: Any, label_field: str, old: str, new: str) -> Any:
    if label_field == "fix_patterns":
        return list(dict.fromkeys(new if p == old else p for p in value or []))
    return new


def _supersede(
    session: Session,
    annotation: Annotation,
    label_field: str,
    result: MergeResult,
    changed_by: str | None,
) -> None:
    before = label_values(annotation)
    after = {
        **before,
        label_field: _renamed(before[label_field], label_field, result.old, result.new),
    }
    merged = Annotation(
        issue_uid=annotation.issue_uid,
        annotator=annotation.annotator,
        round=annotation.round,
        role=annotation.role,
        status=annotation.status,
        provenance=f"{MERGED}{result.old} -> {result.new}",
        raw_labels=dict(annotation.raw_labels or {}),
        **after,
    )
    session.add(merged)
    session.flush()
    _record(session, result, "annotation", annotation, before, changed_by, merged.id)
    result.annotations += 1
    result.by_round[annotation.round or "(no round)"] += 1


def _rewrite_final(
    session: Session,
    final: FinalLabel,
    label_field: str,
    result: MergeResult,
    changed_by: str | None,
) -> None:
    before = label_values(final)
    setattr(final, label_field, _renamed(before[label_field], label_field, result.old, result.new))
    _record(session, result, "final_label", final, before, changed_by, None)
    result.final_labels += 1


def _record(
    session: Session,
    result: MergeResult,
    table_name: str,
    row: Any,
    before: dict[str, Any],
    changed_by: str | None,
    new_row_id: int | None,
) -> None:
    session.add(
        LabelChange(
            batch=result.batch,
            action="merge",
            dimension=result.dimension,
            old_value=result.old,
            new_value=result.new,
            table_name=table_name,
            row_id=row.id,
            new_row_id=new_row_id,
            issue_uid=row.issue_uid,
            before=before,
            changed_by=changed_by,
        )
    )
    result.issues.add(row.issue_uid)
