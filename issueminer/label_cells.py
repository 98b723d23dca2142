"""Turn one row of label cells (as a person typed them) into canonical labels.

Shared by every importer and the annotation app: case and spelling are normalised through
the taxonomy, cells shifted by one column are put back, placeholders become "pending",
and each of these is reported with its place, never silently changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from issueminer.findings import Report
from issueminer.taxonomy import FAULT, FIELD_OF, HOWTO, NOT_RELEVANT, Resolution, Taxonomy

# The fault columns in sheet order; a row whose cells slid one column left or right
# across these is repaired by trying both offsets (see `_repair_shift`).
FAULT_COLUMNS = ("stage", "inner_category", "leaf_symptom", "fix_patterns", "memo")
_DIMENSION_OF = {field: dim for dim, field in FIELD_OF.items() if field in FAULT_COLUMNS}
_TRUE = {"1", "yes", "y", "true", "t"}
_FALSE = {"0", "no", "n", "false", "f"}
# Earlier names of label cells, still read: the yes/no flag was named after the first study
# that used the tool. An old name fills its cell when the new name leaves it empty. (Only
# the yes/no flag was renamed, so both are compared as yes/no.)
OLD_CELL_NAMES = {"distributed_specific": "specific"}


@dataclass(frozen=True)
class Where:
    file: str
    sheet: str | None = None
    row: int | None = None

    def report(
        self, report: Report, kind: str, message: str, column: str | None = None, value: Any = None
    ) -> None:
        report.add(
            kind, self.file, message, sheet=self.sheet, row=self.row, column=column, value=value
        )


@dataclass
class Labels:
    issue_type: str | None = None
    specific: bool | None = None  # the fault lies in the study's subject (yes/no)
    stage: str | None = None
    inner_category: str | None = None
    leaf_symptom: str | None = None
    fix_patterns: list[str] = field(default_factory=list)
    howto_topic: str | None = None
    howto_subtopic: str | None = None
    memo: str | None = None
    status: str = "done"
    unknown: list[str] = field(default_factory=list)  # cells no node matched

    def fields(self) -> dict[str, Any]:
        return {
            "issue_type": self.issue_type,
            "specific": self.specific,
            "stage": self.stage,
            "inner_category": self.inner_category,
            "leaf_symptom": self.leaf_symptom,
            "fix_patterns": list(self.fix_patterns),
            "howto_topic": self.howto_topic,
            "howto_subtopic": self.howto_subtopic,
            "memo": self.memo,
        }

    @property
    def is_empty(self) -> bool:
        values = self.fields()
        values.pop("memo")
        return not any(v not in (None, []) for v in values.values())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def normalise_labels(
    taxonomy: Taxonomy,
    cells: dict[str, Any],
    where: Where,
    report: Report,
    implied_type: str | None = None,
) -> Labels:
    """Canonical labels of one row; `implied_type` when the sheet itself says fault/how-to."""
    cells = _repair_shift(taxonomy, current_names(cells, where, report), where, report)
    labels = Labels(memo=_text(cells.get("memo")))
    pending = False

    def take(column: str, dimension: str, parent: str | None = None) -> str | None:
        nonlocal pending
        resolution = taxonomy.resolve(dimension, cells.get(column), parent)
        if resolution.how == "unknown" and _known_elsewhere(
            taxonomy, column, resolution, where, report
        ):
            return None
        pending |= _note(resolution, column, where, report, labels)
        return resolution.value

    def take_subtopic(topic: str) -> str | None:
        raw = cells.get("howto_subtopic")
        resolution = taxonomy.resolve("howto_subtopic", raw, topic)
        if resolution.how == "unknown":
            for other in taxonomy.howto_tree:
                elsewhere = taxonomy.resolve("howto_subtopic", raw, other)
                if elsewhere.value:
                    where.report(
                        report,
                        "off-tree",
                        f"sub-topic '{raw}' belongs to topic '{other}', not '{topic}'; kept",
                        "howto_subtopic",
                        raw,
                    )
                    return elsewhere.value
        nonlocal pending
        pending |= _note(resolution, "howto_subtopic", where, report, labels)
        return resolution.value

    labels.stage = take("stage", "stage")
    labels.inner_category = take("inner_category", "inner_category")
    labels.leaf_symptom = take("leaf_symptom", "symptom")
    labels.fix_patterns, parts = taxonomy.split_fix_patterns(cells.get("fix_patterns"))
    for part in parts:
        pending |= _note(part, "fix_patterns", where, report, labels)
    if len(parts) > 1:
        where.report(
            report,
            "combined-fix-patterns",
            f"'{cells.get('fix_patterns')}' split into {labels.fix_patterns}",
            "fix_patterns",
            cells.get("fix_patterns"),
        )
    labels.howto_topic = take("howto_topic", "howto_topic")
    if labels.howto_topic:
        labels.howto_subtopic = take_subtopic(labels.howto_topic)
    elif _text(cells.get("howto_subtopic")):
        where.report(
            report,
            "orphan-subtopic",
            "a how-to sub-topic without a topic is ignored",
            "howto_subtopic",
            cells.get("howto_subtopic"),
        )
    labels.specific = _flag(cells.get("specific"), where, report, labels)
    labels.issue_type = _issue_type(taxonomy, cells, labels, implied_type, where, report)
    pending |= labels.issue_type is None and not labels.is_empty
    _check_shape(taxonomy, labels, where, report)
    labels.status = "pending" if pending else "done"
    return labels


def current_names(cells: dict[str, Any], where: Where, report: Report) -> dict[str, Any]:
    """A copy of the cells with every old name (`OLD_CELL_NAMES`) under its current one."""
    cells = dict(cells)
    for old, new in OLD_CELL_NAMES.items():
        if old not in cells:
            continue
        value = cells.pop(old)
        if _text(cells.get(new)) is None:
            cells[new] = value
        elif (old_answer := _yes_no(value)) is not None and old_answer != _yes_no(cells[new]):
            where.report(
                report,
                "conflict",
                f"'{old}' (the old name of '{new}') says '{value}' but '{new}' says "
                f"'{cells[new]}'; kept '{new}'",
                old,
                value,
            )
    return cells


def _known_elsewhere(
    taxonomy: Taxonomy, column: str, resolution: Resolution, where: Where, report: Report
) -> bool:
    """A cell naming a node of another fault column (a label typed in the wrong cell)."""
    for other_column, dimension in _DIMENSION_OF.items():
        if other_column == column or column not in _DIMENSION_OF:
            continue
        found = taxonomy.resolve(dimension, resolution.raw)
        if found.value:
            where.report(
                report,
                "misplaced",
                f"'{resolution.raw}' is a {dimension.replace('_', ' ')}"
                f"; left out of column {column}",
                column,
                resolution.raw,
            )
            return True
    return False


def _note(
    resolution: Resolution, column: str, where: Where, report: Report, labels: Labels
) -> bool:
    """Report what resolving one cell did; True when the cell is a placeholder."""
    if resolution.how == "placeholder":
        where.report(
            report,
            "placeholder",
            f"'{resolution.raw}' (not decided) counts as pending",
            column,
            resolution.raw,
        )
        return True
    if resolution.how == "proposed":
        where.report(
            report,
            "proposed",
            f"'{resolution.value}' is not in the taxonomy; kept as a proposed category",
            column,
            resolution.raw,
        )
    elif resolution.how == "unknown":
        labels.unknown.append(f"{column}={resolution.raw!r}")
        where.report(
            report,
            "unknown-label",
            f"'{resolution.raw}' is not in the taxonomy",
            column,
            resolution.raw,
        )
    elif resolution.changed:
        where.report(
            report,
            "normalised",
            f"'{resolution.raw}' -> '{resolution.value}'",
            column,
            resolution.raw,
        )
    return False


def _yes_no(raw: Any) -> bool | str | None:
    """A yes/no cell as True/False, its text when it is neither, None when empty."""
    text = _text(raw)
    if text is None:
        return None
    lowered = text.lower().removesuffix(".0")
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text


def _flag(raw: Any, where: Where, report: Report, labels: Labels) -> bool | None:
    value = _yes_no(raw)
    if value is None or isinstance(value, bool):
        return value
    labels.unknown.append(f"specific={raw!r}")
    where.report(report, "unknown-label", f"'{raw}' is not yes/no (1/0)", "specific", raw)
    return None


def _issue_type(
    taxonomy: Taxonomy,
    cells: dict[str, Any],
    labels: Labels,
    implied: str | None,
    where: Where,
    report: Report,
) -> str | None:
    resolution = taxonomy.resolve("issue_type", cells.get("issue_type"))
    _note(resolution, "issue_type", where, report, labels)
    stated = resolution.value
    if implied and stated and stated != implied:
        where.report(
            report,
            "conflict",
            f"row says '{stated}' but the sheet holds {implied}s; kept '{implied}'",
            "issue_type",
            cells.get("issue_type"),
        )
    if implied:
        return implied
    if stated:
        return stated
    has_fault = bool(labels.stage or labels.leaf_symptom or labels.fix_patterns)
    has_howto = bool(labels.howto_topic)
    if has_fault != has_howto and resolution.how == "empty":
        inferred = FAULT if has_fault else HOWTO
        where.report(
            report, "inferred-type", f"no issue type; the labels make it '{inferred}'", "issue_type"
        )
        return inferred
    return None


def _check_shape(taxonomy: Taxonomy, labels: Labels, where: Where, report: Report) -> None:
    if labels.issue_type == FAULT:
        stray = [n for n in ("howto_topic", "howto_subtopic") if getattr(labels, n)]
        if (
            labels.stage
            and labels.leaf_symptom
            and not taxonomy.on_tree(labels.stage, labels.inner_category, labels.leaf_symptom)
        ):
            path = " / ".join(
                p for p in (labels.stage, labels.inner_category, labels.leaf_symptom) if p
            )
            where.report(
                report,
                "off-tree",
                f"'{path}' is not a path of the fault tree",
                "leaf_symptom",
                labels.leaf_symptom,
            )
    elif labels.issue_type == HOWTO:
        stray = [n for n in ("stage", "inner_category", "leaf_symptom") if getattr(labels, n)]
        if labels.fix_patterns:
            stray.append("fix_patterns")
    elif labels.issue_type == NOT_RELEVANT:
        stray = [
            n
            for n, v in labels.fields().items()
            if v not in (None, []) and n != "issue_type" and n != "memo"
        ]
    else:
        stray = []
    if stray:
        where.report(
            report,
            "mixed-labels",
            f"a {labels.issue_type} row also fills {', '.join(stray)}; kept as written",
        )


def _repair_shift(
    taxonomy: Taxonomy, cells: dict[str, Any], where: Where, report: Report
) -> dict[str, Any]:
    """Put back fault cells that slid one column (a cell typed twice, or one left out)."""
    values = [cells.get(column) for column in FAULT_COLUMNS]
    if taxonomy.open_coding or not any(_text(v) for v in values):
        return cells  # in open coding any text is a category, so no column can look wrong
    candidates = {
        0: values,
        # stage typed twice: everything after it moved one column right
        1: [values[0], *values[2:], None],
        # inner category left out: leaf, fix pattern and memo moved one column left
        -1: [values[0], None, *values[1:4]],
    }
    scores = {offset: _fit(taxonomy, shifted) for offset, shifted in candidates.items()}
    best = max(scores, key=lambda offset: (scores[offset], offset == 0))
    if best == 0 or scores[best] <= scores[0]:
        return cells
    if (
        best == 1
        and _text(values[1]) not in (_text(values[0]), None)
        and _fit(taxonomy, [values[1], None, None, None, None]) == 0
    ):
        return cells  # the extra cell is neither a repeated stage nor a stage: leave it
    repaired = dict(zip(FAULT_COLUMNS, candidates[best], strict=True))
    where.report(
        report,
        "shifted-cells",
        "cells moved one column "
        + ("right" if best == 1 else "left")
        + "; realigned: "
        + ", ".join(f"{c}={repaired[c]!r}" for c in FAULT_COLUMNS if repaired[c]),
        value=[_text(v) for v in values],
    )
    cells.update(repaired)
    return cells


def _fit(taxonomy: Taxonomy, values: list[Any]) -> int:
    """How many of the fault cells name a node of the dimension their column holds."""
    score = 0
    for column, value in zip(FAULT_COLUMNS, values, strict=True):
        if column == "memo" or _text(value) is None:
            continue
        if column == "fix_patterns":
            names, parts = taxonomy.split_fix_patterns(value)
            score += bool(names) and all(p.how != "unknown" for p in parts)
        else:
            score += taxonomy.resolve(_DIMENSION_OF[column], value).value is not None
    return score
