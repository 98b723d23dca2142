"""The `issueminer` command: areas composed from their own Typer apps."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import typer

from issueminer import __version__
from issueminer.cli import classify as classify_cli
from issueminer.cli import crawl, db, imports, issues, label, stats, study, taxonomy
from issueminer.cli import estimate as estimate_cli
from issueminer.cli import report as report_cli

HELP = "Mine, label and report developers' issues from Stack Overflow and GitHub."

# every top-level name: a group of commands (a Typer) or one command, in --help's order
AREAS: dict[str, typer.Typer | Callable[..., None]] = {
    "db": db.app,
    "study": study.app,
    "taxonomy": taxonomy.app,
    "import": imports.app,
    "issues": issues.app,
    "crawl": crawl.app,
    "stats": stats.stats,
    "agree": stats.agree,
    "label": label.label,
    "round": label.round_app,
    "report": report_cli.report,
    "export": report_cli.export,
    "diff-study": report_cli.diff_study,
    "train": classify_cli.train,
    "evaluate": classify_cli.evaluate,
    "classify": classify_cli.classify,
    "estimate": estimate_cli.estimate,
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"issueminer {__version__}")
        raise typer.Exit()


def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Mine, label and report developers' issues from Stack Overflow and GitHub.

    Example: issueminer import replication ../shared/tosem23 && issueminer stats
    """


def build(names: Iterable[str] | None = None) -> typer.Typer:
    """The command with every area, or with only the named ones."""
    wanted = set(AREAS if names is None else names)
    built = typer.Typer(
        name="issueminer", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False
    )
    for name, part in AREAS.items():
        if name not in wanted:
            continue
        if isinstance(part, typer.Typer):
            built.add_typer(part, name=name)
        else:
            built.command(name)(part)
    built.callback()(main)
    return built


app = build()


def run() -> None:
    """The `issueminer` script. Before it parses anything, Typer turns the signature of every
    command it holds into options (about 35 ms for all of them here); a command line that
    names an area gets a command holding that area alone, which answers the same (the
    root's options and the area's commands; tests/test_startup.py compares them)."""
    area = sys.argv[1] if len(sys.argv) > 1 else ""
    (build([area]) if area in AREAS else app)()
