"""The taxonomy file: key normalisation, resolution, fix-pattern splitting, validation,
and the row normaliser (`issueminer.label_cells`) built on top of it."""

from pathlib import Path

import pytest
import yaml

from issueminer.findings import Report
from issueminer.label_cells import Where, normalise_labels
from issueminer.taxonomy import (
    DEFAULT_STUDY,
    TaxonomyError,
    load_taxonomy,
    normalise_key,
    taxonomy_path,
    validate_taxonomy_file,
)

# ---- normalise_key --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Communication Setup", "communication setup"),
        ("  communication    setup  ", "communication setup"),
        ("data and model preparation", "data & model preparation"),
        ("Data&Model Preparation", "data and model preparation"),
        ("program failures", "program failure"),
        ("Installation And Build Failures", "installation & build failure"),
        ("fix batch size / data partition", "fix batch size/data partition"),
    ],
)
def test_normalise_key_joins_spellings_of_one_label(first, second):
    """Case, repeated or trailing spaces, 'and' vs '&', '/' spacing and plural 's' do not matter."""
    assert normalise_key(first) == normalise_key(second)


def test_normalise_key_exact_forms():
    """The shared form itself: lower case, single spaces, ' & ', singular words, 'ss' kept."""
    assert normalise_key("  Hang   AND  Timeouts ") == "hang & timeout"
    assert normalise_key("process") == "process"
    assert normalise_key("loss") == "loss"
    assert normalise_key("errors") == "error"
    assert normalise_key("gpus") == "gpu"
    assert normalise_key("brand android") == "brand android"  # "and" only as a word


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("hang", "hang and timeout"),
        ("process", "proces"),
        ("data partition error", "data partition"),
    ],
)
def test_normalise_key_keeps_different_labels_apart(first, second):
    """Normalisation does not merge labels that differ in words ('and' only as a word)."""
    assert normalise_key(first) != normalise_key(second)


# ---- resolve --------------------------------------------------------------------------


def test_resolve_exact_normalised_alias(taxonomy):
    """An exact name is 'exact'; another spelling is 'normalised'; an alias is 'alias'."""
    exact = taxonomy.resolve("stage", "communication setup")
    assert (exact.value, exact.how, exact.changed) == ("communication setup", "exact", False)

    spelled = taxonomy.resolve("stage", "  Data AND Model Preparations ")
    assert (spelled.value, spelled.how, spelled.changed) == (
        "data and model preparation",
        "normalised",
        True,
    )

    alias = taxonomy.resolve("symptom", "segfault")
    assert (alias.value, alias.how, alias.changed) == ("segmentation fault", "alias", True)
    typo = taxonomy.resolve("inner_category", "Unexpected Behavior")
    assert (typo.value, typo.how) == ("unexpected performance", "alias")


@pytest.mark.parametrize("cell", ["PENDING", "PENING", "pending", " Pedning "])
def test_resolve_placeholder(taxonomy, cell):
    """Placeholder spellings ('not decided yet') resolve to no value, marked 'placeholder'."""
    resolution = taxonomy.resolve("symptom", cell)
    assert resolution.value is None
    assert resolution.how == "placeholder"
    assert resolution.raw == cell


def test_resolve_unknown_and_empty(taxonomy):
    """An unknown cell is 'unknown'; None, '' and blanks are 'empty'; dimension matters."""
    assert taxonomy.resolve("symptom", "flux capacitor").how == "unknown"
    assert taxonomy.resolve("symptom", "flux capacitor").value is None
    # a stage name is not a symptom
    assert taxonomy.resolve("symptom", "communication setup").how == "unknown"
    for cell in (None, "", "   "):
        resolution = taxonomy.resolve("symptom", cell)
        assert (resolution.value, resolution.how) == (None, "empty")


def test_howto_subtopic_resolution_is_scoped_by_topic(taxonomy):
    """'configuration' exists under communication and device usage, as two distinct nodes."""
    assert "configuration" in taxonomy.subtopics("communication")
    assert "configuration" in taxonomy.subtopics("device usage")
    under_comm = taxonomy.node("howto_subtopic", "communication/configuration")
    under_device = taxonomy.node("howto_subtopic", "device usage/configuration")
    assert under_comm.parent == "communication"
    assert under_device.parent == "device usage"
    assert under_comm.definition != under_device.definition

    assert taxonomy.resolve("howto_subtopic", "Configuration", "communication").value == (
        "configuration"
    )
    assert taxonomy.resolve("howto_subtopic", "configuartion", "device usage").how == "alias"
    # not a sub-topic of these topics
    assert taxonomy.resolve("howto_subtopic", "configuration", "parallelization").how == "unknown"
    assert taxonomy.resolve("howto_subtopic", "aggregation", "device usage").how == "unknown"
    assert taxonomy.resolve("howto_subtopic", "aggregation", "communication").value == (
        "aggregation"
    )


