"""`issueminer issues`: browse what is stored."""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    chosen_taxonomy,
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


class _StoreListing:
    """`issues list` through the store: any database, and the first use of a SQLite file
    (the store remembers the study the database is for)."""

    def __init__(self, db: str | None, study: str | None) -> None:
        self.store = open_store(db)
        self.taxonomy = study_taxonomy(self.store, study)

    def sources(self) -> list[str]:
        from sqlalchemy import select

        from issueminer.store import Issue

        with self.store.session() as session:
            return list(session.scalars(select(Issue.source).distinct()))

    def issues(self, **filters: Any) -> list[dict[str, Any]]:
        from issueminer.analyse.issue_lookup import list_issues

        with self.store.session() as session:
            return list_issues(session, **filters)

    def close(self) -> None:
        self.store.close()


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
    from issueminer.analyse.issue_listing import SqliteListing

    # a SQLite file at the current schema is read with sqlite3 alone (no SQLAlchemy to
    # import); anything else goes through the store
    quick = SqliteListing.open(db)
    listing = quick or _StoreListing(db, study)
    try:
        taxonomy = listing.taxonomy if quick is None else chosen_taxonomy(study, quick.remembered)
        sources = sorted(listing.sources())
        if source is not None and source not in sources:
            fail(f"--source {source!r}: the stored issues come from {', '.join(sources) or 'none'}")
        rows = listing.issues(
            source=source,
            issue_type=_category(taxonomy, "issue_type", issue_type, "--type"),
            symptom=_category(taxonomy, "symptom", symptom, "--symptom"),
            labelled_only=labelled,
            limit=limit,
        )
    finally:
        listing.close()
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
    raw: Annotated[
        bool, typer.Option("--raw", help="The stored bodies as they are (HTML, Markdown).")
    ] = False,
    fmt: FormatOption = Format.md,
) -> None:
    """Show one issue: its body and every reply, its final labels and every annotation.

    Bodies are shown for reading (code blocks and logs verbatim, Stack Overflow's HTML as
    Markdown); --raw shows them as stored. The JSON holds both.

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
    for section in (_show_heading, _show_body, _show_replies, _show_labels, _show_history):
        section(data, raw)


# `issues show` prints these sections in order; each takes describe_issue's dict.
def _show_heading(data: dict, raw: bool) -> None:
    out.print(data["title"] or "(no title stored)", style="bold")
    out.print(
        f"{data['url'] or '(label only)'}  uid {data['uid']}  source {data['source']}"
        f"  framework {data['framework']}  state {data['state'] or '-'}"
    )


def _show_body(data: dict, raw: bool) -> None:
    body = data["body"] if raw else data["rendered"]
    out.print()
    out.print(body if body and body.strip() else "(no body stored)", emoji=False)


def _show_replies(data: dict, raw: bool) -> None:
    for reply in data["replies"]:
        notes = [
            f"by {reply['author']}" if reply["author"] else "",
            "accepted" if reply["accepted"] else "",
            f"score {reply['score']}" if reply["score"] is not None else "",
            str(reply["created_at"])[:16] if reply["created_at"] else "",
        ]
        out.print(f"\n--- {reply['kind']} " + ", ".join(n for n in notes if n), style="bold")
        body = reply["body"] if raw else reply["rendered"]
        out.print(body or "(empty)", emoji=False)


def _show_history(data: dict, raw: bool) -> None:
    from issueminer.collect.payload_history import history_lines

    if data["history"]:
        out.print(f"\nchanges from the source ({len(data['history'])})", style="bold")
        lines = "\n".join(history_lines(data["history"]))
        out.print(lines, emoji=False, highlight=False, markup=False)


def _show_labels(data: dict, raw: bool) -> None:
    out.print(f"\nfinal: {_label_text(data['final_labels']) or '-'}")
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
