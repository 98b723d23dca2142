"""Studies: a study file (taxonomy, selection, label names, classifier signals) and a codebook.

A study lives only in its files. `issueminer study new` writes both from a commented
template (or from an existing study), `list_studies` finds every study on the search
path (`taxonomy.study_dirs`), and `check_study` reports a file's problems with their line
and whether the codebook names every category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from issueminer.taxonomy import (
    LOCAL_STUDY_DIR,
    STUDY_NAME,
    STUDY_SUFFIXES,
    Taxonomy,
    load_taxonomy,
    study_dirs,
    taxonomy_path,
    validate_taxonomy_file,
)

CODEBOOK_DIR = "labeling"  # bundled studies keep codebooks in ../labeling/<study>.md


class StudyError(ValueError):
    """A study that cannot be created or found; the message says what and where."""


@dataclass
class StudySummary:
    name: str
    title: str
    path: Path
    status: str | None = None
    open_coding: bool | None = None
    codebook: Path | None = None
    problems: list[str] = field(default_factory=list)
    shadowed: list[Path] = field(default_factory=list)  # same name, later on the search path

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "path": str(self.path),
            "status": self.status,
            "open_coding": self.open_coding,
            "codebook": str(self.codebook) if self.codebook else None,
            "valid": not self.problems,
            "problems": self.problems,
            "shadowed": [str(p) for p in self.shadowed],
        }


def codebook_path(taxonomy: Taxonomy) -> Path | None:
    """The study's codebook: its `codebook:` key, else labeling/<study>.md, else <file>.md."""
    candidates = [taxonomy.codebook] if taxonomy.codebook else []
    candidates += [
        taxonomy.path.resolve().parent.parent / CODEBOOK_DIR / f"{taxonomy.study}.md",
        taxonomy.path.with_suffix(".md"),
    ]
    return next((p for p in candidates if p is not None and p.is_file()), None)


def list_studies() -> list[StudySummary]:
    """Every study file on the search path; a name found twice is the first one's."""
    found: dict[str, StudySummary] = {}
    for directory in study_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.iterdir() if p.suffix in STUDY_SUFFIXES):
            if path.stem in found:
                found[path.stem].shadowed.append(path)
                continue
            found[path.stem] = summarise(path)
    return sorted(found.values(), key=lambda s: s.name)


def summarise(path: Path) -> StudySummary:
    problems = validate_taxonomy_file(path)
    if problems:
        return StudySummary(path.stem, path.stem, path, problems=problems)
    taxonomy = load_taxonomy(path)
    return StudySummary(
        taxonomy.study,
        taxonomy.title,
        path,
        taxonomy.status,
        taxonomy.open_coding,
        codebook_path(taxonomy),
    )


def describe(taxonomy: Taxonomy) -> dict[str, Any]:
    """What `study show` prints: settings, label names, category counts, selection."""
    selection = taxonomy.selection
    stackoverflow = selection.get("stackoverflow") or {}
    github = selection.get("github") or {}
    codebook = codebook_path(taxonomy)
    return {
        "study": taxonomy.study,
        "title": taxonomy.title,
        "file": str(taxonomy.path),
        "codebook": str(codebook) if codebook else None,
        "status": taxonomy.status,
        "open_coding": taxonomy.open_coding,
        "labels": dict(taxonomy.labels),
        "categories": {
            "issue_types": len(taxonomy.names("issue_type")),
            "stages": len(taxonomy.tree),
            "inner_categories": len(taxonomy.names("inner_category")),
            "symptoms": len(taxonomy.names("symptom")),
            "fix_patterns": len(taxonomy.names("fix_pattern")),
            "howto_topics": len(taxonomy.names("howto_topic")),
            "howto_subtopics": len(taxonomy.names("howto_subtopic")),
        },
        "selection": {
            "keywords": list(selection.get("keywords") or []),
            "phrases": list(selection.get("phrases") or []),
            "stackoverflow_tags_alone": list(stackoverflow.get("tags_alone") or []),
            "stackoverflow_tags_with_keyword": list(stackoverflow.get("tags_with_keyword") or []),
            "github_repositories": [
                str(entry.get("repo")) for entry in github.get("repositories") or []
            ],
        },
        "classifier_signals": sorted(taxonomy.signals),
        "classifier_thread": _thread_or_problem(taxonomy),
    }


def _thread_or_problem(taxonomy: Taxonomy) -> dict[str, Any]:
    try:
        return thread_reading(taxonomy).as_dict()
    except StudyError as exc:
        return {"problem": str(exc)}


