"""`issueminer estimate`: the study's tables over a population, with 95% intervals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    fail,
    handled,
    iso_date,
    open_store,
    out,
    print_json,
    study_taxonomy,
    writable_file,
)

if TYPE_CHECKING:
    import pandas as pd

    from issueminer.analyse.estimate.tables import Estimate, EstimatedTable

TABLES_HELP = (
    "Only this table: issue_types, stages, inner_categories, leaf_symptoms, specific, "
    "fix_patterns, howto_topics."
)


def estimate(
    db: DbOption = None,
    study: StudyOption = None,
    crawl: Annotated[int | None, typer.Option(help="Only issues found by this crawl run.")] = None,
    since: Annotated[str | None, typer.Option(help="Only issues created on or after.")] = None,
    until: Annotated[str | None, typer.Option(help="Only issues created before.")] = None,
    group: Annotated[
        str | None, typer.Option(help="Only the frameworks of this group of the study file.")
    ] = None,
    labelled_only: Annotated[
        bool, typer.Option("--labelled-only", help="Only issues with a final label.")
    ] = False,
    table: Annotated[str | None, typer.Option(help=TABLES_HELP)] = None,
    quantification: Annotated[
        bool,
        typer.Option(
            help="Without a labelled sample, correct the predictions by the classifier's "
            "errors on the study's labels (cross-validates the models: takes a while)."
        ),
    ] = True,
    folds: Annotated[
        int, typer.Option(min=2, help="Cross-validation folds for the quantification.")
    ] = 5,
    then: Annotated[
        str | None,
        typer.Option(help="Compare with this study database's final tables (then and now)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="With --then: write the then-and-now HTML report (figures with error bars).",
            callback=writable_file,
        ),
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Estimate every table of `stats` over a population, with 95% confidence intervals.

    Final labels count exactly; unlabelled issues are estimated from the classifier's
    stored predictions (`issueminer classify`) corrected by a random labelled sample
    (`issueminer round create --for-estimate`), with prediction-powered inference. Without
    such a sample, the classifier's cross-validated errors on the study's labels correct
    its counts (adjusted classify-and-count); where neither applies, the output gives the
    bounds the labels alone prove. Each table says which estimator it used and what that
    assumes.

    Example: issueminer estimate --group current --since 2024-01-01 --format json
    """
    from issueminer.analyse.estimate.tables import TABLE_NAMES

    if report is not None and then is None:
        fail("--report writes the then-and-now comparison: give --then STUDY_DB too")
    if table is not None and table not in TABLE_NAMES:
        fail(f"no table '{table}'; choose one of {', '.join(TABLE_NAMES)}")
    filters = {
        "crawl": crawl,
        "since": iso_date(since, "--since"),
        "until": iso_date(until, "--until"),
        "group": group,
        "labelled_only": labelled_only,
    }
    taxonomy, result = _estimate(db, study, filters, table, quantification, folds)
    if then is not None:
        _then_and_now(then, taxonomy, result, report, fmt)
        return
    if fmt == Format.json:
        print_json(result.as_json())
        return
    _print(result, fmt)


def _estimate(
    db: str | None,
    study: str | None,
    filters: dict[str, Any],
    table: str | None = None,
    quantification: bool = True,
    folds: int = 5,
) -> tuple[Any, Estimate]:
    from issueminer.analyse.estimate.population import PopulationError, choose_population
    from issueminer.analyse.estimate.tables import estimate_tables

    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    with handled(), store.session() as session:
        try:
            population = choose_population(session, taxonomy, **filters)
        except PopulationError as exc:
            fail(str(exc))
        result = estimate_tables(
            session, taxonomy, population, [table] if table else None, quantification, folds
        )
    return taxonomy, result


def compare_estimated(
    then_db: str,
    now_db: str,
    study: str | None,
    group: str | None,
    fmt: Format,
    report: Path | None = None,
) -> None:
    """A study's final tables (`then_db`) beside another database's estimated tables (of
    `group`'s frameworks, or all its issues): what `diff-study --estimate` prints."""
    taxonomy, now = _estimate(now_db, study, {"group": group})
    _then_and_now(then_db, taxonomy, now, report, fmt)


def _then_and_now(
    then_db: str, taxonomy: Any, now: Estimate, report: Path | None, fmt: Format
) -> None:
    from issueminer.analyse.estimate import then_now
    from issueminer.analyse.estimate.population import PopulationError, labelled_population
    from issueminer.analyse.estimate.tables import estimate_tables
    from issueminer.analyse.stats import render_table

    store = open_store(then_db)
    with handled(), store.session() as session:
        try:
            population = labelled_population(session)
        except PopulationError as exc:
            fail(f"{then_db}: {exc}")
        then = estimate_tables(session, taxonomy, population, list(now.tables), False)
    found = then_now.compare(then, now)
    written = then_now.write_report(then, now, found, report) if report else None
    if fmt == Format.json:
        print_json({**then_now.as_json(then, now, found), "report": str(written or "") or None})
        return
    for name, rows in found.items():
        frame = then_now.comparison_frame(rows)
        if fmt == Format.md:
            out.print(f"## {name}: then and now\n")
        out.print(render_table(frame, fmt.value, f"{name}: then and now", decimals=1), end="")
    if written:
        out.print(f"wrote {written}")


def _print(result: Estimate, fmt: Format) -> None:
    from issueminer.analyse.stats import render_table

    if fmt == Format.md:
        out.print(f"# Estimated tables: {result.population.describe()}\n")
        without = (
            f"left out: {result.left_out:,} unlabelled issues without predictions (no text "
            "yet: hydrate and classify them)"
            if result.left_out
            else f"{result.unpredicted:,} of them without predictions"
        )
        out.print(
            f"{result.labelled:,} labelled, {result.unlabelled:,} unlabelled ({without}); "
            f"labelled sample drawn for the estimate: {result.sample:,}\n"
        )
    for table in result.tables.values():
        caption = _caption(table)
        if fmt == Format.md:
            out.print(f"## {caption}\n")
        out.print(render_table(table_frame(table), fmt.value, caption, decimals=1), end="")
        if fmt == Format.md:
            out.print("")


def _caption(table: EstimatedTable) -> str:
    info: dict[str, Any] = table.as_dict()
    return (
        f"{table.name}, shares among {table.among}: {info['estimator']} "
        f"(assumes: {info['assumes']})"
    )


def table_frame(table: EstimatedTable) -> pd.DataFrame:
    """One row per category: labelled count, estimated count and share (percent) with
    their 95% intervals."""
    import pandas as pd

    rows = [
        {
            "category": row.category,
            "labelled": int(row.labelled),
            # one decimal, as the tables print: more would claim a precision there is not
            "count": round(row.count.estimate, 1),
            "count_low": round(row.count.low, 1),
            "count_high": round(row.count.high, 1),
            "percent": round(100 * row.share.estimate, 1),
            "percent_low": round(100 * row.share.low, 1),
            "percent_high": round(100 * row.share.high, 1),
        }
        for row in table.rows
    ]
    columns = ["category", "labelled", "count", "count_low", "count_high"]
    return pd.DataFrame(rows, columns=[*columns, "percent", "percent_low", "percent_high"])
