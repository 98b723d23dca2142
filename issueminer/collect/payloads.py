"""Items as a source sends them: the newest one is the truth, every earlier one is kept.

A crawler, hydrate or a dump scan hands over each issue whole, as its source has it now.
For the fields the source owns (`SOURCE_FIELDS`) that payload replaces what is stored, nulls
and shorter lists included: a reopened issue loses its `closed_at`, a removed label or an
answer no longer accepted goes, and the live tags replace imported ones. A payload older
than what is stored (an old dump after an API crawl) changes nothing but the gaps. The
issue row holds the newest payload (`raw`); `issue_payload` keeps every earlier one: the
payload a newer one replaced, with what changed ({field: [old, new]}), and an older one
that came late, as it came. So nothing is lost, and `issues show` can say what changed
and when. A payload that changes nothing adds no row.

Imports of researchers' files do not come here: a file that names an issue says nothing
about fields it leaves empty (`ingest.upsert_issues` fills gaps and merges lists).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from issueminer.collect.ingest import insert_many, where_in
from issueminer.collect.large_text import plain_values
from issueminer.store.schema import Issue, IssuePayload

# the fields a source's payload decides; `text` follows `body`, `raw` is the payload itself
SOURCE_FIELDS = (
    "title",
    "body",
    "text",
    "author",
    "tags",
    "state",
    "created_at",
    "closed_at",
    "accepted_answer_id",
    "score",
    "updated_on",
    "raw",
)
# not shown as changes: derived from `body`, or the whole payload
_UNSHOWN = ("text", "raw")
# hydrate's mark for an issue its source did not return; a payload from it lifts the mark
MISSING_FLAG = "missing-at-source"


def newest_per_issue(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One payload per issue: a batch may carry an issue twice (overlapping search windows,
    a repeated id), and then the one updated last is the truth (the later one on a tie),
    whatever order they came in."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in records:
        known = chosen.get(record["uid"])
        if known is None or not _older(record.get("updated_on"), known.get("updated_on")):
            chosen[record["uid"]] = record
    return chosen


def apply_payloads(session: Session, records: list[dict[str, Any]]) -> Counter[str]:
    """Store source payloads (see the module docstring); counts added/updated/unchanged."""
    chosen = newest_per_issue(records)
    counts: Counter[str] = Counter()
    new: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    stored = {i.uid: i for i in where_in(session, Issue.uid, list(chosen))}
    for uid, record in chosen.items():
        issue = stored.get(uid)
        if issue is None:
            new.append(record)
            counts["added"] += 1
            continue
        record = plain_values(record)  # compared and set field by field: a str
        if _older(record.get("updated_on"), issue.updated_on):
            changed = _differs(issue, record)
            changes = _fill_gaps(issue, record)
            if changed:  # kept as it came: it was not applied
                history.append(_history_row(record, changes, record, applied=False))
        else:
            earlier = {"raw": issue.raw or {}, "updated_on": issue.updated_on}
            changes = _apply(issue, record)
            if changes:  # the payload it replaced is kept
                history.append(_history_row(record, changes, earlier, applied=True))
        counts["updated" if changes else "unchanged"] += 1
    session.flush()
    insert_many(session, Issue, new)
    insert_many(session, IssuePayload, history)
    return counts


def _older(moment: datetime | None, than: datetime | None) -> bool:
    """Whether a payload updated at `moment` is older than one updated at `than` (a payload
    without a date is taken as the newest: it was just fetched)."""
    if moment is None or than is None:
        return False
    return _aware(moment) < _aware(than)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _apply(issue: Issue, record: dict[str, Any]) -> dict[str, list[Any]]:
    """The source-owned fields the record carries, nulls included; other fields only where
    it knows them. Returns what changed, {field: [old, new]}."""
    changes: dict[str, list[Any]] = {}
    for key, value in record.items():
        if key == "found_by" and issue.found_by:
            continue  # the first finder stays on record
        if key not in SOURCE_FIELDS and value is None:
            continue
        if key == "flags":
            value = list(dict.fromkeys([*(issue.flags or []), *(value or [])]))
        current = getattr(issue, key)
        if _same(current, value):
            continue
        setattr(issue, key, value)
        if key not in _UNSHOWN and key != "found_by":
            changes[key] = [_plain(current), _plain(value)]
    flags = [f for f in issue.flags or [] if not f.startswith(MISSING_FLAG)]
    if flags != list(issue.flags or []):  # the source has it again
        changes["flags"] = [issue.flags, flags]
        issue.flags = flags
    return changes


def _fill_gaps(issue: Issue, record: dict[str, Any]) -> dict[str, list[Any]]:
    """An older payload: it fills only fields nothing has filled yet."""
    changes: dict[str, list[Any]] = {}
    for key, value in record.items():
        if value is None or value == [] or getattr(issue, key) not in (None, [], {}):
            continue
        setattr(issue, key, value)
        if key not in _UNSHOWN and key != "found_by":
            changes[key] = [None, _plain(value)]
    return changes


def _differs(issue: Issue, record: dict[str, Any]) -> bool:
    return any(
        not _same(getattr(issue, key), value)
        for key, value in record.items()
        if key in SOURCE_FIELDS
    )


def _same(current: Any, value: Any) -> bool:
    if isinstance(current, datetime) and isinstance(value, datetime):
        return _aware(current) == _aware(value)
    return current == value


def _plain(value: Any) -> Any:
    """A value as JSON holds it (dates as ISO 8601 text)."""
    return _aware(value).isoformat() if isinstance(value, datetime) else value


def _history_row(
    record: dict[str, Any], changes: dict[str, list[Any]], kept: dict[str, Any], applied: bool
) -> dict[str, Any]:
    """A history row: the payload `record` arrived (from `found_by`) and changed `changes`;
    `kept` is the payload the row keeps (the one replaced, or the record itself)."""
    return {
        "issue_uid": record["uid"],
        "found_by": record.get("found_by"),
        "applied": applied,
        "changes": changes,
        "raw": kept.get("raw") or {},
        "raw_updated_on": kept.get("updated_on"),
    }
