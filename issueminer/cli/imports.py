"""`issueminer import`: bring in an existing study, or a researcher's own issues and labels.

The importers are imported inside the commands (openpyxl, for the packages' workbooks, takes
a while to load, and the other commands should not pay for it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    database_url,
    handled,
    open_store,
    print_report,
    progress,
    study_taxonomy,
    writable_file,
)

if TYPE_CHECKING:
    from issueminer.store import Store

app = typer.Typer(help="Import a replication package, issues or labels.", no_args_is_help=True)

ReportOption = Annotated[
    str | None,
    typer.Option(
        "--report",
        help="Write every finding (file, sheet, row) to FILE (.json/.csv).",
        callback=writable_file,
    ),
]


@contextmanager
def new_or_kept(db: str | None) -> Iterator[Store]:
    """The store at --db for an import. A SQLite file the import starts is removed again
    when the import fails: the message says nothing was written, and an empty database
    left at the path would be taken for a study by the next command."""
    from issueminer.store.db import sqlite_file

    path = sqlite_file(database_url(db))
    new = path if path is not None and not path.exists() else None
    store = open_store(db, create=True)
    try:
        yield store
    except BaseException:
        if new is not None:
            store.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{new}{suffix}").unlink(missing_ok=True)
        raise


@app.command("replication")
def replication(
    source: Annotated[str, typer.Argument(help="Package folder, its zip, or an https URL of it.")],
    db: DbOption = None,
    study: StudyOption = None,
    report: ReportOption = None,
    keep_unknown: Annotated[
        bool, typer.Option(help="Keep labels the taxonomy lacks as raw cells instead of failing.")
    ] = False,
    fmt: FormatOption = Format.md,
) -> None:
    """Import a study's replication package: candidate URLs, final labels, pilot and rounds.

    Re-importing the same package changes nothing. Messy cells are normalised and listed.

    Example: issueminer import replication ../shared/tosem23.zip --report import-report.csv
    """
    from issueminer.collect.ingest import import_replication

    with new_or_kept(db) as store:
        taxonomy = study_taxonomy(store, study)
        with handled(), progress(download=True) as bar:
            result = import_replication(
                store, source, taxonomy, keep_unknown=keep_unknown, progress=bar
            )
    print_report(result, fmt, report)


@app.command("issues")
def issues(
    path: Annotated[
        Path, typer.Argument(help="JSON Lines (.jsonl) or CSV file with a url column.")
    ],
    db: DbOption = None,
    study: StudyOption = None,
    report: ReportOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Import issues you already have: url is required; title, body, source, tags, created,
    state and framework are optional, and answers (a list of objects) in JSON Lines only.

    Example: issueminer import issues data/sample/issues.jsonl
    """
    from issueminer.collect.ingest import import_issues

    with new_or_kept(db) as store, handled():
        result = import_issues(store, path, study_taxonomy(store, study))
    print_report(result, fmt, report)


@app.command("labels")
def labels(
    path: Annotated[Path, typer.Argument(help="CSV: url,kind,annotator,round,<label columns>.")],
    db: DbOption = None,
    study: StudyOption = None,
    report: ReportOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Import annotations (kind=annotation, with round) and final labels (kind=final).

    Example: issueminer import labels data/sample/labels.csv
    """
    from issueminer.collect.ingest import import_labels

    with new_or_kept(db) as store:
        taxonomy = study_taxonomy(store, study)
        with handled():
            result = import_labels(store, path, taxonomy)
    print_report(result, fmt, report)
