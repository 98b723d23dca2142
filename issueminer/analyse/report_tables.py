"""The report's tables in the form a paper prints: headers in words, numbered captions,
trees indented in one column, and the symptom x fix-pattern matrix as each symptom's most
frequent fix patterns (the full matrix goes to a CSV file beside the LaTeX).

Every LaTeX table is a booktabs `table` whose columns fit a page's text width at `\\small`:
long text sits in a paragraph column (`p{..}`) that wraps instead of widening the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from issueminer.analyse.stats import NO_INNER, StudyStats, _cell, _latex_escape

TOP_FIX_PATTERNS = 3  # fix patterns named per symptom in the printable table
TEXT_WIDTH_CM = 16.5  # a page's text width (A4/letter with 2.5 cm margins; ACM's 17.8)
INDENT = "\u2003"  # an em space per tree level in HTML; LaTeX gets \quad

# Column names as readers read them (the study file's own words come from `labels`)
WORDS = {
    "source": "source",
    "framework": "framework",
    "faults": "faults",
    "howto": "how-to questions",
    "total": "total",
    "issues": "issues",
    "percent": "percent",
    "fix_pattern": "fix pattern",
    "leaf_symptom": "leaf symptom",
    "inner_category": "inner category",
    "stage": "stage",
    "level": "level",
    "topic": "topic",
    "subtopic": "sub-topic",
    "questions": "questions",
}


def words(column: str) -> str:
    return WORDS.get(column, column.replace("_", " "))


@dataclass
class PaperTable:
    """One table of the report: its frame, caption, LaTeX column types, and the JSON path
    of its rows in the report's data (so each HTML cell names the value it shows)."""

    name: str
    caption: str
    frame: pd.DataFrame
    path: tuple[str, ...]
    columns: list[str]  # LaTeX column types, one per frame column
    headers: dict[str, str]
    indent: list[int] | None = None  # tree level of each row (0 = top), for indented trees
    kinds: list[str] | None = None  # what each tree row is: stage, inner, leaf, topic, ...


def tree_frame(table: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, list[int], list[str]]:
    """A stage > inner > leaf (or topic > sub-topic) table as one indented name column; with
    each row's level and what it is."""
    rows, levels = [], []
    for row in table.itertuples(index=False):
        if kind == "fault":
            level = {"stage": 0, "inner": 1, "leaf": 2}[row.level]
            if row.level == "leaf" and row.inner_category in ("", NO_INNER):
                level = 1
            name = {"stage": row.stage, "inner": row.inner_category}.get(
                row.level, row.leaf_symptom
            )
            rows.append({"category": name, "faults": row.faults, "percent": row.percent})
        else:
            level = 0 if row.level == "topic" else 1
            name = row.topic if row.level == "topic" else row.subtopic
            rows.append({"category": name, "questions": row.questions, "percent": row.percent})
        levels.append(level)
    columns = ["category", "faults" if kind == "fault" else "questions", "percent"]
    return pd.DataFrame(rows, columns=columns), levels, list(table.level)


def leaf_name(inner: str, leaf: str) -> str:
    """A leaf with its inner category, when its stage has them: 'program failure: others'."""
    return leaf if inner in ("", NO_INNER) else f"{inner}: {leaf}"


def printable_symptom_fix(matrix: pd.DataFrame, top: int = TOP_FIX_PATTERNS) -> pd.DataFrame:
    """Each leaf symptom (with its stage and inner category): its fix-pattern mentions, the
    `top` most frequent patterns with their counts, and the mentions of the others."""
    named = ("stage", "inner_category", "leaf_symptom")
    patterns = [c for c in matrix.columns if c not in named]
    rows = []
    for _, row in matrix.iterrows():
        counts = sorted(
            ((int(row[p]), p) for p in patterns if int(row[p])), key=lambda x: (-x[0], x[1])
        )
        mentions = sum(n for n, _ in counts)
        shown = counts[:top]
        rows.append(
            {
                "stage": row["stage"],
                "leaf_symptom": leaf_name(row.get("inner_category", NO_INNER), row["leaf_symptom"]),
                "mentions": mentions,
                "top_fix_patterns": "; ".join(f"{p} ({n})" for n, p in shown),
                "other_patterns": mentions - sum(n for n, _ in shown),
            }
        )
    columns = ["stage", "leaf_symptom", "mentions", "top_fix_patterns", "other_patterns"]
    return pd.DataFrame(rows, columns=columns)


def paper_tables(stats: StudyStats, labels: dict[str, str]) -> list[PaperTable]:
    """The study's tables in the report's order, each in its printable form."""
    tables = []
    for name, frame in stats.tables.items():
        caption = stats.title(name)
        path: tuple[str, ...] = ("stats", "tables", name)
        indent = kinds = None
        if name == "fault_taxonomy":
            frame, indent, kinds = tree_frame(frame, "fault")
            path = ("printable", name)
        elif name == "howto_topics":
            frame, indent, kinds = tree_frame(frame, "howto")
            path = ("printable", name)
        elif name == "symptom_fix":
            frame = printable_symptom_fix(frame)
            path = ("printable", name)
            caption += (
                f": each symptom's {TOP_FIX_PATTERNS} most frequent fix patterns (faults "
                "with the pattern); tables/symptom_fix.csv holds the full matrix"
            )
        headers = {c: labels.get(c, words(c)) for c in frame.columns}
        headers.update(
            {
                "category": "category",
                "mentions": "mentions",
                "top_fix_patterns": "most frequent fix patterns",
                "other_patterns": "other",
            }
        )
        types = column_types(frame)
        tables.append(PaperTable(name, caption, frame, path, types, headers, indent, kinds))
    return tables


