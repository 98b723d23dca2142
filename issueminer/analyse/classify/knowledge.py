"""What a study already knows about each label, before any issue is labelled.

Most categories of a study have a handful of labelled issues, some none in a given
training set; the study still says something about every one of them: its name and
aliases and its definition (the study file), and a typical example (the codebook's
tables). `label_texts` gathers them per label of a target's dimension; the classifier's
keyword rules (`systems.keyword_rules`) are built from them, so a rare label has a rule
the model can lean on, and a label without training issues can still be suggested.

The codebook's tables are read generically: a header row with a name column ("Name",
"Value", "Topic", "Sub-topic"), a "Definition" column and a column whose header says
"example". A row naming a label of the dimension describes that label; a row under a
heading that names (in backticks) one label of the dimension describes that label too
(the inner categories of a stage, the sub-topics of a how-to topic), so a topic learns
from its sub-topics' examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from issueminer.study import codebook_path
from issueminer.taxonomy import Taxonomy

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
TICKED = re.compile(r"`([^`]+)`")
NAME_COLUMNS = ("name", "value", "topic", "sub-topic", "subtopic")
NO_EXAMPLE = ("", "(none)", "-", "—")


@dataclass
class LabelText:
    """A label's name and aliases (the strongest words) and what describes it."""

    named: list[str] = field(default_factory=list)
    described: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CodebookRow:
    heading: str  # the headings above the table, joined
    name: str
    definition: str
    example: str


def codebook_rows(text: str) -> list[CodebookRow]:
    """Every row of the codebook's tables that has a name column."""
    rows: list[CodebookRow] = []
    headings: dict[int, str] = {}
    columns: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        heading = HEADING.match(raw)
        if heading:
            level = len(heading.group(1))
            headings = {k: v for k, v in headings.items() if k < level} | {level: heading[2]}
            columns = None
            continue
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if columns is None:
            columns = [cell.lower() for cell in cells]
            continue
        if all(set(cell) <= set(":- ") for cell in cells):
            continue  # the separator row
        row = _row(columns, cells, " ".join(headings[k] for k in sorted(headings)))
        if row is not None:
            rows.append(row)
    return rows


def _row(columns: list[str], cells: list[str], heading: str) -> CodebookRow | None:
    def cell(test: object) -> str:
        at = next((i for i, c in enumerate(columns) if test(c)), None)  # type: ignore[operator]
        return cells[at] if at is not None and at < len(cells) else ""

    name = cell(lambda c: c in NAME_COLUMNS)
    if not name:
        return None
    ticked = TICKED.findall(name)
    example = cell(lambda c: "example" in c)
    return CodebookRow(
        heading,
        ticked[0] if ticked else name,
        cell(lambda c: "definition" in c),
        "" if example.lower() in NO_EXAMPLE else example,
    )


@lru_cache(maxsize=8)
def _read_rows(path: Path, mtime: float) -> tuple[CodebookRow, ...]:
    return tuple(codebook_rows(path.read_text(encoding="utf-8")))


def study_codebook_rows(taxonomy: Taxonomy) -> tuple[CodebookRow, ...]:
    """The rows of the study's codebook; none when the study has no codebook."""
    path = codebook_path(taxonomy) if taxonomy.path else None
    if path is None:
        return ()
    return _read_rows(path, path.stat().st_mtime)


def label_texts(taxonomy: Taxonomy, dimension: str, rich: bool = True) -> dict[str, LabelText]:
    """Per label of `dimension`: its name and aliases, its definition, and a stage's
    inner categories' names and definitions (what the keyword baseline has always read);
    with `rich` also a how-to topic's sub-topics' names and definitions and the
    codebook's examples (of the label and of the rows listed under it)."""
    texts: dict[str, LabelText] = {}
    for name, node in taxonomy.nodes.get(dimension, {}).items():
        text = texts[name] = LabelText([node.name, *node.aliases], [node.definition])
        children: list[str | None] = []
        if dimension == "stage":
            children, kind = list(taxonomy.tree.get(name, {})), "inner_category"
        elif dimension == "howto_topic" and rich:
            subtopics = taxonomy.howto_tree.get(name, [])
            children, kind = [f"{name}/{sub}" for sub in subtopics], "howto_subtopic"
        for child in children:
            child_node = taxonomy.node(kind, child) if child else None
            if child_node is not None:
                text.named.append(child_node.name)
                text.described.append(child_node.definition)
    if rich:
        for row in study_codebook_rows(taxonomy):
            label = _owner(taxonomy, dimension, row)
            if label is not None and row.example:
                texts[label].described.append(row.example)
    return texts


def _owner(taxonomy: Taxonomy, dimension: str, row: CodebookRow) -> str | None:
    """The label of `dimension` a codebook row describes: the row's own name when the
    table is about `dimension`, else the one label its heading names."""
    named = [n for n in TICKED.findall(row.heading) if taxonomy.node(dimension, n)]
    if len(named) == 1:
        return named[0]
    node = taxonomy.node(dimension, row.name)
    return node.name if node is not None and not named else None
