"""`issueminer db`: schema migrations."""

from __future__ import annotations

import typer

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    handled,
    out,
    print_json,
    require_database,
)

app = typer.Typer(help="Database schema.", no_args_is_help=True)


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
