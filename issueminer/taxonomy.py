"""Load, validate and apply a study's taxonomy file.

The taxonomy is the one place that knows which labels exist. Free-text cells from
spreadsheets or the annotation app go through `Taxonomy.resolve`, which maps every known
spelling to one canonical node and says what it did, so importers can report it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from issueminer.required import missing_dimensions, parse_required
from issueminer.text import not_utf8

TAXONOMY_DIR = Path(__file__).resolve().parent.parent / "taxonomy"  # the bundled studies
DEFAULT_STUDY = "distributed-training"
STUDY_PATH_ENV = "ISSUEMINER_STUDY_PATH"  # more folders of study files, os.pathsep-separated
LOCAL_STUDY_DIR = "studies"  # `issueminer study new` writes here, relative to the working dir
STUDY_SUFFIXES = (".yaml", ".yml")

# What the app, tables and reports call each label dimension unless the study file's
# `labels:` says otherwise. `specific` is the yes/no flag of a fault (the column of the same
# name in the store; `distributed_specific` before migration 0005).
DEFAULT_LABELS = {
    "specific": "topic-specific",
    "specific_question": "Does the root cause lie in the study's subject, not in ordinary code?",
    "stage": "stage",
    "inner_category": "inner category",
    "symptom": "symptom",
    "fix_pattern": "fix pattern",
    "howto_topic": "how-to topic",
    "howto_subtopic": "sub-topic",
}
STATUSES = ("draft", "settled")
STUDY_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
REQUIRED_KEYS = ("study", "issue_types", "stages")
STUDY_KEYS = (
    "study",
    "title",
    "version",
    "description",
    "status",
    "open_coding",
    "codebook",
    "labels",
    "issue_types",
    "symptoms",
    "stages",
    "fix_patterns",
    "fix_pattern_combinations",
    "howto_topics",
    "placeholders",
    "selection",
    "classifier",
    "required",
)

# Dimensions a label has; `symptom` is the leaf of the fault tree.
DIMENSIONS = ("issue_type", "stage", "inner_category", "symptom", "fix_pattern", "howto_topic")
# dimension -> the label field (annotation and final-label column) that holds it
FIELD_OF = {
    "stage": "stage",
    "inner_category": "inner_category",
    "symptom": "leaf_symptom",
    "fix_pattern": "fix_patterns",
    "howto_topic": "howto_topic",
    "howto_subtopic": "howto_subtopic",
}
FAULT = "fault"
HOWTO = "how-to question"
NOT_RELEVANT = "not relevant"

# Separators that join several fix patterns in one cell ("a & b", "a / b"). A bare "/"
# is not one: "fix batch size/data partition" is a single pattern.
FIX_PATTERN_SEPARATOR = re.compile(r"\s+&\s+|\s+/\s+|\s*;\s*")


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; `problems` lists each one with its place."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def normalise_key(value: str) -> str:
    """The form two spellings of one label share: case, spacing, '&'/'and', plural 's'."""
    text = re.sub(r"\s+", " ", str(value).strip().lower())
    text = re.sub(r"\s*&\s*|\s+and\s+", " & ", text)
    text = re.sub(r"\s*/\s*", "/", text)
    words = [_singular(word) for word in text.split(" ")]
    return " ".join(words)


def _singular(word: str) -> str:
    # "failures" -> "failure"; keeps "process", "gloss"; short words ("gpus" aside) stay
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Node:
    dimension: str
    name: str
    definition: str
    aliases: tuple[str, ...] = ()
    parent: str | None = None  # howto topic of a sub-topic
    line: int | None = None


@dataclass(frozen=True)
class Resolution:
    """What became of one cell: its canonical name (or None) and how it was found."""

    raw: Any
    value: str | None
    how: str  # empty | exact | normalised | alias | placeholder | proposed | unknown

    @property
    def changed(self) -> bool:
        return self.how in ("normalised", "alias")


@dataclass
class Taxonomy:
    study: str
    title: str
    path: Path
    nodes: dict[str, dict[str, Node]] = field(default_factory=dict)  # dimension -> name -> node
    tree: dict[str, dict[str | None, list[str]]] = field(
        default_factory=dict
    )  # stage->inner->leaves
    howto_tree: dict[str, list[str]] = field(default_factory=dict)
    fix_combinations: dict[str, list[str]] = field(default_factory=dict)
    placeholders: set[str] = field(default_factory=set)
    selection: dict[str, Any] = field(default_factory=dict)  # see issueminer.collect.selection
    status: str = "settled"  # draft: categories are still being found
    # open coding: a label the taxonomy lacks is a proposed category, kept as typed
    open_coding: bool = False
    labels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    codebook: Path | None = None
    # the classifier's study-specific error signals: name -> (anchors, regex)
    signals: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    # `required:` issue type -> the dimensions a label of that type needs before it is
    # done (empty when the study file has no `required:` key: only the issue type is)
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    _lookup: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    # ---- lookup -------------------------------------------------------------------------
    def _index(self) -> None:
        for dimension, nodes in self.nodes.items():
            for node in nodes.values():
                scope = _scope(dimension, node.parent)
                self._lookup[(scope, normalise_key(node.name))] = (node.name, "normalised")
                for alias in node.aliases:
                    self._lookup.setdefault((scope, normalise_key(alias)), (node.name, "alias"))

    def resolve(self, dimension: str, raw: Any, parent: str | None = None) -> Resolution:
        """Map a cell to a canonical node of `dimension` (`parent`: the topic of a sub-topic)."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return Resolution(raw, None, "empty")
        text = str(raw)
        if normalise_key(text) in self.placeholders:
            return Resolution(raw, None, "placeholder")
        found = self._lookup.get((_scope(dimension, parent), normalise_key(text)))
        if found is None:
            if self.open_coding and dimension != "issue_type":
                return Resolution(raw, proposal_name(text), "proposed")
            return Resolution(raw, None, "unknown")
        name, how = found
        return Resolution(raw, name, "exact" if name == text else how)

    def split_fix_patterns(self, raw: Any) -> tuple[list[str], list[Resolution]]:
        """A cell of one or more fix patterns -> canonical names, plus every part's resolution."""
        if raw is None or not str(raw).strip():
            return [], []
        text = str(raw)
        combined = self.fix_combinations.get(normalise_key(text))
        if combined is not None:
            return list(combined), [Resolution(raw, "; ".join(combined), "alias")]
        whole = self.resolve("fix_pattern", text)
        if whole.value is not None or whole.how == "placeholder":
            return ([whole.value] if whole.value else []), [whole]
        parts = [self.resolve("fix_pattern", part) for part in FIX_PATTERN_SEPARATOR.split(text)]
        names = [part.value for part in parts if part.value]
        return list(dict.fromkeys(names)), parts

    def label(self, dimension: str) -> str:
        """What this study calls a label dimension ('stage', 'symptom', 'specific', ...)."""
        return self.labels.get(dimension) or DEFAULT_LABELS.get(dimension, dimension)

    def plural(self, dimension: str) -> str:
        """The label's plural, for headings: 'categories', 'fix patterns', 'stages'."""
        return plural(self.label(dimension))

    def missing(self, labels: dict[str, Any]) -> list[str]:
        """The dimensions `required:` asks of the label's type that it leaves empty."""
        return missing_dimensions(self, labels)

    def is_known(self, dimension: str, name: str | None, parent: str | None = None) -> bool:
        """False for a category the taxonomy lacks (proposed during open coding)."""
        key = f"{parent}/{name}" if dimension == "howto_subtopic" else name
        return name is None or key in self.nodes.get(dimension, {})

    def definition(self, dimension: str, name: str | None) -> str:
        """A node's definition; "" for a name the taxonomy lacks (or None)."""
        node = self.node(dimension, name or "")
        return node.definition if node else ""

    def names(self, dimension: str) -> list[str]:
        return list(self.nodes.get(dimension, {}))

    def node(self, dimension: str, name: str) -> Node | None:
        return self.nodes.get(dimension, {}).get(name)

    def on_tree(self, stage: str | None, inner: str | None, leaf: str | None) -> bool:
        return leaf in self.tree.get(stage or "", {}).get(inner, [])

    def framework_of(self, repository: str | None, tags: list[str] | None = None) -> str | None:
        """The study's name for what an issue is about: its repository, else its tags."""
        if repository:
            for entry in (self.selection.get("github") or {}).get("repositories") or []:
                if str(entry.get("repo", "")).lower() == repository.lower():
                    return str(entry.get("framework") or repository.split("/")[-1])
            return repository.split("/")[-1]
        stackoverflow = self.selection.get("stackoverflow") or {}
        study_tags = [
            *stackoverflow.get("tags_alone", []),
            *stackoverflow.get("tags_with_keyword", []),
        ]
        found = [str(t) for t in study_tags if t in (tags or [])]
        return " & ".join(found) or None

    def subtopics(self, topic: str) -> list[str]:
        return self.howto_tree.get(topic, [])

    def leaf_paths(self) -> list[tuple[str, str | None, str]]:
        return [
            (stage, inner, leaf)
            for stage, inners in self.tree.items()
            for inner, leaves in inners.items()
            for leaf in leaves
        ]

    def as_tree(self) -> dict[str, Any]:
        """The taxonomy as plain data (for `taxonomy show --format json`)."""

        def describe(dimension: str, name: str) -> dict[str, Any]:
            node = self.nodes[dimension][name]
            return {"name": name, "definition": node.definition, "aliases": list(node.aliases)}

        stages = []
        for stage, inners in self.tree.items():
            entry = describe("stage", stage)
            if None in inners:
                entry["leaves"] = [describe("symptom", leaf) for leaf in inners[None]]
            else:
                entry["inner_categories"] = [
                    {
                        **describe("inner_category", inner),
                        "leaves": [describe("symptom", leaf) for leaf in leaves],
                    }
                    for inner, leaves in inners.items()
                ]
            stages.append(entry)
        topics = []
        for topic, subs in self.howto_tree.items():
            entry = describe("howto_topic", topic)
            entry["subtopics"] = [
                {"name": s, "definition": self.nodes["howto_subtopic"][f"{topic}/{s}"].definition}
                for s in subs
            ]
            topics.append(entry)
        return {
            "study": self.study,
            "title": self.title,
            "issue_types": [describe("issue_type", n) for n in self.names("issue_type")],
            "stages": stages,
            "fix_patterns": [describe("fix_pattern", n) for n in self.names("fix_pattern")],
            "howto_topics": topics,
        }


