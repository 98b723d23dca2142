"""Write what sources found into the store: idempotent upserts, one transaction per import.

Everything is parsed and checked before the first write, and the writes share one
transaction, so a failing import leaves the database exactly as it was.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, load_only

from issueminer.collect.large_text import holds_large, insert_handing, plain_values
from issueminer.collect.sources.files import read_issues, read_labels
from issueminer.collect.sources.replication import (
    ORIGIN_PREFIX,
    LabelRecord,
    PackageReader,
    names_label_workbook,
    open_package,
)
from issueminer.findings import ImportFailure, Report
from issueminer.label_cells import Labels
from issueminer.store import (
    ANNOTATOR,
    Annotation,
    FinalLabel,
    Issue,
    LabelingRound,
    Reply,
    Store,
    remember_study,
)
from issueminer.taxonomy import Taxonomy

_MERGED_LISTS = ("tags", "flags")
_CHUNK = 500  # keeps IN (...) lists well under every backend's parameter limit


def upsert_issues(session: Session, records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Insert new issues, update known ones where a field changed; counts added/updated/unchanged.

    A record only sets the fields it knows (None means "not known here"), so importing
    URLs never erases text a crawler stored, and list fields are merged, not replaced.
    """
    merged: dict[str, dict[str, Any]] = {}
    for record in records:
        known = merged.setdefault(record["uid"], {})
        for key, value in record.items():
            if key in _MERGED_LISTS:
                known[key] = list(dict.fromkeys([*known.get(key, []), *(value or [])]))
            elif value is not None and known.get(key) is None:
                known[key] = value
    counts: Counter[str] = Counter()
    uids = list(merged)
    new: list[dict[str, Any]] = []
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start : start + _CHUNK]
        compared = {key for uid in chunk for key in merged[uid]}
        existing = {i.uid: i for i in _stored(session, Issue.uid, chunk, compared)}
        for uid in chunk:
            record = merged[uid]
            issue = existing.get(uid)
            if issue is None:
                new.append(record)
                continue
            changed = False
            for key, value in record.items():
                current = getattr(issue, key)
                if key in _MERGED_LISTS:
                    value = list(dict.fromkeys([*(current or []), *value]))
                if key == "found_by" and current:
                    continue  # the first finder stays on record
                if value is not None and value != current:
                    setattr(issue, key, value)
                    changed = True
            counts["updated" if changed else "unchanged"] += 1
    session.flush()
    if new:
        insert_many(session, Issue, new)
        counts["added"] += len(new)
    return counts


def _stored(session: Session, key: Any, values: list[str], columns: set[str]) -> list[Any]:
    """The stored rows whose `key` column is one of `values`, with only `columns` (and the
    key) loaded: the ones the records compare. A dump's answers name their stored question
    by uid alone, and loading whole rows (decoding each raw item's JSON) made upserting 2,000
    such records take 133-153 ms of CPU instead of about 100."""
    model = key.class_
    wanted = [getattr(model, name) for name in sorted(columns | {key.key})]
    return list(session.scalars(select(model).where(key.in_(values)).options(load_only(*wanted))))