# ---- split_fix_patterns ---------------------------------------------------------------


def test_split_fix_patterns_ampersand(taxonomy):
    """'a & b' of two known patterns gives both, each resolved."""
    names, parts = taxonomy.split_fix_patterns("fix dependency version & fix network setting")
    assert names == ["fix dependency version", "fix network setting"]
    assert [p.how for p in parts] == ["exact", "exact"]


def test_split_fix_patterns_bare_slash_is_one_pattern(taxonomy):
    """A '/' without spaces belongs to a name: 'fix batch size/data partition' is one pattern."""
    names, parts = taxonomy.split_fix_patterns("fix batch size/data partition")
    assert names == ["fix batch size/data partition"]
    assert len(parts) == 1
    names, _ = taxonomy.split_fix_patterns("Fix Data Partition/Batch Size")
    assert names == ["fix batch size/data partition"]


def test_split_fix_patterns_spaced_slash_with_alias(taxonomy):
    """' / ' separates; 'fix model structure' is an alias of 'change model structure'."""
    names, parts = taxonomy.split_fix_patterns(
        "fix framework version / fix model structure / fix distributed API usage"
    )
    assert names == ["fix framework version", "change model structure", "fix distributed API usage"]
    assert [p.how for p in parts] == ["exact", "alias", "exact"]


@pytest.mark.parametrize(
    "cell", ["fix dependency installatiovn/version", "Fix Dependency Installatiovna/Vre4rsion"]
)
def test_split_fix_patterns_listed_combinations(taxonomy, cell):
    """The fix_pattern_combinations entries of the file map to their listed patterns."""
    names, parts = taxonomy.split_fix_patterns(cell)
    assert names == ["fix dependency installation", "fix dependency version"]
    assert len(parts) == 1 and parts[0].how == "alias"


def test_split_fix_patterns_unknown_part_empty_and_placeholder(taxonomy):
    """Unknown parts are reported but dropped; blanks give nothing; a placeholder no names."""
    names, parts = taxonomy.split_fix_patterns("fix network setting; wave a dead chicken")
    assert names == ["fix network setting"]
    assert [p.how for p in parts] == ["exact", "unknown"]
    assert taxonomy.split_fix_patterns("  ") == ([], [])
    assert taxonomy.split_fix_patterns(None) == ([], [])
    names, parts = taxonomy.split_fix_patterns("PENDING")
    assert names == [] and [p.how for p in parts] == ["placeholder"]
    # repeated patterns are listed once
    names, _ = taxonomy.split_fix_patterns("fix batch size & Fix Batch Sizes")
    assert names == ["fix batch size"]


# ---- as_tree --------------------------------------------------------------------------


def test_as_tree_shape(taxonomy):
    """Four stages in file order; only training & evaluation has inner categories."""
    tree = taxonomy.as_tree()
    assert tree["study"] == "distributed-training"
    stages = tree["stages"]
    assert [s["name"] for s in stages] == [
        "package build & import",
        "communication setup",
        "data and model preparation",
        "training & evaluation",
    ]
    for stage in stages[:3]:
        assert "inner_categories" not in stage
        assert stage["leaves"] and all(leaf["definition"] for leaf in stage["leaves"])
    training = stages[3]
    assert "leaves" not in training
    inner = {c["name"]: c for c in training["inner_categories"]}
    assert list(inner) == ["program failure", "unexpected performance"]
    assert "out of memory" in [leaf["name"] for leaf in inner["program failure"]["leaves"]]
    assert "hang" in [leaf["name"] for leaf in inner["unexpected performance"]["leaves"]]
    assert "unexpected behaviour" in inner["unexpected performance"]["aliases"]
    assert [t["name"] for t in tree["issue_types"]] == ["fault", "how-to question", "not relevant"]
    topics = {t["name"]: t for t in tree["howto_topics"]}
    assert "configuration" in [s["name"] for s in topics["communication"]["subtopics"]]
    assert topics["API usage"]["subtopics"] == []


