"""`issueminer issues`: browse what is stored."""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    fail,
    open_store,
    out,
    print_json,
    study_taxonomy,
)

if TYPE_CHECKING:
    from issueminer.taxonomy import Taxonomy

app = typer.Typer(help="Browse stored issues.", no_args_is_help=True)


def _category(taxonomy: Taxonomy, dimension: str, raw: str | None, option: str) -> str | None:
    """The study's name for a category asked for by an option (aliases and case allowed);
    a name the study does not know stops the command, where it would list no issue."""
    if raw is None:
        return None
    resolution = taxonomy.resolve(dimension, raw)
    if resolution.how == "unknown":
        kinds, known = taxonomy.plural(dimension).replace("_", " "), taxonomy.names(dimension)
        fail(f"{option} {raw!r}: the study's {kinds} are {', '.join(known)}")
    return resolution.value or raw  # a proposed name (open coding) as it was typed


def _label_text(labels: list[dict]) -> str:
    parts = []
    for label in labels:
        if label["issue_type"] == "fault":
            path = " / ".join(
                p for p in (label["stage"], label["inner_category"], label["leaf_symptom"]) if p
            )
            fixes = ", ".join(label["fix_patterns"])
            parts.append(f"fault: {path}" + (f" [fix: {fixes}]" if fixes else ""))
        elif label["issue_type"]:
            topic = " / ".join(p for p in (label["howto_topic"], label["howto_subtopic"]) if p)
            parts.append(f"{label['issue_type']}: {topic}" if topic else label["issue_type"])
    return "; ".join(parts)


@app.command("list")
def list_command(
    db: DbOption = None,
    source: Annotated[str | None, typer.Option(help="stackoverflow, github, unknown …")] = None,
    issue_type: Annotated[
        str | None, typer.Option("--type", help="fault, how-to question …")
    ] = None,
    symptom: Annotated[str | None, typer.Option(help="Leaf symptom, e.g. 'out of memory'.")] = None,
    labelled: Annotated[bool, typer.Option(help="Only issues with a final label.")] = False,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many issues.")] = None,
    study: StudyOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """List stored issues with uid, url, source, title and final labels.

    Example: issueminer issues list --type fault --symptom "out of memory" --format json
    """
    from sqlalchemy import select

    from issueminer.analyse.issue_lookup import list_issues
    from issueminer.store import Issue

    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    with store.session() as session:
        sources = sorted(session.scalars(select(Issue.source).distinct()))
        if source is not None and source not in sources:
            fail(f"--source {source!r}: the stored issues come from {', '.join(sources) or 'none'}")
        rows = list_issues(
            session,
            source=source,
            issue_type=_category(taxonomy, "issue_type", issue_type, "--type"),
            symptom=_category(taxonomy, "symptom", symptom, "--symptom"),
            labelled_only=labelled,
            limit=limit,
        )
    if fmt == Format.json:
        print_json(rows)
        return
    if fmt == Format.csv:
        # titles come from the internet: a spreadsheet must not run one as a formula
        from issueminer.collect.sources.files import csv_cell

        writer = csv.writer(sys.stdout)
        writer.writerow(["uid", "url", "source", "framework", "title", "final_labels"])
        for row in rows:
            writer.writerow(
                [
                    row["uid"],
                    row["url"],
                    row["source"],
                    row["framework"],
                    csv_cell(row["title"] or ""),
                    csv_cell(_label_text(row["final_labels"])),
                ]
            )
        return
    table = Table("uid", "url", "source", "title", "final labels", title=f"{len(rows)} issues")
    for row in rows:
        table.add_row(
            row["uid"][:10],
            row["url"] or "(label only)",
            row["source"],
            (row["title"] or "")[:50],
            _label_text(row["final_labels"]),
        )
    out.print(table)


@app.command("show")
def show_command(
    key: Annotated[str, typer.Argument(help="The issue's URL or uid.")],
    db: DbOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Show one issue with its final labels and every annotation.

    Example: issueminer issues show https://github.com/OWNER/NAME/issues/100
    """
    from issueminer.analyse.issue_lookup import describe_issue, find_issue

    store = open_store(db)
    with store.session() as session:
        issue = find_issue(session, key)
        if issue is None:
            fail(f"no stored issue has the URL or uid '{key}'")
        data = describe_issue(session, issue)
    if fmt == Format.json:
        print_json(data)
        return
    out.print(data["title"] or "(no title stored)", style="bold")
    out.print(
        f"{data['url'] or '(label only)'}  uid {data['uid']}  source {data['source']}"
        f"  framework {data['framework']}",
        highlight=False,
    )
    if data["text"]:
        out.print(data["text"][:1500], markup=False, highlight=False)
    out.print(f"\nfinal: {_label_text(data['final_labels']) or '-'}", markup=False)
    table = Table(
        "round",
        "annotator",
        "role",
        "status",
        "labels",
        "memo",
        title=f"{len(data['annotations'])} annotations",
    )
    for a in data["annotations"]:
        table.add_row(
            a["round"] or "",
            a["annotator"],
            a["role"],
            a["status"],
            _label_text([a]),
            a["memo"] or "",
        )
    out.print(table)