def plural(phrase: str) -> str:
    """English plural of a phrase's last word (labels are short nouns: 'category', 'stage')."""
    if re.search(r"[^aeiou]y$", phrase):
        return phrase[:-1] + "ies"
    if re.search(r"(?:s|x|ch|sh)$", phrase):
        return phrase + "es"
    return phrase + "s"


def proposal_name(text: str) -> str:
    """A proposed category as it is stored: the annotator's words, spacing tidied."""
    return re.sub(r"\s+", " ", text).strip()


def _scope(dimension: str, parent: str | None) -> str:
    return f"{dimension}:{parent}" if dimension == "howto_subtopic" else dimension


# ---- loading --------------------------------------------------------------------------
class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping, for precise error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _FastLineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same loader on libyaml's parser when PyYAML has it: it reads a study file in a
    tenth of the time, and nearly every command loads one."""


_FastLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str) -> Any:
    """A study file's data, through libyaml; a file it refuses is read again by the pure
    Python parser, so that a broken file gets the messages (and lines) it always got."""
    if yaml.__with_libyaml__:
        try:
            return yaml.load(text, Loader=_FastLineLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass


def study_dirs() -> list[Path]:
    """Where study files are looked for, first match wins: $ISSUEMINER_STUDY_PATH's folders,
    ./studies (where `study new` writes), then the studies that come with issueminer."""
    extra = [Path(p) for p in os.environ.get(STUDY_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, Path.cwd() / LOCAL_STUDY_DIR, TAXONOMY_DIR]


def taxonomy_path(study_or_path: str | Path) -> Path:
    """A study name (looked up in `study_dirs()`) or a path to a study file."""
    candidate = Path(study_or_path)
    if candidate.suffix in STUDY_SUFFIXES or candidate.exists():
        return candidate
    for directory in study_dirs():
        for suffix in STUDY_SUFFIXES:
            found = directory / f"{study_or_path}{suffix}"
            if found.is_file():
                return found
    return TAXONOMY_DIR / f"{study_or_path}.yaml"  # does not exist: the error names it


def load_taxonomy(study_or_path: str | Path = DEFAULT_STUDY) -> Taxonomy:
    """Load and validate a taxonomy; raises TaxonomyError listing every problem found."""
    path = taxonomy_path(study_or_path)
    taxonomy, problems = _build(path)
    if problems or taxonomy is None:
        raise TaxonomyError(path, problems)
    return taxonomy


def validate_taxonomy_file(path: str | Path) -> list[str]:
    """Every problem of a taxonomy file as 'file:line: what is wrong'; empty when valid."""
    return _build(Path(path))[1]


def _build(path: Path) -> tuple[Taxonomy | None, list[str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [f"{path}: cannot read the file ({exc.strerror or exc})"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, problem = not_utf8(raw, exc)
        return None, [f"{path}:{line}: {problem}"]
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        return None, [f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]
    if not isinstance(data, dict):
        return None, [f"{path}:1: the file must be a mapping with keys study, stages, ..."]
    return _Builder(path, data, text).build()


class _Builder:
    def __init__(self, path: Path, data: dict[str, Any], text: str = "") -> None:
        self.path = path
        self.data = data
        self.text = text
        self.problems: list[str] = []
        self.taxonomy = Taxonomy(
            study=str(data.get("study") or path.stem),
            title=str(data.get("title") or data.get("study") or path.stem),
            path=path,
            raw=_strip_lines(data),
        )

    def problem(self, line: Any, message: str) -> None:
        self.problems.append(f"{self.path}:{line or 1}: {message}")

    def build(self) -> tuple[Taxonomy | None, list[str]]:
        data = self.data
        self.study_settings()
        # an open-coding study may start with no categories at all
        required = ("study", "issue_types") if self.taxonomy.open_coding else REQUIRED_KEYS
        for key in required:
            if key not in data:
                self.problem(1, f"missing required key '{key}'")
        self.nodes("issue_type", data.get("issue_types") or [], "issue_types")
        self.nodes("symptom", data.get("symptoms") or [], "symptoms")
        self.nodes("fix_pattern", data.get("fix_patterns") or [], "fix_patterns")
        self.stages(data.get("stages") or [])
        self.howto(data.get("howto_topics") or [])
        self.combinations(data.get("fix_pattern_combinations") or {})
        self.taxonomy.placeholders = {normalise_key(p) for p in data.get("placeholders") or []}
        self.taxonomy.selection = _strip_lines(data.get("selection") or {})
        self.selection_shape(data.get("selection"))
        self.taxonomy._index()
        self.alias_clashes()
        self.required_fields(data.get("required"))
        return (None if self.problems else self.taxonomy), self.problems

    def key_line(self, key: str) -> int:
        """The line of a top-level key (YAML mappings only remember where they start)."""
        found = re.search(rf"^{re.escape(key)}\s*:", self.text, re.M)
        return self.text.count("\n", 0, found.start()) + 1 if found else 1

    def study_settings(self) -> None:
        data, taxonomy = self.data, self.taxonomy
        for key in data:
            if key != "__line__" and key not in STUDY_KEYS:
                self.problem(
                    self.key_line(key), f"unknown key '{key}' (known: {', '.join(STUDY_KEYS)})"
                )
        name = data.get("study")
        if name is not None and not STUDY_NAME.fullmatch(str(name)):
            self.problem(
                self.key_line("study"),
                f"study: '{name}' must be lower-case letters, digits and '-'",
            )
        status = data.get("status", "settled")
        if status not in STATUSES:
            self.problem(
                self.key_line("status"), f"status: '{status}' is not one of {', '.join(STATUSES)}"
            )
        taxonomy.status = str(status)
        open_coding = data.get("open_coding", False)
        if not isinstance(open_coding, bool):
            self.problem(self.key_line("open_coding"), "open_coding: must be true or false")
        taxonomy.open_coding = open_coding is True
        self.display_labels(data.get("labels"))
        codebook = data.get("codebook")
        if codebook is not None and not isinstance(codebook, str):
            self.problem(self.key_line("codebook"), "codebook: must be a path to a Markdown file")
        elif codebook:
            taxonomy.codebook = (self.path.parent / codebook).resolve()
        self.classifier_signals(data.get("classifier"))

    def display_labels(self, labels: Any) -> None:
        if labels is None:
            return
        if not isinstance(labels, dict):
            self.problem(self.key_line("labels"), "labels: must map a dimension to its name")
            return
        for key, value in labels.items():
            if key == "__line__":
                continue
            if key not in DEFAULT_LABELS:
                self.problem(
                    labels["__line__"],
                    f"labels.{key}: unknown dimension (known: {', '.join(DEFAULT_LABELS)})",
                )
            elif not isinstance(value, str) or not value.strip():
                self.problem(labels["__line__"], f"labels.{key}: must be a non-empty text")
            else:
                self.taxonomy.labels[key] = value.strip()

    def classifier_signals(self, classifier: Any) -> None:
        if classifier is None:
            return
        signals = classifier.get("signals") if isinstance(classifier, dict) else None
        if not isinstance(signals, dict):
            self.problem(
                self.key_line("classifier"),
                "classifier: must hold 'signals', a mapping of name -> {anchors, pattern}",
            )
            return
        for name, spec in signals.items():
            if name == "__line__":
                continue
            where = f"classifier.signals.{name}"
            line = spec.get("__line__") if isinstance(spec, dict) else signals["__line__"]
            anchors = spec.get("anchors") if isinstance(spec, dict) else None
            pattern = spec.get("pattern") if isinstance(spec, dict) else None
            if (
                not isinstance(anchors, list)
                or not anchors
                or not all(isinstance(a, str) and a == a.lower() for a in anchors)
            ):
                self.problem(line, f"{where}.anchors: must be a non-empty list of lower-case texts")
                continue
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.problem(line, f"{where}.pattern: not a valid regular expression ({exc})")
                continue
            if not isinstance(pattern, str) or not pattern:
                self.problem(line, f"{where}.pattern: missing")
                continue
            self.taxonomy.signals[str(name)] = (tuple(anchors), pattern)

    def nodes(self, dimension: str, items: Any, key: str, parent: str | None = None) -> list[Node]:
        if not isinstance(items, list):
            self.problem(
                getattr(items, "get", lambda _k: None)("__line__"), f"'{key}' must be a list"
            )
            return []
        made = []
        store = self.taxonomy.nodes.setdefault(dimension, {})
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                self.problem(
                    None, f"{where}: expected a mapping with name and definition, got {item!r}"
                )
                continue
            line = item.get("__line__")
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(line, f"{where}: missing 'name'")
                continue
            definition = item.get("definition")
            if not isinstance(definition, str) or not definition.strip():
                self.problem(line, f"{where} '{name}': missing 'definition'")
            aliases = item.get("aliases") or []
            if not isinstance(aliases, list):
                self.problem(line, f"{where} '{name}': 'aliases' must be a list")
                aliases = []
            store_key = f"{parent}/{name}" if parent else name
            if store_key in store:
                self.problem(line, f"{where}: duplicate {dimension} '{name}'")
                continue
            node = Node(
                dimension, name, str(definition or ""), tuple(map(str, aliases)), parent, line
            )
            store[store_key] = node
            made.append(node)
        return made

    def stages(self, stages: Any) -> None:
        symptoms = self.taxonomy.nodes.get("symptom", {})
        for stage in self.nodes("stage", stages, "stages"):
            item = next(s for s in stages if isinstance(s, dict) and s.get("name") == stage.name)
            inners: dict[str | None, list[str]] = {}
            if "inner_categories" in item:
                key = f"stages '{stage.name}'.inner_categories"
                for inner in self.nodes("inner_category", item["inner_categories"], key):
                    sub = next(
                        i
                        for i in item["inner_categories"]
                        if isinstance(i, dict) and i.get("name") == inner.name
                    )
                    inners[inner.name] = self.leaves(sub, symptoms)
            else:
                inners[None] = self.leaves(item, symptoms)
            self.taxonomy.tree[stage.name] = inners

    def leaves(self, item: dict[str, Any], symptoms: dict[str, Node]) -> list[str]:
        leaves = item.get("leaves", [] if self.taxonomy.open_coding else None)
        if not isinstance(leaves, list) or (not leaves and not self.taxonomy.open_coding):
            self.problem(
                item.get("__line__"), f"'{item.get('name')}' needs a non-empty 'leaves' list"
            )
            return []
        names = []
        for leaf in leaves:
            if not isinstance(leaf, str):
                self.problem(
                    item.get("__line__"),
                    f"'{item.get('name')}' lists {leaf!r}; leaves are names of 'symptoms' entries",
                )
            elif leaf not in symptoms:
                self.problem(
                    item.get("__line__"),
                    f"'{item.get('name')}' lists leaf '{leaf}', which is not in 'symptoms'",
                )
            else:
                names.append(leaf)
        return names

    def howto(self, topics: Any) -> None:
        for topic in self.nodes("howto_topic", topics, "howto_topics"):
            item = next(t for t in topics if isinstance(t, dict) and t.get("name") == topic.name)
            subs = self.nodes(
                "howto_subtopic",
                item.get("subtopics") or [],
                f"howto_topics '{topic.name}'.subtopics",
                parent=topic.name,
            )
            self.taxonomy.howto_tree[topic.name] = [s.name for s in subs]

    def combinations(self, combos: Any) -> None:
        fix_patterns = self.taxonomy.nodes.get("fix_pattern", {})
        if not isinstance(combos, dict):
            self.problem(None, "'fix_pattern_combinations' must map a cell to a list of patterns")
            return
        for cell, parts in combos.items():
            if cell == "__line__":
                continue
            if not isinstance(parts, list):
                self.problem(
                    combos.get("__line__"),
                    f"fix_pattern_combinations '{cell}' must "
                    f"be a list of fix patterns, not {parts!r}",
                )
                continue
            unknown = [p for p in parts if p not in fix_patterns]
            if unknown:
                self.problem(
                    combos.get("__line__"), f"fix_pattern_combinations '{cell}': unknown {unknown}"
                )
            self.taxonomy.fix_combinations[normalise_key(cell)] = list(parts)

    def selection_shape(self, selection: Any) -> None:
        """The selection criteria's keys and types (meaning: `issueminer.collect.selection`)."""
        if selection is None:
            return
        if not isinstance(selection, dict):
            self.problem(None, "'selection' must be a mapping")
            return
        line = selection.get("__line__")
        for key in ("keywords", "phrases"):
            if not all(isinstance(v, str) for v in selection.get(key) or []):
                self.problem(line, f"selection.{key} must be a list of strings")
        stackoverflow = selection.get("stackoverflow") or {}
        for key in ("tags_alone", "tags_with_keyword"):
            if not isinstance(stackoverflow.get(key, []), list):
                self.problem(
                    stackoverflow.get("__line__", line),
                    f"selection.stackoverflow.{key} must be a list",
                )
        github = selection.get("github") or {}
        for index, entry in enumerate(github.get("repositories") or []):
            where = f"selection.github.repositories[{index}]"
            if not isinstance(entry, dict) or "/" not in str(entry.get("repo", "")):
                self.problem(github.get("__line__", line), f"{where} needs 'repo: owner/name'")
                continue
            for key in ("include_labels", "exclude_labels"):
                if not isinstance(entry.get(key, []), list):
                    self.problem(entry.get("__line__"), f"{where}.{key} must be a list")

    def required_fields(self, required: Any) -> None:
        """`required:` issue type -> the dimensions its label needs to be done."""
        found = parse_required(
            required,
            self.text,
            self.key_line("required"),
            lambda key: self.taxonomy.resolve("issue_type", key).value,
            self.taxonomy.names("issue_type"),
        )
        self.taxonomy.required, problems = found
        for line, message in problems:
            self.problem(line, message)

    def alias_clashes(self) -> None:
        for dimension, nodes in self.taxonomy.nodes.items():
            seen: dict[tuple[str, str], str] = {}
            for node in nodes.values():
                scope = _scope(dimension, node.parent)
                for spelling in (node.name, *node.aliases):
                    key = (scope, normalise_key(spelling))
                    other = seen.setdefault(key, node.name)
                    if other != node.name:
                        self.problem(
                            node.line,
                            f"{dimension} '{node.name}': '{spelling}' also names '{other}'",
                        )


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value