def test_as_tree_matches_the_yaml_file(taxonomy):
    """Every leaf in the tree is the one the YAML file lists, read here with plain PyYAML."""
    data = yaml.safe_load(taxonomy.path.read_text(encoding="utf-8"))
    expected = {}
    for stage in data["stages"]:
        if "inner_categories" in stage:
            for inner in stage["inner_categories"]:
                expected[(stage["name"], inner["name"])] = inner["leaves"]
        else:
            expected[(stage["name"], None)] = stage["leaves"]
    got = {}
    for stage in taxonomy.as_tree()["stages"]:
        if "leaves" in stage:
            got[(stage["name"], None)] = [leaf["name"] for leaf in stage["leaves"]]
        for inner in stage.get("inner_categories", []):
            got[(stage["name"], inner["name"])] = [leaf["name"] for leaf in inner["leaves"]]
    assert got == expected
    assert len(taxonomy.as_tree()["fix_patterns"]) == len(data["fix_patterns"])


# ---- the shipped file -----------------------------------------------------------------


def test_shipped_taxonomy_validates_and_defines_every_node(taxonomy):
    """The study's file has no problems and every node has a non-empty definition."""
    path = taxonomy_path(DEFAULT_STUDY)
    assert path.is_file()
    assert validate_taxonomy_file(path) == []
    count = 0
    for dimension, nodes in taxonomy.nodes.items():
        for node in nodes.values():
            assert node.definition.strip(), f"{dimension} '{node.name}' has no definition"
            count += 1
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    subtopics = sum(len(t.get("subtopics", [])) for t in data["howto_topics"])
    inners = sum(len(s.get("inner_categories", [])) for s in data["stages"])
    expected = (
        len(data["issue_types"])
        + len(data["symptoms"])
        + len(data["stages"])
        + inners
        + len(data["fix_patterns"])
        + len(data["howto_topics"])
        + subtopics
    )
    assert count == expected


# ---- validate_taxonomy_file on broken files ------------------------------------------

MINI = """\
study: mini
title: A small study
issue_types:
  - {name: fault, definition: Something broke.}
  - {name: how-to question, definition: Someone asks how., aliases: [how-to]}
symptoms:
  - {name: crash, definition: The program crashes.}
  - {name: hang, definition: The program hangs.}
stages:
  - name: setup
    definition: Starting the job.
    leaves: [crash]
  - name: run
    definition: Running the job.
    inner_categories:
      - name: failure
        definition: The run stops.
        leaves: [crash, hang]
fix_patterns:
  - {name: fix config, definition: Change a setting.}
  - {name: fix version, definition: Change a version.}
placeholders: [TODO]
"""