def check_study(path: Path | str) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a study file: problems make it unusable, warnings do not."""
    path = Path(path)
    problems = validate_taxonomy_file(path)
    if problems:
        return problems, []
    taxonomy = load_taxonomy(path)
    try:
        thread_reading(taxonomy)
    except StudyError as exc:
        return [str(exc)], []
    codebook = codebook_path(taxonomy)
    if codebook is None:
        where = taxonomy.codebook or f"{CODEBOOK_DIR}/{taxonomy.study}.md"
        return [], [f"{path}: no codebook found (looked for {where})"]
    text = codebook.read_text(encoding="utf-8")
    missing = [name for name in category_names(taxonomy) if f"`{name}`" not in text]
    return [], [f"{codebook}: does not name `{name}`" for name in missing]


def category_names(taxonomy: Taxonomy) -> list[str]:
    """Every label an annotator can give, in the file's order (for codebook checks)."""
    names = [
        *taxonomy.names("issue_type"),
        *taxonomy.tree,
        *taxonomy.names("inner_category"),
        *taxonomy.names("symptom"),
        *taxonomy.names("fix_pattern"),
        *taxonomy.names("howto_topic"),
    ]
    names += [key.split("/", 1)[1] for key in taxonomy.names("howto_subtopic")]
    return list(dict.fromkeys(names))


# ---- study new --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewStudy:
    study_file: Path
    codebook: Path


def new_study(
    name: str, directory: Path | str | None = None, source: str | None = None
) -> NewStudy:
    """Write <directory>/<name>.yaml and <name>.md; never overwrites an existing file."""
    if not STUDY_NAME.fullmatch(name):
        raise StudyError(f"study name '{name}': use lower-case letters, digits and '-'")
    directory = Path(directory) if directory else Path.cwd() / LOCAL_STUDY_DIR
    study_file, codebook = directory / f"{name}.yaml", directory / f"{name}.md"
    for path in (study_file, codebook):
        if path.exists():
            raise StudyError(f"{path} already exists; choose another name or folder")
    if source is not None:
        origin = taxonomy_path(source)
        if not origin.is_file():
            raise StudyError(f"no study '{source}' (looked for {origin})")
        problems = validate_taxonomy_file(origin)
        if problems:  # said of the file to mend, not of the copy that would be made
            raise StudyError(f"the study to start from is not valid: {'; '.join(problems)}")
        text = _derived_study_text(origin.read_text(encoding="utf-8"), name, origin)
    else:
        text = STUDY_TEMPLATE.format(name=name, date=f"{datetime.now(UTC):%Y-%m-%d}")
    directory.mkdir(parents=True, exist_ok=True)
    study_file.write_text(text, encoding="utf-8")
    problems = validate_taxonomy_file(study_file)
    if problems:  # the template or the source is broken: leave nothing half-made behind
        study_file.unlink()
        raise StudyError(f"the new study file would not be valid: {'; '.join(problems)}")
    codebook.write_text(codebook_skeleton(load_taxonomy(study_file)), encoding="utf-8")
    return NewStudy(study_file, codebook)


def _derived_study_text(text: str, name: str, origin: Path) -> str:
    """An existing study file under a new name, its comments and categories kept."""
    header = f"# Study file `{name}`, started from {origin.name} by `issueminer study new`.\n"
    text = _set_key(text, "study", name)
    text = _set_key(text, "codebook", f"{name}.md")
    return header + text


def _set_key(text: str, key: str, value: str) -> str:
    pattern = re.compile(rf"^{key}\s*:.*$", re.M)
    if pattern.search(text):
        return pattern.sub(f"{key}: {value}", text, count=1)
    return re.sub(r"^(study\s*:.*)$", rf"\1\n{key}: {value}", text, count=1, flags=re.M)


