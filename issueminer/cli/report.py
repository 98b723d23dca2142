"""`issueminer report`, `issueminer export` and `issueminer diff-study`: a study's outputs.

The library modules are imported inside the commands: matplotlib and scipy take a while
to load, and the other commands should not pay for them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    fail,
    handled,
    open_store,
    out,
    print_json,
    study_taxonomy,
)


class SheetFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"
    jsonl = "jsonl"


OutOption = Annotated[Path, typer.Option("--out", help="Folder to write into.")]


def report(
    db: DbOption = None,
    study: StudyOption = None,
    out_dir: OutOption = Path("report"),
    missing: Annotated[
        str,
        typer.Option(
            help="The agreement figures' missing-label rule: skip or as-category "
            "(see `issueminer agree --help`)."
        ),
    ] = "skip",
    fmt: FormatOption = Format.md,
) -> None:
    """Write the study report: report.html, tables/*.tex and figures/* (PNG, PDF, SVG).

    report.html is one self-contained file (figures embedded, no server, no network):
    method (sources, selection criteria, counts from crawled to labelled, agreement),
    figures and numbered tables, and the reliability section (figures with 95% intervals,
    the missing-label rule, confusion heat maps). Its numbers are those of `issueminer
    stats` and `issueminer agree`; tables/symptom_fix.csv holds the full symptom x
    fix-pattern matrix that tables/symptom_fix.tex prints as top patterns per symptom.

    Example: issueminer report --db study.db --out paper/report
    """
    from issueminer.analyse.report import build_report
    from issueminer.label.agreement import MISSING_RULES

    if missing not in MISSING_RULES:
        fail(f"--missing must be one of {', '.join(MISSING_RULES)}, not '{missing}'")
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    with handled():
        result = build_report(store, taxonomy, out_dir, missing)
    if fmt == Format.json:
        print_json(
            {
                "html": str(result.html),
                "tables": [str(p) for p in result.tables],
                "figures": [str(p) for p in result.figures],
            }
        )
        return
    out.print(f"wrote {result.html}", highlight=False)
    out.print(f"wrote {len(result.tables)} tables in {out_dir / 'tables'}", highlight=False)
    out.print(f"wrote {len(result.figures)} figure files in {out_dir / 'figures'}", highlight=False)


def export(
    db: DbOption = None,
    study: StudyOption = None,
    sheet_format: Annotated[
        SheetFormat,
        typer.Option("--sheets", help="Workbooks as .xlsx, or one CSV/JSON Lines file per sheet."),
    ] = SheetFormat.xlsx,
    out_dir: OutOption = Path("replication-package"),
    fmt: FormatOption = Format.md,
) -> None:
    """Write a replication package in the TOSEM 2023 layout: URLs, final labels, every round.

    Holds the selected URLs per source, the final labels (faults, how-to questions, not
    relevant), each round's independent and adjudicated labels, the taxonomy file, the
    codebook and a README. `issueminer import replication` on it rebuilds the same labels.

    Example: issueminer export --sheets csv --out replication-package
    """
    from issueminer.analyse.export import ExportError, export_package

    if fmt not in (Format.md, Format.json):
        fail("export prints its summary as md or json (--sheets picks the files' format)")
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    with handled():
        try:
            result = export_package(store, taxonomy, out_dir, sheet_format.value)
        except ExportError as exc:
            fail(str(exc))
    if fmt == Format.json:
        files = [str(path) for path in result.files]
        print_json({"counts": result.counts, "notes": result.notes, "files": files})
        return
    for what, n in result.counts.items():
        out.print(f"{what:>34}: {n}", highlight=False)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"wrote {len(result.files)} files in {out_dir}", highlight=False)


def diff_study(
    a: Annotated[str, typer.Argument(help="First study: database URL or SQLite path.")],
    b: Annotated[str, typer.Argument(help="Second study: database URL or SQLite path.")],
    study: StudyOption = None,
    top: Annotated[int, typer.Option(min=0, help="How many moved categories to list.")] = 10,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="B's unlabelled issues count too: compare A's final tables with B's "
            "estimated tables and their intervals (see `issueminer estimate --then`).",
        ),
    ] = False,
    group: Annotated[
        str | None, typer.Option(help="With --estimate: only B's issues of this framework group.")
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Compare two studies' (or snapshots') label distributions with the test that fits.

    When A and B share issues (two snapshots of one study), each shared issue's label in A
    is paired with its label in B: transition tables (A's category against B's) tested with
    Stuart-Maxwell and Bowker, and McNemar per category that moved; issues only one side
    holds are compared A-only against B-only with Pearson's chi-square. When they share no
    issue, chi-square tests of independent samples (issue types, stages, how-to topics,
    the leaf symptoms of each stage; small expected counts flagged). The output says which
    design was used and why, how issues with several labels are counted, Holm-adjusted
    p-values, and the categories whose share moved most, in percentage points.

    With --estimate, B is a population estimated from predictions (`issueminer
    estimate`): each share's difference is tested with the estimate's own uncertainty,
    never as if predicted counts were observed.

    Example: issueminer diff-study study.db new-crawl.db --top 15
    """
    if estimate:
        from issueminer.cli.estimate import compare_estimated

        compare_estimated(a, b, study, group, fmt)
        return
    if group is not None:
        fail("--group chooses B's population for --estimate: give --estimate too")
    from issueminer.analyse.stats import compute_stats
    from issueminer.analyse.study_diff import diff_studies

    stats = []
    for url in (a, b):
        store = open_store(url)
        taxonomy = study_taxonomy(store, study)
        with handled(), store.session() as session:
            stats.append(compute_stats(session, taxonomy))
    diff = diff_studies(stats[0], stats[1], names=(a, b), top=top)
    if fmt == Format.json:
        print_json(diff.as_dict())
        return
    _print_diff(diff, fmt)


# transition tables small enough to read in a terminal; the others are in --format json
MD_MAX_TRANSITION = 12


def _print_diff(diff: Any, fmt: Format) -> None:
    import pandas as pd

    from issueminer.analyse.stats import render_table

    def table(title: str, frame: pd.DataFrame, decimals: int = 2) -> None:
        if fmt == Format.md:
            out.print(f"## {title}\n", highlight=False)
        out.print(render_table(frame, fmt.value, title, decimals=decimals), highlight=False)

    def with_p(rows: list[Any]) -> pd.DataFrame:
        frame = pd.DataFrame([vars(row) for row in rows])
        if fmt in (Format.md, Format.latex) and not frame.empty:
            for column in ("p_value", "p_holm"):
                frame[column] = frame[column].map(_p_value)
            frame["dof"] = frame["dof"].map(lambda v: "" if v is None or v != v else str(int(v)))
        return frame

    if fmt == Format.md:
        out.print(f"A = {diff.a}\nB = {diff.b}\n", highlight=False)
        if diff.design is not None:
            out.print(f"Design: {diff.design.why}.\nUnits: {diff.design.units}.\n", highlight=False)
    if diff.paired:
        table("Paired tests on the shared issues (A vs B)", with_p(diff.paired))
        for transition in diff.transitions:
            moved = transition.n > sum(
                transition.counts[i][i] for i in range(len(transition.counts))
            )
            small = len(transition.categories) <= MD_MAX_TRANSITION
            if fmt != Format.md or (moved and small):
                title = f"Transitions: {transition.dimension} (A's in rows, B's in columns)"
                table(title, transition.frame(), decimals=0)
    if diff.tests:
        table("Chi-square tests of independent samples (A vs B)", with_p(diff.tests))
    movers = pd.DataFrame([vars(m) for m in diff.movers])
    table("Categories that moved most (share in %, delta in points)", movers, decimals=1)


SMALLEST_P_SHOWN = 1e-4  # below this, digits say nothing a reader can use


def _p_value(p: float | None) -> str:
    if p is None or p != p:
        return ""
    return f"< {SMALLEST_P_SHOWN:g}" if p < SMALLEST_P_SHOWN else f"{p:.4f}"