def _write(tmp_path: Path, text: str, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    """1-based number of the single line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_mini_taxonomy_is_valid(tmp_path):
    """The hand-written base file is valid, so each broken variant tests one defect."""
    path = _write(tmp_path, MINI)
    assert validate_taxonomy_file(path) == []
    mini = load_taxonomy(path)
    assert mini.study == "mini"
    assert mini.leaf_paths() == [
        ("setup", None, "crash"),
        ("run", "failure", "crash"),
        ("run", "failure", "hang"),
    ]
    assert mini.resolve("symptom", "TODO").how == "placeholder"


def test_a_study_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINI.encode("utf-8").replace(b"The program hangs.", b"L'\xe9t\xe9 hangs."))
    line = _line_of(MINI, "The program hangs.")
    expected = f"{path}:{line}: byte 0xe9 is not UTF-8 (save as UTF-8)"
    assert validate_taxonomy_file(path) == [expected]
    with pytest.raises(TaxonomyError):
        load_taxonomy(path)


def test_validate_missing_definition(tmp_path):
    """A node without definition: the message names the file, the node's line and its name."""
    text = MINI.replace("  - {name: hang, definition: The program hangs.}", "  - {name: hang}")
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    line = _line_of(text, "{name: hang}")
    assert problems[0].startswith(f"{path}:{line}: ")
    assert "'hang'" in problems[0] and "definition" in problems[0]


def test_validate_missing_definition_of_block_node(tmp_path):
    """For a block mapping the line is that of the node's first key."""
    text = MINI.replace("        definition: The run stops.\n", "")
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{_line_of(text, 'name: failure')}: ")
    assert "'failure'" in problems[0] and "definition" in problems[0]
    with pytest.raises(TaxonomyError) as raised:
        load_taxonomy(path)
    assert raised.value.problems == problems
    assert str(path) in str(raised.value)


def test_validate_leaf_not_in_symptoms(tmp_path):
    """A leaf the symptoms list does not define is reported at its stage's line."""
    text = MINI.replace("leaves: [crash, hang]", "leaves: [crash, freeze]")
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{_line_of(text, 'name: failure')}: ")
    assert "'freeze'" in problems[0] and "symptoms" in problems[0]


def test_validate_duplicate_name(tmp_path):
    """The same name twice in one list is reported at the second occurrence."""
    text = MINI.replace(
        "  - {name: fix version, definition: Change a version.}",
        "  - {name: fix version, definition: Change a version.}\n"
        "  - {name: fix config, definition: Again.}",
    )
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{_line_of(text, 'definition: Again.')}: ")
    assert "duplicate" in problems[0] and "'fix config'" in problems[0]


def test_validate_alias_naming_another_node(tmp_path):
    """An alias that (after normalisation) is another node's name is a clash."""
    text = MINI.replace(
        "{name: fix version, definition: Change a version.}",
        "{name: fix version, definition: Change a version., aliases: [Fix Configs]}",
    )
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{_line_of(text, 'Fix Configs')}: ")
    assert "'Fix Configs'" in problems[0] and "'fix config'" in problems[0]


def test_validate_invalid_yaml_names_the_line(tmp_path):
    """A YAML syntax error gives one problem with the file and the line of the error."""
    text = MINI.replace("  - {name: crash, definition: The program crashes.}", "  - {name: crash")
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert "not valid YAML" in problems[0]
    # PyYAML reports the flow mapping as unclosed on the next line
    first = _line_of(text, "{name: crash")
    assert problems[0].startswith((f"{path}:{first}:", f"{path}:{first + 1}:"))


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")
def test_libyaml_reads_every_study_file_as_the_python_parser_does():
    """Study files are read through libyaml when PyYAML has it (the pure Python parser is
    ten times slower, and nearly every command loads a study): the data and the line of
    every mapping are the same as the Python parser's."""
    from issueminer.taxonomy import TAXONOMY_DIR, _FastLineLoader, _LineLoader

    files = sorted(TAXONOMY_DIR.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        fast = yaml.load(text, Loader=_FastLineLoader)  # noqa: S506 - SafeLoader subclass
        assert fast == yaml.load(text, Loader=_LineLoader), path  # noqa: S506
        assert isinstance(fast["__line__"], int), path  # lines were recorded


def test_validate_missing_file(tmp_path):
    """A file that does not exist is one problem naming it, not an exception."""
    path = tmp_path / "nowhere.yaml"
    problems = validate_taxonomy_file(path)
    assert len(problems) == 1
    assert str(path) in problems[0] and "cannot read" in problems[0]
    with pytest.raises(TaxonomyError):
        load_taxonomy(path)


def test_validate_not_a_mapping_and_missing_keys(tmp_path):
    """A file that is a list, or lacks the required keys, is reported, not loaded."""
    listed = _write(tmp_path, "- a\n- b\n", "list.yaml")
    assert validate_taxonomy_file(listed) == [
        f"{listed}:1: the file must be a mapping with keys study, stages, ..."
    ]
    bare = _write(tmp_path, "title: nothing here\n", "bare.yaml")
    problems = validate_taxonomy_file(bare)
    for key in ("study", "issue_types", "stages"):
        assert any(f"missing required key '{key}'" in p for p in problems), key


# ---- normalise_labels -----------------------------------------------------------------


def _normalise(taxonomy, **cells):
    report = Report()
    labels = normalise_labels(taxonomy, cells, Where("sheet.csv", "Fault", 12), report)
    return labels, report


def test_labels_shifted_right_is_realigned(taxonomy):
    """Stage typed twice: the cells after it are moved back one column and it is reported."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="Training and Evaluation",
        leaf_symptom="program failure",
        fix_patterns="out of memory",
        memo="fix batch size",
    )
    assert labels.stage == "training & evaluation"
    assert labels.inner_category == "program failure"
    assert labels.leaf_symptom == "out of memory"
    assert labels.fix_patterns == ["fix batch size"]
    assert labels.memo is None
    assert labels.status == "done" and labels.unknown == []
    [shift] = report.of_kind("shifted-cells")
    assert (shift.file, shift.sheet, shift.row) == ("sheet.csv", "Fault", 12)
    assert "right" in shift.message
    assert shift.value[:2] == ["training & evaluation", "Training and Evaluation"]
    assert report.of_kind("off-tree") == []


def test_labels_shifted_right_without_inner_category(taxonomy):
    """A stage with no inner categories typed twice: leaf and fix pattern move back left."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="communication setup",
        inner_category="communication setup",
        leaf_symptom="",
        fix_patterns="setup failure",
        memo="fix network setting",
    )
    assert (labels.stage, labels.inner_category, labels.leaf_symptom) == (
        "communication setup",
        None,
        "setup failure",
    )
    assert labels.fix_patterns == ["fix network setting"]
    assert len(report.of_kind("shifted-cells")) == 1
    assert report.of_kind("unknown-label") == [] and report.of_kind("off-tree") == []


def test_labels_shifted_left_is_realigned(taxonomy):
    """Inner category left out: leaf, fix pattern and memo are moved one column right."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="communication setup",
        inner_category="setup failure",
        leaf_symptom="fix network setting",
        fix_patterns="firewall blocked the port",
    )
    assert labels.stage == "communication setup"
    assert labels.inner_category is None
    assert labels.leaf_symptom == "setup failure"
    assert labels.fix_patterns == ["fix network setting"]
    assert labels.memo == "firewall blocked the port"
    assert labels.unknown == []
    [shift] = report.of_kind("shifted-cells")
    assert shift.row == 12 and "left" in shift.message
    assert report.of_kind("unknown-label") == []


def test_labels_aligned_row_is_not_shifted(taxonomy):
    """A correct row is left alone: no shifted-cells finding, values as typed."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="program failure",
        leaf_symptom="OOM",
        fix_patterns="fix batch size",
        memo="note",
    )
    assert (labels.inner_category, labels.leaf_symptom, labels.memo) == (
        "program failure",
        "out of memory",
        "note",
    )
    assert report.of_kind("shifted-cells") == []
    assert [f.column for f in report.of_kind("normalised")] == ["leaf_symptom"]