def codebook_skeleton(taxonomy: Taxonomy) -> str:
    """A codebook to fill in: how to label, open coding, and every category's definition."""
    label = taxonomy.label
    lines = [
        f"# Codebook: {taxonomy.title} (`{taxonomy.study}`)",
        "",
        "> Skeleton written by `issueminer study new`. Replace each TODO with your own words:",
        "> an invented example for every category and the rules your team agreed on. The",
        f"> names and one-line definitions live in `{taxonomy.path.name}`; if this file and",
        "> the study file disagree, the study file wins.",
        "",
        "## Purpose",
        "",
        "TODO: what the study asks, which platforms or projects it covers, what counts as",
        "relevant.",
        "",
        "## How to label an issue",
        "",
        "1. **Relevant?** If the issue is off-topic or too empty to judge, label it",
        "   `not relevant` and stop.",
        "2. **Fault or how-to question?** `fault` when something went wrong and the asker",
        "   wants it to work; `how-to question` when nothing concrete is broken.",
        f"3. **For a fault:** answer {label('specific')} yes or no ({label('specific_question')}),",
        f"   choose the {label('stage')} where the problem shows and the {label('symptom')},",
        f"   then every {label('fix_pattern')} the thread shows worked.",
        f"4. **For a how-to question:** choose the {label('howto_topic')} and, where it has",
        f"   them, a {label('howto_subtopic')}.",
        "",
        "## Open coding",
        "",
        "While the study file says `open_coding: true`, a category that is not listed can be",
        "proposed: type its name in a picker's filter box and choose *propose*. Write the",
        f"path as `{label('stage')} › {label('symptom')}` when you know where it belongs.",
        "Proposals are counted in `issueminer stats` like any category. When the team agrees",
        "that two names mean the same thing, `issueminer taxonomy merge OLD NEW` rewrites",
        "every label that uses OLD (the earlier values stay in the history); add the",
        "settled categories to the study file with a definition and set",
        "`open_coding: false` once the taxonomy is stable.",
        "",
        "## Issue types",
        "",
    ]
    lines += _entries(taxonomy, "issue_type", taxonomy.names("issue_type"))
    plural = taxonomy.plural
    lines += [f"## {plural('stage').capitalize()} and {plural('symptom')}", ""]
    if not taxonomy.tree:
        lines += ["None yet: they come out of open coding.", ""]
    for stage, inners in taxonomy.tree.items():
        lines += [f"### `{stage}`", "", taxonomy.definition("stage", stage), ""]
        for inner, leaves in inners.items():
            if inner is not None:
                lines += [
                    f"#### `{inner}`",
                    "",
                    taxonomy.definition("inner_category", inner),
                    "",
                ]
            lines += _entries(taxonomy, "symptom", leaves, bullet=True)
    on_tree = {leaf for _, _, leaf in taxonomy.leaf_paths()}
    elsewhere = [name for name in taxonomy.names("symptom") if name not in on_tree]
    if elsewhere:
        lines += [f"### {plural('symptom').capitalize()} on no path of the tree", ""]
        lines += _entries(taxonomy, "symptom", elsewhere, bullet=True)
    lines += [f"## {plural('fix_pattern').capitalize()}", ""]
    names = taxonomy.names("fix_pattern")
    lines += _entries(taxonomy, "fix_pattern", names, bullet=True) or ["None yet.", ""]
    lines += [f"## {plural('howto_topic').capitalize()}", ""]
    if not taxonomy.howto_tree:
        lines += ["None yet.", ""]
    for topic, subtopics in taxonomy.howto_tree.items():
        lines += [f"### `{topic}`", "", taxonomy.definition("howto_topic", topic), ""]
        for sub in subtopics:
            meaning = taxonomy.definition("howto_subtopic", f"{topic}/{sub}")
            lines.append(f"- `{sub}`: {meaning} Example: TODO.")
        lines += [""] if subtopics else []
    lines += ["## Decision rules", "", "TODO: how the team decides borderline cases.", ""]
    return "\n".join(lines)


def _entries(
    taxonomy: Taxonomy, dimension: str, names: list[str], bullet: bool = False
) -> list[str]:
    lines: list[str] = []
    for name in names:
        definition = taxonomy.definition(dimension, name)
        if bullet:
            lines.append(f"- `{name}`: {definition} Example: TODO.")
        else:
            lines += [f"### `{name}`", "", definition, "", "Example: TODO.", ""]
    return lines + ([""] if bullet and names else [])


