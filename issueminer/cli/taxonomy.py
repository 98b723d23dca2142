"""`issueminer taxonomy`: look at and check a study's taxonomy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from issueminer.cli.common import Format, FormatOption, StudyOption, err, fail, out, print_json
from issueminer.cli.common import study_taxonomy as load_study
from issueminer.taxonomy import validate_taxonomy_file

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
    faults = root.add("fault symptoms (stage > inner category > leaf)")
    for stage in tree["stages"]:
        branch = faults.add(f"{stage['name']}")
        for inner in stage.get("inner_categories", []):
            sub = branch.add(f"{inner['name']}")
            for leaf in inner["leaves"]:
                sub.add(leaf["name"])
        for leaf in stage.get("leaves", []):
            branch.add(leaf["name"])
    fixes = root.add(f"fix patterns ({len(tree['fix_patterns'])})")
    for node in tree["fix_patterns"]:
        fixes.add(node["name"])
    topics = root.add("how-to topics")
    for topic in tree["howto_topics"]:
        branch = topics.add(f"{topic['name']}")
        for sub in topic["subtopics"]:
            branch.add(sub["name"])
    out.print(root)


@app.command("validate")
def validate(path: Annotated[Path, typer.Argument(help="Taxonomy YAML file.")]) -> None:
    """Check a taxonomy file; every problem is printed as file:line: what is wrong.

    Example: issueminer taxonomy validate taxonomy/distributed-training.yaml
    """
    problems = validate_taxonomy_file(path)
    if problems:
        fail(f"{path}: {len(problems)} problem(s)", problems)
    err.print(f"{path}: valid")
