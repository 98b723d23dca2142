"""A label as the cells of a replication package's sheets, and what the importer will read
back from them: `issueminer export` writes these cells and checks each row reads back as
the label it came from.

A pending label is written the TOSEM way, with a placeholder (PENDING) in every cell that
held one; an issue type the importer inferred (its cell was empty) is written empty again,
so agreement can keep counting both apart after a round trip.
"""

from __future__ import annotations

from typing import Any

from issueminer.findings import Report
from issueminer.label_cells import OLD_CELL_NAMES, Labels, Where, normalise_labels
from issueminer.store import LABEL_CELLS, Annotation, Issue
from issueminer.taxonomy import FAULT, HOWTO, Taxonomy

# Where a pending label's placeholder goes when the cells as written do not say where.
PLACEHOLDER_COLUMNS = {
    FAULT: ("leaf_symptom", "fix_patterns", "stage"),
    HOWTO: ("howto_topic", "howto_subtopic"),
}
DEFAULT_PLACEHOLDER_COLUMNS = ("stage", "howto_topic")


def source_type(issue: Issue) -> str | None:
    """The final sheets' Type cell: 'GitHub-<framework>', 'SO-<tag> & SO-<tag>'."""
    prefix = {"stackoverflow": "SO", "github": "GitHub"}.get(issue.source)
    frameworks = [f.strip() for f in (issue.framework or "").split("&") if f.strip()]
    if not frameworks:
        return prefix
    return " & ".join(f"{prefix}-{f}" if prefix else f for f in frameworks)


def sheet_cells(labels: Any, issue: Issue) -> dict[str, Any]:
    """A label's fields as sheet cells: 1/0 for yes/no, fix patterns joined with ' & '."""
    flag = labels.specific
    return {
        "url": issue.url,
        "source_type": source_type(issue),
        "issue_type": labels.issue_type,
        "specific": None if flag is None else int(flag),
        "stage": labels.stage,
        "inner_category": labels.inner_category,
        "leaf_symptom": labels.leaf_symptom,
        "fix_patterns": " & ".join(labels.fix_patterns or []) or None,
        "howto_topic": labels.howto_topic,
        "howto_subtopic": labels.howto_subtopic,
        "memo": labels.memo,
    }


class ReadBack:
    """What the importer will make of a row's cells; rows repeat, so results are kept."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.seen: dict[tuple[Any, ...], Labels] = {}

    def __call__(self, cells: dict[str, Any], issue_type: str | None) -> Labels:
        key = (issue_type, *(cells.get(column) for column in LABEL_CELLS))
        if key not in self.seen:
            self.seen[key] = normalise_labels(
                self.taxonomy, cells, Where("export"), Report(), issue_type
            )
        return self.seen[key]


def same_labels(stored: Any, read: Labels) -> bool:
    fields = read.fields()
    return all(getattr(stored, name) == value for name, value in fields.items())


def with_placeholder(
    taxonomy: Taxonomy, annotation: Annotation, cells: dict[str, Any]
) -> dict[str, Any]:
    """A pending label says so the TOSEM way: a placeholder (PENDING) in an empty cell."""
    spellings = taxonomy.raw.get("placeholders") or []
    if not spellings:
        return cells  # the status column will say it
    raw = annotation.raw_labels or {}
    where = [
        OLD_CELL_NAMES.get(k, k)  # rows saved before a column was renamed
        for k, v in raw.items()
        if isinstance(v, str) and _is_placeholder(taxonomy, v)
    ]
    # every cell that held a placeholder gets it back (agreement counts them per dimension)
    typed = {column: str(spellings[0]) for column in where if _empty_cell(cells, column)}
    if typed:
        return {**cells, **typed}
    if where:
        # its cell now holds a realigned label (shifted cells): the status column says it
        return cells
    defaults = PLACEHOLDER_COLUMNS.get(annotation.issue_type, DEFAULT_PLACEHOLDER_COLUMNS)
    for column in defaults:
        if _empty_cell(cells, column):
            return {**cells, column: str(spellings[0])}
    return cells


def _empty_cell(cells: dict[str, Any], column: str) -> bool:
    return column in cells and cells[column] is None


def type_was_inferred(annotation: Annotation) -> bool:
    """The issue-type cell was empty and the importer read the type from the other cells."""
    raw = annotation.raw_labels or {}
    return "issue_type" in raw and not str(raw["issue_type"] or "").strip()


def _is_placeholder(taxonomy: Taxonomy, text: str) -> bool:
    return taxonomy.resolve("stage", text).how == "placeholder"