STUDY_TEMPLATE = """\
# Study file `{name}`, created by `issueminer study new` on {date}.
# This file is the whole study: which issues to collect (selection), which labels
# annotators may give (the taxonomy), what the app and the tables call them (labels) and
# the classifier's study-specific error signals. No code knows anything else about it.
# Check it with `issueminer study validate {name}.yaml`.

# study: the name commands take with --study (lower-case letters, digits, '-'); a
# database remembers the study it was created for.
study: {name}
# title: how tables and reports name the study.
title: {name}
# version: raise it when a category changes meaning, so exports say which one they follow.
version: 1
# status: draft while categories are still being found; settled once the taxonomy is stable.
status: draft
# open_coding: true lets annotators propose categories that are not listed below (type a
# new name in a picker of the app and choose "propose"). Merge names that mean the same
# with `issueminer taxonomy merge OLD NEW`. false: only listed categories are accepted.
open_coding: true
# codebook: the annotators' guide (Markdown), relative to this file.
codebook: {name}.md

# labels: what the app, the tables and the report call each label dimension.
labels:
  specific: topic-specific            # the yes/no flag of a fault
  specific_question: Does the root cause lie in what the study is about, not in ordinary code?
  stage: stage                        # the top level of the fault tree
  inner_category: inner category      # an optional middle level under a stage
  symptom: symptom                    # the leaf of the fault tree
  fix_pattern: fix pattern            # how a fault was fixed (several per issue)
  howto_topic: how-to topic           # what a how-to question asks about
  howto_subtopic: sub-topic

# issue_types: the first decision for every issue. The app's keys 1/2/3 and the tables
# use these three names; adapt the definitions to the study.
issue_types:
  - name: fault
    definition: A concrete failure or unexpected behaviour that the asker wants repaired.
  - name: how-to question
    definition: The asker wants to know how to do or understand something; nothing is broken.
  - name: not relevant
    definition: The issue is outside the study's subject or too empty to judge.

# symptoms: the leaf categories of faults, each
#   - {{name: ..., definition: one line with an e.g., aliases: [other spellings]}}
# Matching ignores case, repeated spaces, "and" vs "&" and a plural "s"; aliases cover
# the rest. Empty until open coding finds some.
symptoms: []
# stages: the top level of the fault tree. Each lists its leaves (names from symptoms),
# or inner_categories that each list leaves:
#   - name: runtime
#     definition: The problem shows while the code runs.
#     leaves: [timeout]
stages: []
# fix_patterns: how faults were fixed, each {{name, definition, aliases}}.
fix_patterns: []
# fix_pattern_combinations: a cell that names several fix patterns at once -> the list.
fix_pattern_combinations: {{}}
# howto_topics: what how-to questions ask about, each {{name, definition, subtopics: [...]}}.
howto_topics: []
# required: what a label needs before the app saves it as done, per issue type (pending
# always saves); names are the dimensions of labels: above. Add fix_pattern to a fault's
# list when every fault the study keeps has a known fix.
required:
  fault: [stage, symptom]
  how-to question: [howto_topic]
# placeholders: values that mean "not decided yet" in imported spreadsheets.
placeholders: [PENDING]

# selection: which issues `crawl stackoverflow`, `crawl github` and `crawl so-dump` keep.
selection:
  # matched as whole words (phrases: word sequences), case-insensitively, in the title and
  # the prose of the body, never in code blocks or links
  keywords: []
  phrases: []
  stackoverflow:
    site: stackoverflow
    # keep only questions with an accepted answer (the fix is known)
    require_accepted_answer: true
    # accepting an answer does not move a question's last activity, so a question lacking
    # only that waits and is asked for again when its last read is this many days old
    # (crawl stackoverflow --recheck-after), until this many days after it was asked
    recheck_after_days: 7
    give_up_after_days: 180
    # a question with one of these tags is kept whatever its text says
    tags_alone: []
    # a question with one of these tags is kept when its text has a keyword or phrase
    tags_with_keyword: []
  github:
    # closed issues only (their outcome is known)
    state: closed
    # one entry per repository, e.g.
    #   - {{repo: owner/name, framework: short-name, group: study, keyword_required: true,
    #      exclude_labels: [enhancement, documentation]}}
    # framework: what tables call the project; group: crawl a subset with --group;
    # keyword_required: false keeps every issue; include_labels / exclude_labels:
    # GitHub labels an issue must have / must not have.
    repositories: []

# classifier: error signals of this study for `issueminer train`; each is a feature when
# its pattern (a regular expression over lower-cased text) matches. anchors: lower-case
# substrings that every match contains (a cheap test before the regex), e.g.
#   quota_exceeded: {{anchors: [quota], pattern: 'quota (?:exceeded|exhausted)'}}
classifier:
  signals: {{}}
  # thread: how a thread is read. weights scale each feature field (words, title,
  # signals, template, replies, resolution); a comment with a resolving word holds the
  # issue's resolution, as the accepted answer does; last_comments: N counts the thread's
  # last N comments as resolving too, e.g.
  #   thread: {{weights: {{replies: 0.5, resolution: 1.2}}, resolving_words: [fixed, solved]}}
  # template: the projects' issue template: markers (header -> the issue kind it names,
  # kept as a feature), sections whose content is dropped, lines dropped anywhere, e.g.
  #   template: {{markers: {{bug report: bug, your question: question}}, sections: [environment]}}
"""


