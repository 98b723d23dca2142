"""Complete labels: the study file's `required:`, what a label needs before it is done.

    required:
      fault: [stage, inner_category, symptom, fix_pattern]
      how-to question: [howto_topic]

Keys are issue types (or their aliases); values are dimensions as `labels:` names them,
each one belonging to that type (`REQUIRABLE`). `inner_category` and `howto_subtopic`
are asked for only where the chosen stage or topic has them. The annotation app and
adjudication refuse a "done" label that lacks one (`issueminer.label.rounds.check_labels`);
pending and skipped labels, and imported ones, are taken as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from issueminer.taxonomy import Taxonomy

# issue type -> the dimensions a rule may name for it (the three names every study uses)
REQUIRABLE = {
    "fault": ("specific", "stage", "inner_category", "symptom", "fix_pattern"),
    "how-to question": ("howto_topic", "howto_subtopic"),
    "not relevant": (),
}
Problems = list[tuple[int, str]]  # (line, message)


def parse_required(
    required: Any,
    text: str,
    top: int,
    issue_type_of: Callable[[Any], str | None],
    issue_types: list[str],
) -> tuple[dict[str, tuple[str, ...]], Problems]:
    """The rules of a `required:` value (`top`: the key's line in `text`) and its problems;
    `issue_type_of` maps a key to its canonical issue type (None: not one)."""
    rules: dict[str, tuple[str, ...]] = {}
    problems: Problems = []
    if required is None:
        return rules, problems
    if not isinstance(required, dict):
        return rules, [(top, "required: must map an issue type to a list of label dimensions")]
    for key, dimensions in required.items():
        if key == "__line__":
            continue
        line = _entry_line(text, top, str(key))
        issue_type = issue_type_of(key)
        if issue_type not in REQUIRABLE:
            known = ", ".join(issue_types)
            problems.append((line, f"required.{key}: not an issue type (known: {known})"))
            continue
        allowed = REQUIRABLE[issue_type]
        if not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions):
            problems.append((line, f"required.{key}: must be a list of label dimensions"))
            continue
        for dimension in dimensions:
            if not allowed:
                problems.append((line, f"required.{key}: a '{issue_type}' label has no dimensions"))
            elif dimension not in allowed:
                problems.append(
                    (
                        line,
                        f"required.{key}: '{dimension}' is not a dimension of a {issue_type} "
                        f"(known: {', '.join(allowed)})",
                    )
                )
        if issue_type in rules:
            problems.append((line, f"required.{key}: '{issue_type}' is given twice"))
        rules[issue_type] = tuple(dict.fromkeys(dimensions))
    return rules, problems


def _entry_line(text: str, top: int, key: str) -> int:
    """The line of `key:` in the block that starts at line `top` (else `top`)."""
    lines = text.splitlines()
    for number in range(top, len(lines)):
        line = lines[number]
        if line.strip() and not line.startswith((" ", "\t", "#")):
            break  # the next top-level key
        if re.match(rf"\s+['\"]?{re.escape(key)}['\"]?\s*:", line):
            return number + 1
    return top


def missing_dimensions(taxonomy: Taxonomy, labels: dict[str, Any]) -> list[str]:
    """The dimensions the rules ask of this label's issue type that it leaves empty, in the
    file's order (`labels`: label fields, as `Labels.fields()` gives them)."""
    from issueminer.taxonomy import FIELD_OF

    stage, topic = labels.get("stage"), labels.get("howto_topic")
    missing = []
    for dimension in taxonomy.required.get(str(labels.get("issue_type")), ()):
        if dimension == "inner_category" and None in taxonomy.tree.get(stage or "", {None: []}):
            continue  # the stage has no inner categories (or is not on the tree)
        if dimension == "howto_subtopic" and not taxonomy.howto_tree.get(topic or ""):
            continue  # the topic has no sub-topics
        value = labels.get(FIELD_OF.get(dimension, dimension))
        if value is None or value == [] or value == "":
            missing.append(dimension)
    return missing