def agreement_paper_table(frame: pd.DataFrame, caption: str) -> PaperTable:
    """`agreement_tables.paper_frame` as a numbered LaTeX table (its rows are derived from
    the agreement rows, so the HTML shows them from `agreement` itself)."""
    headers = {c: c for c in frame.columns}
    return PaperTable(
        "agreement", caption, frame, ("agreement",), column_types(frame, headers), headers
    )


CHAR_CM = 0.16  # about one character of \small text
CI_COLUMN = "p{1.8cm}"  # a figure over its interval, on two lines


def column_types(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> list[str]:
    """r for numbers, l for short text, p{..} for text long enough to wrap, and a narrow
    paragraph for a figure with its interval (printed on two lines)."""
    types = []
    for column in frame.columns:
        header = (headers or {}).get(column, column)
        if "95% CI" in header:
            types.append(CI_COLUMN)
            continue
        if pd.api.types.is_numeric_dtype(frame[column]):
            types.append("r")
            continue
        longest = max((len(str(v)) for v in frame[column]), default=0)
        types.append("p{4.6cm}" if longest > 40 else "p{2.8cm}" if longest > 20 else "l")
    return types


PAGE_LINES = 36  # lines of \\small table rows a float holds on one page beside its caption


def printed_lines(table: PaperTable) -> int:
    """About how many lines the rows take: a wrapping cell as many as its text needs, a
    figure with its interval two."""
    import math

    total = 0
    for row in table.frame.itertuples(index=False):
        lines = 1
        for value, kind in zip(row, table.columns, strict=True):
            if kind == CI_COLUMN and "[" in str(value):
                lines = max(lines, 2)
            elif kind.startswith("p{"):
                width = float(kind[2:].removesuffix("cm}"))
                lines = max(lines, math.ceil(len(str(value)) * CHAR_CM / width))
        total += lines
    return total


def latex(table: PaperTable, decimals: int = 1) -> str:
    """A numbered booktabs table (\\usepackage{booktabs}; longer tables are a `longtable`,
    \\usepackage{longtable}, that carries its header onto every page); \\label{tab:<name>}."""
    columns = "".join(table.columns)
    caption = rf"\caption{{{_latex_escape(table.caption)}}}"
    label = rf"\label{{tab:{table.name.replace('_', '-')}}}"
    header = " & ".join(_latex_escape(table.headers[c]) for c in table.frame.columns) + r" \\"
    body = []
    for index, row in enumerate(table.frame.itertuples(index=False)):
        cells = [_latex_escape(_cell(v, decimals)) for v in row]
        for position, kind in enumerate(table.columns):
            if kind == CI_COLUMN:  # the interval goes under its figure
                cells[position] = cells[position].replace(" [", r"\newline [", 1)
        if table.indent is not None:
            level = table.indent[index]
            cells[0] = r"\quad " * level + (rf"\textbf{{{cells[0]}}}" if level == 0 else cells[0])
        body.append(" & ".join(cells) + r" \\")
    if printed_lines(table) > PAGE_LINES:
        lines = [
            r"{\small",
            rf"\begin{{longtable}}{{{columns}}}",
            caption + label + r" \\",
            r"\toprule",
            header,
            r"\midrule",
            r"\endfirsthead",
            r"\toprule",
            header,
            r"\midrule",
            r"\endhead",
            r"\bottomrule",
            r"\endlastfoot",
            *body,
            r"\end{longtable}",
            "}",
        ]
    else:
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            caption,
            label,
            rf"\begin{{tabular}}{{{columns}}}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
    return "\n".join(lines) + "\n"


def write_paper_tables(
    tables: Sequence[PaperTable], matrix: pd.DataFrame, out_dir: Path, extra: Sequence[PaperTable]
) -> list[Path]:
    """tables/<name>.tex for every table, and the full symptom x fix-pattern matrix as CSV."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in [*tables, *extra]:
        path = out_dir / f"{table.name}.tex"
        path.write_text(latex(table, 3 if table.name == "agreement" else 1), encoding="utf-8")
        written.append(path)
    csv = out_dir / "symptom_fix.csv"
    csv.write_text(matrix.to_csv(index=False), encoding="utf-8")
    written.append(csv)
    return written


def printable_records(tables: Sequence[PaperTable]) -> dict[str, list[dict[str, Any]]]:
    """The rows of the tables whose printable form differs from `stats`, for the report's
    embedded data."""
    import json

    return {
        t.name: json.loads(t.frame.to_json(orient="records"))
        for t in tables
        if t.path[0] == "printable"
    }