# ---- how the classifier reads a thread ------------------------------------------------------
# Feature fields of the classifier and their default weights (`classifier.thread.weights`
# in a study file changes them): the thread's parts, each its own field so the model can
# weigh them, and the weight scales each field's TF-IDF block.
THREAD_FIELDS = ("words", "title", "signals", "template", "replies", "resolution")
DEFAULT_FIELD_WEIGHTS = {
    "words": 1.0,
    "title": 1.0,
    "signals": 1.0,
    "template": 1.0,
    "replies": 0.5,
    "resolution": 1.0,
}
# A comment that says the issue is solved holds its resolution (GitHub has no accepted
# answer); matched as lower-case substrings.
DEFAULT_RESOLVING_WORDS = (
    "fixed",
    "solved",
    "resolved",
    "works now",
    "working now",
    "turned out",
    "the problem was",
    "the issue was",
    "that was it",
    "root cause",
)


@dataclass(frozen=True)
class ThreadReading:
    """What a study file says about reading a thread (`classifier.thread` and
    `classifier.template`): field weights, which replies resolve the issue, and the
    issue template's parts to strip, its type markers kept as features."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FIELD_WEIGHTS))
    resolving_words: tuple[str, ...] = DEFAULT_RESOLVING_WORDS
    last_comments: int = 0  # the thread's last N comments also count as resolving
    markers: dict[str, str] = field(default_factory=dict)  # template header -> type marker
    sections: tuple[str, ...] = ()  # template headers whose whole section is dropped
    lines: tuple[str, ...] = ()  # template lines dropped wherever they occur (substrings)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for a model file's metadata (and back with `from_dict`)."""
        return {
            "weights": dict(self.weights),
            "resolving_words": list(self.resolving_words),
            "last_comments": self.last_comments,
            "markers": dict(self.markers),
            "sections": list(self.sections),
            "lines": list(self.lines),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ThreadReading:
        if not data:
            return cls()
        return cls(
            {**DEFAULT_FIELD_WEIGHTS, **data.get("weights", {})},
            tuple(data.get("resolving_words", DEFAULT_RESOLVING_WORDS)),
            int(data.get("last_comments", 0)),
            dict(data.get("markers", {})),
            tuple(data.get("sections", ())),
            tuple(data.get("lines", ())),
        )


def thread_reading(taxonomy: Taxonomy) -> ThreadReading:
    """The study file's `classifier.thread` and `classifier.template`, checked; a study
    without them reads threads with the defaults and strips no template."""
    classifier = taxonomy.raw.get("classifier") or {}
    thread, template = classifier.get("thread") or {}, classifier.get("template") or {}
    where = f"{taxonomy.path}: classifier"
    if not isinstance(thread, dict) or not isinstance(template, dict):
        raise StudyError(f"{where}.thread and .template must be mappings")
    weights = thread.get("weights") or {}
    unknown = sorted(set(weights) - set(THREAD_FIELDS))
    if unknown:
        raise StudyError(
            f"{where}.thread.weights: unknown field {unknown[0]!r} "
            f"(the fields are {', '.join(THREAD_FIELDS)})"
        )
    if not all(isinstance(v, int | float) and v >= 0 for v in weights.values()):
        raise StudyError(f"{where}.thread.weights: each weight must be a number >= 0")
    markers = template.get("markers") or {}
    if not isinstance(markers, dict):
        raise StudyError(f"{where}.template.markers: a mapping of header -> marker name")
    return ThreadReading(
        {**DEFAULT_FIELD_WEIGHTS, **{k: float(v) for k, v in weights.items()}},
        tuple(_texts(thread, "resolving_words", where) or DEFAULT_RESOLVING_WORDS),
        _count(thread.get("last_comments", 0), f"{where}.thread.last_comments"),
        {str(k).strip().lower(): _marker(v) for k, v in markers.items()},
        tuple(_texts(template, "sections", where)),
        tuple(_texts(template, "lines", where)),
    )


def _texts(section: dict[str, Any], key: str, where: str) -> list[str]:
    values = section.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise StudyError(f"{where}: '{key}' must be a list of texts")
    return [v.strip().lower() for v in values]


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or value < 0:
        raise StudyError(f"{where}: must be a whole number >= 0")
    return value


def _marker(value: Any) -> str:
    return re.sub(r"\W+", "_", str(value).strip().lower()).strip("_")
