"""Options and helpers every command shares: database, output format, errors, progress.

Every command loads this module, so it stays light: SQLAlchemy and the store are imported
when a command opens the database, not with the module (`issueminer --help` never does).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from issueminer.findings import ImportFailure, Report
from issueminer.taxonomy import (
    DEFAULT_STUDY,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
    taxonomy_path,
)

if TYPE_CHECKING:
    from sqlalchemy import URL

    from issueminer.store import Store

# markup off: issue titles, labels and queries are data and may contain [brackets]
out = Console(soft_wrap=True, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


class Format(StrEnum):
    md = "md"
    json = "json"
    csv = "csv"
    latex = "latex"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL or SQLite path [env ISSUEMINER_DB; default sqlite:///issueminer.db].",
        show_default=False,
    ),
]
StudyOption = Annotated[
    str | None,
    typer.Option("--study", help="Study name or taxonomy file [default: the database's study]."),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
PathOrNone = TypeVar("PathOrNone", str | None, Path | None)


def writable_file(path: PathOrNone) -> PathOrNone:
    """Checks a --report FILE before the command does anything: a report is written after
    the work is stored, and failing only then would leave the user unsure of what was."""
    if path is None:
        return None
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise typer.BadParameter(f"{path} is a folder, not a file")
    if not folder.is_dir():
        raise typer.BadParameter(f"there is no folder {folder} to write {target.name} in")
    if not os.access(folder, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        raise typer.BadParameter(f"{path} cannot be written")
    return path


def fail(message: str, problems: list[str] | None = None) -> NoReturn:
    err.print("error:", style="bold red", end=" ")
    err.print(message)
    for problem in problems or []:
        err.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(1)


def iso_date(value: str | None, option: str) -> datetime | None:
    """A date option's value (YYYY-MM-DD, or any ISO form); a bad one stops the command."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD)")


def _database_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's base error, once SQLAlchemy is loaded: before, nothing can raise one
    (and a command that never opens the database need not load it to say so)."""
    errors = sys.modules.get("sqlalchemy.exc")
    return (errors.SQLAlchemyError,) if errors is not None else ()


@contextmanager
def handled() -> Iterator[None]:
    """Library errors become one clear message and exit status 1, never a traceback."""
    try:
        yield
    except ImportFailure as exc:
        count = len(exc.problems)
        fail(
            f"import failed, nothing was written ({count} problem{'s' * (count != 1)}):",
            exc.problems,
        )
    except TaxonomyError as exc:
        fail(f"invalid taxonomy {exc.path}:", exc.problems)
    except _database_errors() as exc:
        fail(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    except OSError as exc:  # an output folder or file that cannot be made or written
        place = f"{exc.filename}: " if exc.filename else ""
        fail(f"{place}{exc.strerror or exc}")


def database_url(db: str | None) -> URL:
    """The database URL --db (or the environment, or the default) names; a bad one is an error."""
    from sqlalchemy import make_url

    from issueminer.store.db import resolve_url

    with handled():
        return make_url(resolve_url(db))


def require_database(db: str | None) -> URL:
    """Stops at a SQLite path with no file: for a command that does not bring data in, it
    is a mistyped path, and opening it would make an empty database there."""
    from issueminer.store.db import DB_URL_ENV, sqlite_file

    url = database_url(db)
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        fail(
            f"no database at {url.database} (`issueminer import` and `issueminer crawl` "
            f"start a new one; --db or {DB_URL_ENV} names the one to use)"
        )
    return url


def open_store(db: str | None, create: bool = False) -> Store:
    """The store at --db. Only commands that bring data in (`create`) may start a new
    SQLite file (see `require_database`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from issueminer.store import Store
    from issueminer.store.db import UnknownRevision

    url = database_url(db) if create else require_database(db)
    shown = url.render_as_string(hide_password=True)
    try:
        return Store(db)
    except ModuleNotFoundError as exc:  # e.g. mysql:// without its driver
        fail(
            f"no driver for {url.get_backend_name()} databases ({exc.name} is not "
            "installed); issueminer is tested on SQLite and PostgreSQL"
        )
    except UnknownRevision as exc:
        fail(f"database {shown}: {exc}")
    except SQLAlchemyError as exc:  # which database, when a command opens two
        fail(f"database {shown}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")


def study_taxonomy(store: Store | None, study: str | None) -> Taxonomy:
    """--study wins; else the study the database was created for; else the default.

    The database remembers the study's name and file the first time a study is used with
    it: the name is looked up on the study path, the file is the fallback for a study
    kept elsewhere.
    """
    remembered: dict[str, str] = {}
    if store is not None:
        from sqlalchemy import select

        from issueminer.store import Meta

        with store.session() as session:
            remembered = {m.key: m.value for m in session.scalars(select(Meta))}
    taxonomy = chosen_taxonomy(study, remembered)
    if store is not None and "study" not in remembered:
        from issueminer.store import remember_study

        with handled(), store.session() as session:
            remember_study(session, taxonomy.study, taxonomy.path)
    return taxonomy


def chosen_taxonomy(study: str | None, remembered: dict[str, str]) -> Taxonomy:
    """The taxonomy `study_taxonomy` picks, given what the database remembers."""
    name = study or remembered.get("study")
    fallback = remembered.get("study_file")
    if study is None and name and not taxonomy_path(name).is_file() and fallback:
        name = fallback
    with handled():
        taxonomy = load_taxonomy(name or DEFAULT_STUDY)
    if remembered.get("study", taxonomy.study) != taxonomy.study:
        err.print(
            f"note: this database was created for study '{remembered['study']}'; "
            f"using '{taxonomy.study}' as asked"
        )
    return taxonomy


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def report_validation(
    path: Any, problems: list[str], fmt: Format, warnings: list[str] | None = None
) -> None:
    """A checked file's verdict: problems exit 1, warnings are only printed."""
    if fmt == Format.json:
        checked = {"file": str(path), "valid": not problems, "problems": problems}
        print_json(checked if warnings is None else {**checked, "warnings": warnings})
        if problems:
            raise typer.Exit(1)
        return
    for warning in warnings or []:
        err.print(f"warning: {warning}")
    if problems:
        fail(f"{path}: {len(problems)} problem(s)", problems)
    err.print(f"{path}: valid" + (f" ({len(warnings)} warning(s))" if warnings else ""))


def progress(download: bool = False) -> Progress:
    """A progress bar with counts (or bytes) and time left; see `progress_bar`."""
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns.append(DownloadColumn() if download else MofNCompleteColumn())
    columns.append(TimeRemainingColumn())
    return progress_bar(*columns)


def progress_bar(*columns: Any) -> Progress:
    """Progress on stderr, so stdout stays clean for --format json; only on a terminal
    (rich would leave a blank line in a log) and gone when the work is done."""
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def print_report(report: Report, fmt: Format, report_path: str | None) -> None:
    if report_path:
        with handled():
            report.write(report_path)
    if fmt == Format.json:
        print_json({**report.as_dict(), "report_file": report_path})
        return
    for what, n in report.counts.items():
        out.print(f"{what:>26}: {n}")
    findings = report.by_kind()
    if findings:
        out.print("\nnoticed (normalised or kept, never dropped):")
        for kind, n in findings.items():
            first = report.of_kind(kind)[0]
            out.print(f"{kind:>26}: {n:5d}   e.g. {first}", highlight=False, markup=False)
        if report_path:
            out.print(f"\nevery case, with file, sheet and row: {report_path}")
        else:
            out.print("\n(--report FILE lists every case with file, sheet and row)")