def test_labels_placeholder_makes_pending(taxonomy):
    """A placeholder cell gives status 'pending' and a placeholder finding on its column."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="program failure",
        leaf_symptom="PENING",
        fix_patterns="fix batch size",
    )
    assert labels.status == "pending"
    assert labels.leaf_symptom is None
    [finding] = report.of_kind("placeholder")
    assert (finding.column, finding.value, finding.row) == ("leaf_symptom", "PENING", 12)
    done, _ = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="program failure",
        leaf_symptom="hang",
    )
    assert done.status == "done"


def test_labels_unknown_label(taxonomy):
    """An unknown cell lands in labels.unknown and gives an unknown-label finding."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="program failure",
        leaf_symptom="flux capacitor overload",
        fix_patterns="fix batch size",
    )
    assert labels.leaf_symptom is None
    assert labels.unknown == ["leaf_symptom='flux capacitor overload'"]
    [finding] = report.of_kind("unknown-label")
    assert (finding.column, finding.value, finding.row) == (
        "leaf_symptom",
        "flux capacitor overload",
        12,
    )
    assert report.of_kind("shifted-cells") == []


def test_labels_leaf_in_inner_category_column_is_misplaced(taxonomy):
    """A leaf symptom typed in the inner-category column is reported 'misplaced', not unknown."""
    labels, report = _normalise(
        taxonomy,
        issue_type="fault",
        stage="training & evaluation",
        inner_category="out of memory",
        fix_patterns="fix batch size",
    )
    assert labels.inner_category is None
    assert labels.unknown == []
    [finding] = report.of_kind("misplaced")
    assert finding.column == "inner_category"
    assert finding.value == "out of memory"
    assert "symptom" in finding.message
    assert report.of_kind("unknown-label") == []


def test_labels_subtopic_scoped_by_topic(taxonomy):
    """A how-to row resolves its sub-topic under its own topic; the type alias is normalised."""
    labels, report = _normalise(
        taxonomy, issue_type="how-to", howto_topic="device usage", howto_subtopic="Configuration"
    )
    assert (labels.issue_type, labels.howto_topic, labels.howto_subtopic) == (
        "how-to question",
        "device usage",
        "configuration",
    )
    assert report.of_kind("off-tree") == []
    labels, report = _normalise(
        taxonomy, issue_type="how-to", howto_topic="parallelism", howto_subtopic="aggregation"
    )
    assert labels.howto_topic == "parallelization"
    [off] = report.of_kind("off-tree")
    assert "communication" in off.message


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        # a bare string among inner categories
        ("      - name: failure\n", "      - oops\n      - name: failure\n", "expected a mapping"),
        # a mapping where a leaf name belongs
        ("    leaves: [crash]\n", "    leaves: [{name: crash}]\n", "leaves are names"),
    ],
)
def test_validate_reports_wrong_shapes_instead_of_crashing(tmp_path, old, new, needle):
    """Malformed nodes become reported problems, never exceptions."""
    assert old in MINI
    problems = validate_taxonomy_file(_write(tmp_path, MINI.replace(old, new, 1)))
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("combos", "needle"),
    [("[a, b]", "must map a cell"), ("{'x & y': fix config}", "must be a list")],
)
def test_validate_fix_pattern_combinations_shape(tmp_path, combos, needle):
    text = MINI + f"fix_pattern_combinations: {combos}\n"
    problems = validate_taxonomy_file(_write(tmp_path, text))
    assert any(needle in p for p in problems), problems


