"""`issueminer taxonomy`: look at and check a study's taxonomy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    err,
    fail,
    handled,
    open_store,
    out,
    print_json,
    report_validation,
)
from issueminer.cli.common import study_taxonomy as load_study
from issueminer.taxonomy import FIELD_OF, validate_taxonomy_file

app = typer.Typer(help="The study's taxonomy.", no_args_is_help=True)


@app.command("show")
def show(study: StudyOption = None, fmt: FormatOption = Format.md) -> None:
    """Print the taxonomy tree: issue types, fault stages and symptoms, fix patterns, topics.

    Example: issueminer taxonomy show --format json
    """
    taxonomy = load_study(None, study)
    tree = taxonomy.as_tree()
    if fmt == Format.json:
        print_json(tree)
        return
    root = Tree(f"{tree['title']} ({tree['study']})")
    types = root.add("issue types")
    for node in tree["issue_types"]:
        types.add(f"{node['name']} - {node['definition']}")
    label = taxonomy.label
    faults = root.add(
        f"fault {taxonomy.plural('symptom')} ({label('stage')} > {label('inner_category')} > leaf)"
    )
    for stage in tree["stages"]:
        branch = faults.add(f"{stage['name']}")
        for inner in stage.get("inner_categories", []):
            sub = branch.add(f"{inner['name']}")
            for leaf in inner["leaves"]:
                sub.add(leaf["name"])
        for leaf in stage.get("leaves", []):
            branch.add(leaf["name"])
    fixes = root.add(f"{taxonomy.plural('fix_pattern')} ({len(tree['fix_patterns'])})")
    for node in tree["fix_patterns"]:
        fixes.add(node["name"])
    topics = root.add(taxonomy.plural("howto_topic"))
    for topic in tree["howto_topics"]:
        branch = topics.add(f"{topic['name']}")
        for sub in topic["subtopics"]:
            branch.add(sub["name"])
    out.print(root)


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Taxonomy YAML file.")],
    fmt: FormatOption = Format.md,
) -> None:
    """Check a taxonomy file; every problem is printed as file:line: what is wrong.

    Example: issueminer taxonomy validate taxonomy/distributed-training.yaml
    """
    report_validation(path, validate_taxonomy_file(path), fmt)


@app.command("merge")
def merge(
    old: Annotated[str, typer.Argument(help="The category name to retire.")],
    new: Annotated[str, typer.Argument(help="The name to use instead.")],
    dimension: Annotated[
        str | None,
        typer.Option(
            "--dimension", help=f"One of {', '.join(FIELD_OF)} [default: where OLD is used]."
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who decided the merge (kept in the history).")
    ] = None,
    db: DbOption = None,
    study: StudyOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Merge category OLD into NEW in every current annotation and final label.

    Annotations get a new row (the old one stays as history); final labels are edited
    and their previous values kept in the label_change table. Typical after open coding.

    Example: issueminer taxonomy merge "cold-start latency" "cold start"
    """
    from issueminer.label.taxonomy_merge import MergeError, merge_categories

    store = open_store(db)
    taxonomy = load_study(store, study)
    try:
        with handled(), store.session() as session:
            result = merge_categories(session, taxonomy, old, new, dimension, by)
    except MergeError as exc:
        fail(str(exc))
    if fmt == Format.json:
        print_json(result.as_dict())
        return
    out.print(
        f"merged {result.dimension} '{result.old}' into '{result.new}': "
        f"{result.annotations} annotation(s) and {result.final_labels} final label(s) "
        f"of {len(result.issues)} issue(s) rewritten (change batch {result.batch})"
    )
    for note in result.notes:
        err.print(f"note: {note}")
