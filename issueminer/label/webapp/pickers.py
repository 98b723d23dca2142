"""What the label pickers know beyond the study file: each category's codebook entry
(its examples and the decision rules that name it) and how often each fix pattern went
with each symptom in the final labels.

Picker items are keyed like the keys `codebook_entries` gives: `dimension:name`, and
`howto_subtopic:topic/sub` for a sub-topic (sub-topic names repeat across topics).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sqlalchemy import select

from issueminer.store import FinalLabel, RoundItem
from issueminer.study import codebook_path
from issueminer.taxonomy import Taxonomy

# the dimensions an annotator picks from, in the order a name is looked up in
PICKED = ("issue_type", "symptom", "fix_pattern", "howto_topic", "howto_subtopic")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
TICKED = re.compile(r"`([^`]+)`")
LIST_ITEM = re.compile(r"^(?:\d+[.)]|[-*])\s+(.*)$")
BULLET_ENTRY = re.compile(r"^[-*]\s+`([^`]+)`\s*:?\s*(.*)$")
EXAMPLE = re.compile(r"\bExample:\s*(.+?)\s*$")
BOLD_TITLE = re.compile(r"^\*\*(.+?)\*\*\s*(.*)$", re.S)


def entry_key(dimension: str, name: str, parent: str | None = None) -> str:
    return f"{dimension}:{parent}/{name}" if parent else f"{dimension}:{name}"


def codebook_entries(text: str, taxonomy: Taxonomy) -> dict[str, Any]:
    """The codebook's decision rules, and per category its examples and the rules naming it.

    Reads the two layouts codebooks have: tables with a name column and a column whose
    header says "example" (the bundled codebooks), and `- `name`: definition Example: ...`
    bullets or `### `name`` headings followed by `Example: ...` (`study new`'s skeleton).
    A sub-topic's topic comes from the nearest heading that names it. Decision rules are
    the list items under a heading that says "decision rules"; a rule belongs to every
    category it names in backticks (a sub-topic only together with its topic).
    """
    examples: dict[str, list[str]] = {}
    rules: list[str] = []
    headings: dict[int, str] = {}
    columns: list[str] | None = None
    in_rules = False
    for raw in text.splitlines():
        line = raw.strip()
        heading = HEADING.match(raw)
        if heading:
            level = len(heading.group(1))
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = heading.group(2)
            in_rules = "decision rule" in heading.group(2).lower()
            columns = None
            continue
        context = " ".join(headings[k] for k in sorted(headings))
        if in_rules:
            item = LIST_ITEM.match(raw)
            if item:
                rules.append(item.group(1).strip())
            elif line and raw[:1].isspace() and rules:
                rules[-1] += " " + line
            continue
        if not line.startswith("|"):
            columns = None
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if columns is None:
                columns = [cell.lower() for cell in cells]
            elif not all(set(cell) <= set(":- ") for cell in cells):
                at = next((i for i, c in enumerate(columns) if "example" in c), None)
                if at is not None and at < len(cells):
                    _add(examples, taxonomy, _name(cells[0]), context, cells[at])
            continue
        bullet = BULLET_ENTRY.match(line)
        example = EXAMPLE.search(line)
        if bullet and example:
            _add(examples, taxonomy, bullet.group(1), context, example.group(1))
        elif example and line.startswith("Example:"):
            named = TICKED.findall(headings[max(headings)]) if headings else []
            if len(named) == 1:
                _add(examples, taxonomy, named[0], context, example.group(1))
    parsed_rules = [_rule(text) for text in rules]
    entries: dict[str, dict[str, Any]] = {}
    for dimension, name, parent in _categories(taxonomy):
        key = entry_key(dimension, name, parent)
        naming = [i for i, rule in enumerate(rules) if _names(rule, name, parent)]
        if key in examples or naming:
            entries[key] = {"examples": examples.get(key, []), "rules": naming}
    return {"entries": entries, "rules": parsed_rules}


def load_codebook(taxonomy: Taxonomy) -> dict[str, Any]:
    """`codebook_entries` of the study's codebook; none when it has no codebook."""
    path = codebook_path(taxonomy)
    if path is None:
        return {"entries": {}, "rules": []}
    return codebook_entries(path.read_text(encoding="utf-8"), taxonomy)


def _name(cell: str) -> str:
    ticked = TICKED.findall(cell)
    return ticked[0] if ticked else cell.strip()


def _add(
    examples: dict[str, list[str]], taxonomy: Taxonomy, name: str, context: str, text: str
) -> None:
    text = text.strip()
    if not text or text.upper().startswith("TODO"):
        return
    # a sub-topic belongs to the topic its heading names
    for topic in TICKED.findall(context):
        if taxonomy.node("howto_subtopic", f"{topic}/{name}"):
            examples.setdefault(entry_key("howto_subtopic", name, topic), []).append(text)
            return
    for dimension in PICKED[:-1]:
        if taxonomy.node(dimension, name):
            examples.setdefault(entry_key(dimension, name), []).append(text)
            return


def _categories(taxonomy: Taxonomy) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    for dimension in PICKED[:-1]:
        found += [(dimension, name, None) for name in taxonomy.names(dimension)]
    for topic, subs in taxonomy.howto_tree.items():
        found += [("howto_subtopic", sub, topic) for sub in subs]
    return found


def _names(rule: str, name: str, parent: str | None) -> bool:
    if parent is None:
        return f"`{name}`" in rule
    return f"`{name}`" in rule and f"`{parent}`" in rule


def _rule(text: str) -> dict[str, str]:
    bold = BOLD_TITLE.match(text)
    if bold:
        return {"title": bold.group(1).strip(), "text": bold.group(2).strip()}
    return {"title": "", "text": text}


def fix_pattern_counts(session: Any, round_name: str | None = None) -> dict[str, Any]:
    """How often each fix pattern is in a final label: overall, and per leaf symptom.

    One pass over the final labels' symptom and fix columns (the app does it once at
    start), so the fix-pattern picker can offer first what went with the chosen symptom.
    The final labels of `round_name`'s own issues are left out: they come from its members'
    labels, and the order must not hint at another member's choices.
    """
    overall: Counter[str] = Counter()
    by_symptom: dict[str, Counter[str]] = {}
    query = select(FinalLabel.leaf_symptom, FinalLabel.fix_patterns)
    if round_name is not None:
        in_round = select(RoundItem.issue_uid).where(RoundItem.round == round_name)
        query = query.where(FinalLabel.issue_uid.not_in(in_round))
    rows = session.execute(query)
    for leaf, fixes in rows:
        for fix in dict.fromkeys(fixes or []):  # a pattern listed twice counts once
            overall[fix] += 1
            if leaf:
                by_symptom.setdefault(leaf, Counter())[fix] += 1
    return {
        "overall": _by_count(overall),
        "by_symptom": {leaf: _by_count(c) for leaf, c in sorted(by_symptom.items())},
    }


def _by_count(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first; ties by name, whatever order the database returned rows in."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
