"""`issueminer stats` and `issueminer agree`: the study's tables from the database."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from issueminer.analyse.stats import (
    TABLE_NAMES,
    compute_stats,
    render_table,
    write_tables,
)
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

if TYPE_CHECKING:
    import pandas as pd


def stats(
    db: DbOption = None,
    study: StudyOption = None,
    fmt: FormatOption = Format.md,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write one file per table here.")
    ] = None,
    table: Annotated[
        str | None, typer.Option(help=f"Only this table: {', '.join(TABLE_NAMES)}.")
    ] = None,
) -> None:
    """Regenerate the study's tables from the final labels in the database.

    Tables: dataset overview, fault taxonomy (stage > inner category > leaf), the share of
    faults specific to the study's subject, fix patterns, symptom x fix pattern, how-to
    topics; captions use the study file's names for each dimension.

    Example: issueminer stats --format latex --out paper/tables
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    with store.session() as session:
        result = compute_stats(session, taxonomy)
    if table:
        if table not in result.tables:
            fail(f"no table '{table}'; choose one of {', '.join(result.tables)}")
        result.tables = {table: result.tables[table]}
    if out_dir:
        with handled():
            written = write_tables(result, out_dir, fmt.value)
        if fmt == Format.json:
            print_json({"wrote": [str(path) for path in written]})
        else:
            for path in written:
                out.print(f"wrote {path}", highlight=False)
        return
    if fmt == Format.json:
        print_json(result.as_json() if not table else result.as_json()["tables"][table])
        return
    if fmt == Format.md and not table:
        totals = result.summary["totals"]
        specific = result.summary["specific"]
        share = specific["share"]
        out.print(
            f"# {taxonomy.title}\n\n{totals['faults']} labelled faults and {totals['howto']} "
            f"how-to questions from {totals['distinct_issues']} distinct issues "
            f"({totals['issues_with_several_labels']} issues carry several labels; "
            f"{totals['label_only']} labels without a link; {totals['not_relevant']} marked "
            f"not relevant); {specific['label']} faults: "
            f"{'-' if share is None else f'{100 * share:.1f}%'}\n",
            highlight=False,
        )
    for name, frame in result.tables.items():
        if fmt == Format.md:
            out.print(f"## {result.title(name)}\n", highlight=False)
            frame = _fit_terminal(name, frame)
        out.print(render_table(frame, fmt.value, result.title(name)), markup=False, highlight=False)


class Missing(StrEnum):
    skip = "skip"
    as_category = "as-category"


def agree(
    db: DbOption = None,
    round_name: Annotated[str | None, typer.Option("--round", help="Only this round.")] = None,
    missing: Annotated[
        Missing,
        typer.Option(
            help="skip: an item counts for a dimension when two annotators gave it a value "
            "there; as-category: 'no value' is a category of its own (unconditional figures)."
        ),
    ] = Missing.skip,
    confusions: Annotated[
        bool,
        typer.Option(
            "--confusions", help="Also print where annotators differ, and per-category agreement."
        ),
    ] = False,
    resamples: Annotated[
        int, typer.Option(min=100, help="Bootstrap resamples for the 95% intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 2023,
    fmt: FormatOption = Format.md,
) -> None:
    """Agreement per round and dimension: items, percent agreement, kappa, alpha, with 95%
    bootstrap intervals and the number of items each rule left out.

    Kappa is Cohen's (scikit-learn) for two annotators, the mean over pairs for more, with
    Landis and Koch's words; alpha is Krippendorff's (nominal; for fix patterns also with the
    MASI distance between sets); three or more annotators add Fleiss' kappa and a table of
    pairs. Counted from each annotator's newest save; symptoms with their path (stage,
    inner category). --format latex gives the table a paper prints (figures over their
    intervals, fitting a page).
    --format json carries everything, confusion tables and per-category agreement included.

    Example: issueminer agree --round round3 --missing as-category --confusions
    """
    from issueminer.analyse.agreement_tables import (
        AGREEMENT_TITLE,
        agreement_frame,
        categories_frame,
        confusions_frame,
        has_many,
        method_text,
        pairs_frame,
        paper_caption,
        paper_frame,
    )
    from issueminer.analyse.report_tables import agreement_paper_table, latex
    from issueminer.label.agreement import agreement_table

    store = open_store(db)
    with store.session() as session:
        rows = agreement_table(session, round_name, missing.value, resamples=resamples, seed=seed)
    if round_name and not rows:
        fail(f"round '{round_name}' has no issue labelled by two or more annotators")
    if fmt == Format.json:
        print_json([row.as_dict() for row in rows])
        return
    caption = f"{AGREEMENT_TITLE} (missing-label rule: {missing.value})"
    main = agreement_frame(rows)
    if fmt == Format.csv:  # a CSV file has no caption: the rule goes in a column
        main.insert(2, "missing-label rule", missing.value)
    tables = [(caption, main)]
    if has_many(rows):
        tables.append(("Agreement of each pair of annotators", pairs_frame(rows)))
    if confusions:
        tables.append(
            ("Where annotators differ (first's value against second's)", confusions_frame(rows))
        )
        tables.append(("Specific agreement per category", categories_frame(rows)))
    if fmt == Format.md:
        out.print(method_text(missing.value, resamples, seed) + "\n", highlight=False)
    for title, frame in tables:
        if fmt == Format.md:
            out.print(f"## {title}\n", highlight=False)
        text = render_table(frame, fmt.value, title, decimals=3)
        if fmt == Format.latex and frame is main:
            text = latex(agreement_paper_table(paper_frame(rows), paper_caption(missing.value)))
        out.print(text, markup=False, highlight=False)


MD_MAX_FIX_COLUMNS = 10  # a terminal cannot show dozens of columns; files get them all


def _fit_terminal(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    named = 3  # the stage, inner-category and leaf-symptom columns that name each row
    if name != "symptom_fix" or frame.shape[1] <= MD_MAX_FIX_COLUMNS + named:
        return frame
    hidden = frame.shape[1] - named - MD_MAX_FIX_COLUMNS
    out.print(
        f"(the {MD_MAX_FIX_COLUMNS} most frequent fix patterns; {hidden} more with "
        "--format csv or --out)\n",
        highlight=False,
    )
    return frame.iloc[:, : MD_MAX_FIX_COLUMNS + named]
