"""The `issueminer` command: areas composed from their own Typer apps."""

from __future__ import annotations

import typer

from issueminer import __version__
from issueminer.cli import classify as classify_cli
from issueminer.cli import crawl, db, imports, issues, label, stats, study, taxonomy
from issueminer.cli import estimate as estimate_cli
from issueminer.cli import report as report_cli

app = typer.Typer(
    name="issueminer",
    help="Mine, label and report developers' issues from Stack Overflow and GitHub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(study.app, name="study")
app.add_typer(taxonomy.app, name="taxonomy")
app.add_typer(imports.app, name="import")
app.add_typer(issues.app, name="issues")
app.add_typer(crawl.app, name="crawl")
app.command("stats")(stats.stats)
app.command("agree")(stats.agree)
app.command("label")(label.label)
app.add_typer(label.round_app, name="round")
app.command("report")(report_cli.report)
app.command("export")(report_cli.export)
app.command("diff-study")(report_cli.diff_study)
app.command("train")(classify_cli.train)
app.command("evaluate")(classify_cli.evaluate)
app.command("classify")(classify_cli.classify)
app.command("estimate")(estimate_cli.estimate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"issueminer {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Mine, label and report developers' issues from Stack Overflow and GitHub.

    Example: issueminer import replication ../shared/tosem23 && issueminer stats
    """
