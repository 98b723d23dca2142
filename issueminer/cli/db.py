"""`issueminer db`: schema migrations and backups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    fail,
    handled,
    out,
    print_json,
    require_database,
)

app = typer.Typer(help="Database schema and backups.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(db: DbOption = None, fmt: FormatOption = Format.md) -> None:
    """Create or migrate the database schema to the newest revision.

    Every other command does this by itself on a fresh database.

    Example: issueminer db upgrade --db postgresql://localhost/study
    """
    from issueminer.store.db import current_revision, make_engine, upgrade

    with handled():
        engine = make_engine(db)
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    shown = engine.url.render_as_string(hide_password=True)
    if fmt == Format.json:
        print_json({"database": shown, "before": before, "after": after})
        return
    out.print(f"{shown}: {before or 'empty'} -> {after}", highlight=False)


@app.command("status")
def status_command(db: DbOption = None, fmt: FormatOption = Format.md) -> None:
    """Show the schema revision of the database and the newest one available.

    Example: issueminer db status
    """
    from issueminer.store.db import current_revision, head_revision, make_engine

    require_database(db)
    with handled():
        engine = make_engine(db)
        current = current_revision(engine)
    if fmt == Format.json:
        newest = head_revision()
        print_json({"current": current, "newest": newest, "up_to_date": current == newest})
        return
    out.print(f"current: {current or 'empty'}  newest: {head_revision()}")


@app.command("backup")
def backup_command(
    file: Annotated[Path, typer.Argument(help="The copy to write (a SQLite file).")],
    force: Annotated[bool, typer.Option(help="Replace FILE if it exists.")] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Copy the database to FILE, consistently, even while `issueminer label` runs.

    A SQLite database is copied with SQLite's online backup, so labels that are still in
    the `-wal` file are in the copy; copying the .db file alone can lose them. For
    PostgreSQL it prints the pg_dump command to run instead, and exits with status 1.

    Example: issueminer db backup backups/study-2026-12-07.db
    """
    from issueminer.store.backup import BackupError, backup_database

    require_database(db)
    try:
        made = backup_database(db, file, force=force)
    except BackupError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror or exc}")
    rows = sum(made.tables.values())
    if fmt == Format.json:
        print_json({"path": str(made.path), "size": made.size, "rows": rows, "tables": made.tables})
        return
    out.print(
        f"backed up to {made.path}: {made.size:,} bytes, {len(made.tables)} tables, "
        f"{rows:,} rows (checked with SQLite's integrity check)",
        highlight=False,
    )
