"""How a replication package's sheet gives one issue several labels.

Where an issue holds several faults or questions, the TOSEM 2023 sheets merge its Type and
Link cells over one row per label; openpyxl leaves the cells below a merged range's top
empty, and `merged_issue_cells` fills them in. `SheetParts` then numbers each issue's rows
in a sheet, so that the k-th row of an issue in one annotator's sheet pairs with the k-th
in another's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from issueminer.findings import ImportFailure, Report
from issueminer.label_cells import Where

if TYPE_CHECKING:
    from issueminer.collect.sources.replication import IssueRecord


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


class SheetParts:
    """Numbers each issue's rows in one sheet: its first row is its part 1, the next part 2.

    A further row comes from a merged Link cell (the sheet's way of giving one issue
    several faults or questions) or from the link typed again; either is a further label,
    never a replacement of the one above. A `part` column (an exported package's labelling
    sheets, which also list earlier saves) says it instead: there a repeated (link, part)
    is a newer save of that label.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self.rows: dict[str, list[int]] = {}

    def next(
        self, issue: IssueRecord, where: Where, merged_from: int | None, cell: Any = None
    ) -> int:
        if _present(cell):
            return self._given(cell, where)
        rows = self.rows.setdefault(issue.uid, [])
        rows.append(where.row or 0)
        part = len(rows)
        if merged_from is not None:
            where.report(
                self.report,
                "merged-link",
                f"in the Link cell merged from row {merged_from}: label {part} of {issue.url}",
            )
        elif part > 1:
            where.report(
                self.report,
                "repeated-link",
                f"{issue.url} named again (first at row {rows[0]}): read as its label {part}",
                "url",
                issue.url,
            )
        return part

    def _given(self, cell: Any, where: Where) -> int:
        try:
            part = int(float(str(cell).strip()))
        except ValueError:
            part = 0
        if part < 1:
            raise ImportFailure(
                f"{where.file}, sheet '{where.sheet}', row {where.row}, column 'part': "
                f"{cell!r} is not a label number (1, 2, ...)"
            )
        return part


def merged_issue_cells(sheet: Any, columns: list[int]) -> dict[int, dict[int, tuple[int, Any]]]:
    """row -> column index -> (top row, value) for the rows a merged cell of these columns
    (Type, Link) covers below its top row: openpyxl gives those cells no value.

    Only the cells that name the issue are filled in; a row's labels are its own.
    """
    filled: dict[int, dict[int, tuple[int, Any]]] = {}
    for cells in sheet.merged_cells.ranges:
        for index in columns:
            if cells.min_col <= index + 1 <= cells.max_col:
                value = sheet.cell(cells.min_row, cells.min_col).value
                for row in range(cells.min_row + 1, cells.max_row + 1):
                    filled.setdefault(row, {})[index] = (cells.min_row, value)
    return filled