def insert_many(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """New rows in one executemany per set of columns: a crawl page or a dump piece brings
    hundreds, and ORM objects cost several times more than the insert itself (so does the
    ORM's bulk insert, which is bypassed too: the rows are plain columns)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    connection = session.connection()
    for row in rows:
        if holds_large(row):  # a giant dump row: its body handed over, not bound
            insert_handing(connection, model.__table__, row)
            continue
        by_columns[tuple(sorted(row))].append(row)
    for group in by_columns.values():
        connection.execute(insert(model.__table__), group)


def import_replication(
    store: Store,
    source: str | Path,
    taxonomy: Taxonomy,
    report: Report | None = None,
    *,
    keep_unknown: bool = False,
    progress: Any = None,
) -> Report:
    """Load a replication package: candidate URLs, final labels, pilot and rounds."""
    report = report or Report()
    package = open_package(source, progress)
    reader = PackageReader(package, taxonomy, report)
    candidates = list(reader.candidates())
    records = list(reader.labels())
    _check_unknown(records, keep_unknown)
    _report_duplicates(records, report)
    # a labelled issue that is also a candidate was found by the candidate list: the label
    # sheet only names it again (the export lists candidates by their finder)
    candidate_finders = {c.uid: c.found_by for c in candidates}
    with store.session() as session:
        issue_counts = upsert_issues(
            session,
            # labelled rows first: the sheet's own Type column names the framework, which
            # wins over the one guessed from a candidate's tags
            [
                {
                    **asdict(r.issue),
                    "found_by": candidate_finders.get(r.issue.uid) or r.provenance.split("#")[0],
                }
                for r in records
            ]
            + [asdict(r) for r in candidates],
        )
        settled = _settle_earlier_reading(session, records, candidate_finders)
        label_counts = write_labels(session, [_from_package(r) for r in records], ORIGIN_PREFIX)
        label_counts.update(settled)
        remember_study(session, taxonomy.study, taxonomy.path)
    report.counts.update({f"issues {k}": v for k, v in issue_counts.items()})
    report.counts.update(label_counts)
    report.counts["candidate urls"] = len(candidates)
    return report


def _settle_earlier_reading(
    session: Session, records: list[LabelRecord], candidate_finders: dict[str, str | None]
) -> Counter[str]:
    """Undo what an import before merged cells were read (issue 22) left in the database.

    Each row under a merged Link cell used to become a label-only issue of its own; it is
    now a further label of its issue, so those records of this package's sheets that this
    reading no longer makes are removed (their labels with them: they are stored again on
    their issue). A link typed twice in a round was read as a newer save of one label; the
    importer's rows of that reading (matched by file, sheet and row) whose part differs from
    this reading's are removed, to be stored again under their part: they were the
    importer's misreading, not anyone's save. And a labelled issue that a candidate list
    names was recorded as found by the label sheet; it is found by the list.
    """
    workbooks = {r.provenance.split("#")[0] for r in records}
    made = {r.issue.uid for r in records if not r.issue.url}
    linkless = session.execute(
        select(Issue.uid, Issue.origin, Issue.flags).where(
            Issue.url.is_(None), Issue.origin.like(f"{ORIGIN_PREFIX}%")
        )
    )
    stale = [
        uid
        for uid, origin, flags in linkless
        if "label-only" in (flags or []) and uid not in made and origin.split("#")[0] in workbooks
    ]
    counts: Counter[str] = Counter()
    for start in range(0, len(stale), _CHUNK):
        # the database deletes their labels and annotations with them (ON DELETE CASCADE)
        session.execute(delete(Issue).where(Issue.uid.in_(stale[start : start + _CHUNK])))
    if stale:
        counts["label-only records read as further labels"] = len(stale)
    parts = {r.provenance: r.part for r in records if r.kind == "annotation"}
    misread = [
        a.id
        for a in session.scalars(select(Annotation).where(Annotation.provenance.in_(list(parts))))
        if a.part != parts[a.provenance]
    ]
    if misread:
        session.execute(delete(Annotation).where(Annotation.id.in_(misread)))
        counts["annotations stored again under their part"] = len(misread)
    for issue in where_in(session, Issue.uid, sorted(candidate_finders)):
        if names_label_workbook(issue.found_by) and candidate_finders[issue.uid]:
            issue.found_by = candidate_finders[issue.uid]
            counts["issues found by a candidate list, not a label sheet"] += 1
    return counts


def _check_unknown(records: list[LabelRecord], keep_unknown: bool) -> None:
    unknown = [r for r in records if r.labels.unknown]
    if unknown and not keep_unknown:
        problems = [
            f"{_place(r.provenance)}: unknown label {', '.join(r.labels.unknown)}" for r in unknown
        ]
        raise ImportFailure(
            [
                *problems,
                f"{len(unknown)} row(s) carry labels the taxonomy does not know: add them "
                "(or an alias) to the taxonomy file, or import with --keep-unknown to keep them "
                "only as raw cells",
            ]
        )


def _place(provenance: str) -> str:
    path, _, rest = provenance.removeprefix("replication:").partition("#")
    sheet, _, row = rest.partition("!")
    return f"{path}, sheet '{sheet}', row {row}"


def _report_duplicates(records: list[LabelRecord], report: Report) -> None:
    seen: dict[tuple[Any, ...], str] = {}
    types_of: dict[str, list[LabelRecord]] = defaultdict(list)
    for record in records:
        if record.kind == "final":
            key: tuple[Any, ...] = (
                "final",
                record.issue.uid,
                record.labels.issue_type,
                record.part,
            )
            types_of[record.issue.uid].append(record)
        else:
            key = ("annotation", record.issue.uid, record.annotator, record.round, record.part)
        if key in seen and record.issue.url:
            path, _, rest = record.provenance.removeprefix("replication:").partition("#")
            report.add(
                "duplicate",
                path,
                f"{record.issue.url} labelled again (first at "
                f"{_place(seen[key])}); the later row is current",
                sheet=rest.partition("!")[0],
                row=int(rest.partition("!")[2]),
            )
        seen.setdefault(key, record.provenance)
    for uid, finals in types_of.items():
        kinds = {r.labels.issue_type for r in finals}
        if len(finals) > 1 and len(kinds) == 1:
            continue  # several labels of one type: an issue with several faults (or questions)
        if len(kinds) > 1:
            first = finals[0]
            path = first.provenance.removeprefix("replication:").partition("#")[0]
            report.add(
                "in-both-sheets",
                path,
                f"{first.issue.url or uid} has a final label in "
                "both sheets; the study counts it in both",
                value=sorted(kinds),
            )


@dataclass
class LabelRow:
    """One label to store, whatever file it came from."""

    issue_uid: str
    kind: str  # final | annotation
    labels: Labels
    provenance: str
    raw_labels: dict[str, Any]
    annotator: str | None = None  # for a final label: who resolved it
    round: str | None = None
    role: str = ANNOTATOR
    part: int = 1  # the issue's k-th label of its type (final) or in the round (annotation)


def _from_package(record: LabelRecord) -> LabelRow:
    return LabelRow(
        record.issue.uid,
        record.kind,
        record.labels,
        record.provenance,
        record.raw_labels,
        record.annotator or "replication",
        record.round,
        record.role,
        record.part,
    )


def where_in(session: Session, key: Any, values: list[str], order: Any = None) -> Iterator[Any]:
    """The stored rows whose `key` column is one of `values`, one query per chunk of them
    (in `order` within a chunk)."""
    for start in range(0, len(values), _CHUNK):
        query = select(key.class_).where(key.in_(values[start : start + _CHUNK]))
        yield from session.scalars(query if order is None else query.order_by(order))


def _final_labels(
    session: Session, uids: list[str]
) -> dict[tuple[str, str | None, int], FinalLabel]:
    """The stored final labels of these issues by (issue, type, part)."""
    return {
        (f.issue_uid, f.issue_type, f.part): f
        for f in where_in(session, FinalLabel.issue_uid, uids)
    }


def _holds_values(annotation: Annotation | None, values: dict[str, Any]) -> bool:
    return annotation is not None and all(getattr(annotation, k) == v for k, v in values.items())


def _person_key(row: Any) -> tuple[str, str | None, str | None, str, int]:
    return (row.issue_uid, row.annotator, row.round, row.role, row.part)


def _newest_annotations(session: Session, uids: list[str]) -> dict[tuple, Annotation]:
    """The newest annotation per issue, person, round, role and part of these issues (an issue's
    rows are all in one chunk, in id order: the newest comes last)."""
    rows = where_in(session, Annotation.issue_uid, uids, order=Annotation.id)
    return {_person_key(a): a for a in rows}


def write_labels(session: Session, rows: list[LabelRow], provenance_prefix: str) -> Counter[str]:
    """Upsert final labels per (issue, type, part); append annotations unless stored as is.

    Annotations are matched to earlier imports by provenance (file, sheet, row), so
    importing the same file twice adds nothing, and a changed file adds newer rows.
    """
    counts: Counter[str] = Counter()
    finals = {(r.issue_uid, r.labels.issue_type, r.part): r for r in rows if r.kind == "final"}
    existing = _final_labels(session, sorted({key[0] for key in finals}))
    for key, row in finals.items():
        values = {
            **row.labels.fields(),
            "raw_labels": row.raw_labels,
            "resolved_from": row.provenance,
            "resolved_by": row.annotator,
        }
        current = existing.get(key)
        if current is None:
            session.add(FinalLabel(issue_uid=key[0], part=key[2], **values))
            counts["final labels added"] += 1
        elif any(getattr(current, k) != v for k, v in values.items() if k != "resolved_from"):
            for k, v in values.items():
                setattr(current, k, v)
            counts["final labels updated"] += 1
        else:
            counts["final labels unchanged"] += 1

    stored = {
        a.provenance: a
        for a in session.scalars(
            select(Annotation)
            .where(Annotation.provenance.like(f"{provenance_prefix}%"))
            .order_by(Annotation.id)
        )
    }
    annotations = [r for r in rows if r.kind == "annotation"]
    newest = _newest_annotations(session, sorted({r.issue_uid for r in annotations}))
    rounds: dict[str, set[str]] = defaultdict(set)
    for row in annotations:
        if row.role == ANNOTATOR:
            rounds[row.round or ""].add(row.annotator or "")
        values = {
            **row.labels.fields(),
            "status": row.labels.status,
            "raw_labels": row.raw_labels,
            "part": row.part,
        }
        # unchanged: as this row stored it before, or as the person's label stands now (the
        # same labels from a copy of the file, under another name)
        earlier = (stored.get(row.provenance), newest.get(_person_key(row)))
        if any(_holds_values(a, values) for a in earlier):
            counts["annotations unchanged"] += 1
            continue
        # append-only: a changed file adds a newer row instead of rewriting the old one
        session.add(
            Annotation(
                issue_uid=row.issue_uid,
                annotator=row.annotator,
                round=row.round,
                role=row.role,
                provenance=row.provenance,
                **values,
            )
        )
        counts["annotations added"] += 1
    for name, people in rounds.items():
        _ensure_round(session, name, sorted(people))
    session.flush()
    return counts


def _ensure_round(session: Session, name: str, annotators: list[str]) -> None:
    labeling_round = session.get(LabelingRound, name)
    kind = "pilot" if name == "pilot" else "reliability"
    if labeling_round is None:
        session.add(LabelingRound(name=name, kind=kind, annotators=annotators))
    elif set(annotators) - set(labeling_round.annotators):
        labeling_round.annotators = sorted(set(labeling_round.annotators) | set(annotators))


def upsert_replies(session: Session, replies_by_issue: dict[str, list[dict[str, Any]]]) -> int:
    """Insert or refresh issues' answers/comments, matched by native id; returns how many new.

    One query per chunk of issues, not per issue: a crawl page or a dump piece stores
    hundreds of issues at once.
    """
    new: dict[tuple[str, str], dict[str, Any]] = {}
    uids = [uid for uid, replies in replies_by_issue.items() if replies]
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start : start + _CHUNK]
        compared = {"native_id"}.union(*(r for u in chunk for r in replies_by_issue[u]))
        stored = _stored(session, Reply.issue_uid, chunk, compared)
        existing = {(r.issue_uid, r.native_id): r for r in stored}
        for uid in chunk:
            for reply in replies_by_issue[uid]:
                key = (uid, reply["native_id"])
                current = existing.get(key)
                if current is None:  # new; a reply twice in one batch: the later one wins
                    new[key] = {**new.get(key, {}), **reply, "issue_uid": uid}
                    continue
                for name, value in plain_values(reply).items():
                    if getattr(current, name) != value:
                        setattr(current, name, value)
    session.flush()
    insert_many(session, Reply, list(new.values()))
    return len(new)


def import_issues(
    store: Store, path: Path, taxonomy: Taxonomy | None = None, report: Report | None = None
) -> Report:
    """Load a researcher's issues (JSON Lines or CSV); re-importing updates, never duplicates."""
    report = report or Report()
    issues = read_issues(Path(path), report, taxonomy)
    with store.session() as session:
        counts = upsert_issues(session, [i.fields for i in issues])
        replies_by_issue: dict[str, list[dict[str, Any]]] = {}
        for issue in issues:  # a file may list one issue twice
            replies_by_issue.setdefault(issue.fields["uid"], []).extend(issue.replies)
        replies = upsert_replies(session, replies_by_issue)
    report.counts.update({f"issues {k}": v for k, v in counts.items()})
    report.counts["replies added"] += replies
    return report


def import_labels(
    store: Store, path: Path, taxonomy: Taxonomy, report: Report | None = None
) -> Report:
    """Load annotations and final labels from a CSV file (see `sources.files`)."""
    report = report or Report()
    records = read_labels(Path(path), taxonomy, report)
    with store.session() as session:
        counts = upsert_issues(
            session, [{**r.issue, "found_by": f"file:{Path(path).name}"} for r in records]
        )
        report.counts.update({f"issues {k}": v for k, v in counts.items()})
        rows = [
            LabelRow(
                r.issue["uid"], r.kind, r.labels, r.provenance, r.raw_labels, r.annotator, r.round
            )
            for r in records
        ]
        report.counts.update(write_labels(session, rows, f"file:{Path(path).name}!"))
        remember_study(session, taxonomy.study, taxonomy.path)
    return report