def test_codebook_names_every_category(taxonomy):
    """labeling/<study>.md is the annotators' reference: it must name every node."""
    codebook = (Path(__file__).parent.parent / "labeling" / f"{taxonomy.study}.md").read_text()
    missing = [
        f"{dimension}: {node.name}"
        for dimension, nodes in taxonomy.nodes.items()
        for node in nodes.values()
        if f"`{node.name}`" not in codebook and f"| {node.name} |" not in codebook
    ]
    assert missing == []


# ---- required: what a label needs to be done -------------------------------------------


def test_required_rules_of_the_bundled_studies():
    """The TOSEM study: a fault needs stage, leaf and a fix pattern, a how-to its topic."""
    tosem = load_taxonomy(DEFAULT_STUDY)
    assert tosem.required == {
        "fault": ("stage", "inner_category", "symptom", "fix_pattern"),
        "how-to question": ("howto_topic",),
    }
    serverless = load_taxonomy("serverless")
    assert serverless.required["fault"] == ("stage", "inner_category", "symptom")


def test_a_study_file_without_required_still_loads_and_requires_nothing(tmp_path):
    mini = load_taxonomy(_write(tmp_path, MINI))
    assert mini.required == {}
    assert mini.missing({"issue_type": "fault"}) == []


def test_missing_follows_the_tree(tmp_path):
    """inner_category is asked for only under a stage that has inner categories."""
    text = MINI + "required:\n  fault: [stage, inner_category, symptom, fix_pattern]\n"
    mini = load_taxonomy(_write(tmp_path, text))
    assert mini.missing({"issue_type": "fault"}) == [
        "stage",
        "symptom",
        "fix_pattern",
    ]  # no stage chosen: no inner category can be asked for yet
    run = {"issue_type": "fault", "stage": "run", "leaf_symptom": "hang", "fix_patterns": []}
    assert mini.missing(run) == ["inner_category", "fix_pattern"]
    setup = {"issue_type": "fault", "stage": "setup", "leaf_symptom": "crash"}
    assert mini.missing({**setup, "fix_patterns": ["fix config"]}) == []
    assert mini.missing({"issue_type": "how-to question"}) == []  # no rule for how-tos


def test_required_aliases_of_issue_types_are_accepted(tmp_path):
    mini = load_taxonomy(_write(tmp_path, MINI + "required:\n  how-to: [howto_topic]\n"))
    assert mini.required == {"how-to question": ("howto_topic",)}


@pytest.mark.parametrize(
    ("block", "entry", "needle"),
    [
        ("  bug: [stage]\n", "bug:", "required.bug: not an issue type (known: fault, how-to"),
        (
            "  fault: [stage, leaf_symptom]\n",
            "fault:",
            "required.fault: 'leaf_symptom' is not a dimension of a fault (known: specific,",
        ),
        (
            "  how-to question: [stage]\n",
            "how-to question:",
            "'stage' is not a dimension of a how-to question (known: howto_topic, howto_subtopic)",
        ),
        ("  fault: stage\n", "fault:", "required.fault: must be a list of label dimensions"),
    ],
)
def test_validate_required_names_the_file_and_line(tmp_path, block, entry, needle):
    text = MINI + "required:\n" + block
    path = _write(tmp_path, text)
    problems = validate_taxonomy_file(path)
    line = _line_of(text, entry)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:{line}: "), problems
    assert needle in problems[0]
    with pytest.raises(TaxonomyError):
        load_taxonomy(path)


def test_validate_required_that_is_not_a_mapping(tmp_path):
    text = MINI + "required: [stage]\n"
    path = _write(tmp_path, text)
    line = _line_of(text, "required:")
    assert validate_taxonomy_file(path) == [
        f"{path}:{line}: required: must map an issue type to a list of label dimensions"
    ]
