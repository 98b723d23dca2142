"""Studies live in their files: `study new/list/show/validate`, a new study's whole pipeline
(crawl fake APIs, label with proposed categories, finalize, stats, agree), and
`taxonomy merge` rewriting labels while keeping history."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from issueminer.cli.main import app
from issueminer.label import rounds
from issueminer.label.taxonomy_merge import MergeError, merge_categories
from issueminer.label.webapp.app import Settings
from issueminer.store import Annotation, FinalLabel, Issue, LabelChange, RoundItem, Store
from issueminer.study import category_names, check_study, new_study
from issueminer.taxonomy import load_taxonomy
from tests.fakes.github import FakeGitHub, make_issue
from tests.fakes.stackexchange import FakeStackExchange, make_answer, make_question
from tests.labeling_fixtures import app_client

REPO_ROOT = Path(__file__).resolve().parent.parent
START = 1_650_000_000


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- study new, validate, list, show --------------------------------------------------------
def test_study_new_writes_a_valid_commented_file_and_a_codebook(tmp_path, runner) -> None:
    made = runner.invoke(app, ["study", "new", "field-notes", "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    study_file, codebook = tmp_path / "field-notes.yaml", tmp_path / "field-notes.md"
    text = study_file.read_text()
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^[a-z_]+:", line)]
    assert len(keys) >= 15
    for i in keys:  # every top-level key has a comment just above it
        assert lines[i - 1].startswith("#"), f"no comment above {lines[i]!r}"
    taxonomy = load_taxonomy(study_file)
    assert taxonomy.study == "field-notes" and taxonomy.open_coding and taxonomy.status == "draft"
    assert taxonomy.tree == {} and taxonomy.names("issue_type")
    assert taxonomy.required == {"fault": ("stage", "symptom"), "how-to question": ("howto_topic",)}
    assert check_study(study_file) == ([], [])  # the skeleton names every category
    assert "## Open coding" in codebook.read_text()
    before = text
    again = runner.invoke(app, ["study", "new", "field-notes", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert study_file.read_text() == before
    bad = runner.invoke(app, ["study", "new", "Field_Notes", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and "lower-case" in bad.output


def test_study_new_from_an_existing_study_keeps_its_categories(tmp_path, runner, taxonomy):
    made = runner.invoke(
        app,
        [
            *("study", "new", "dt-replica", "--from", "distributed-training"),
            *("--dir", str(tmp_path), "--format", "json"),
        ],
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == {
        "study_file": str(tmp_path / "dt-replica.yaml"),
        "codebook": str(tmp_path / "dt-replica.md"),
    }
    copy = load_taxonomy(tmp_path / "dt-replica.yaml")
    assert copy.study == "dt-replica"
    assert category_names(copy) == category_names(taxonomy)
    assert copy.selection == taxonomy.selection and copy.signals == taxonomy.signals
    assert check_study(tmp_path / "dt-replica.yaml") == ([], [])


def test_study_new_from_a_broken_study_names_the_broken_file(tmp_path, runner) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("study: broken\nissue_types: [fault]\nstages: not a list\n")
    made = runner.invoke(
        app, ["study", "new", "copy", "--from", str(broken), "--dir", str(tmp_path / "new")]
    )
    assert made.exit_code == 1 and "the study to start from is not valid" in made.output
    assert f"{broken}:" in made.output and not (tmp_path / "new").exists()


def test_study_validate_names_file_key_and_line(tmp_path, runner) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "study: broken\n"  # 1
        "status: finished\n"  # 2
        "open_coding: true\n"  # 3
        "selction: {}\n"  # 4
        "labels:\n"  # 5
        "  stagee: phase\n"  # 6
        "issue_types:\n"  # 7
        "  - {name: fault, definition: d}\n"  # 8
        "classifier:\n"  # 9
        "  signals:\n"  # 10
        "    broken: {anchors: [x], pattern: '(unclosed'}\n"  # 11
    )
    result = runner.invoke(app, ["study", "validate", str(path)])
    assert result.exit_code == 1
    for where, what in [
        (2, "status: 'finished'"),
        (4, "unknown key 'selction'"),
        (6, "labels.stagee"),
        (11, "classifier.signals.broken.pattern"),
    ]:
        assert f"{path}:{where}: {what}" in result.output, (where, result.output)
    as_json = runner.invoke(app, ["study", "validate", str(path), "--format", "json"])
    assert as_json.exit_code == 1 and len(json.loads(as_json.stdout)["problems"]) == 4


def test_study_validate_checks_the_required_rules(tmp_path, runner) -> None:
    origin = Path(load_taxonomy("distributed-training").path).read_text(encoding="utf-8")
    rules = "required:\n  fault: [stage, inner_category, symptom, fix_pattern]\n"
    assert rules in origin
    broken = origin.replace(rules, "required:\n  fault: [stage, leaf symptom]\n  defect: []\n")
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("  fault: [stage, leaf symptom]") + 1
    result = runner.invoke(app, ["study", "validate", str(path)])
    assert result.exit_code == 1
    wrong = f"{path}:{line}: required.fault: 'leaf symptom' is not a dimension of a fault"
    assert wrong in result.output
    assert f"{path}:{line + 1}: required.defect: not an issue type" in result.output


def test_study_list_and_show_search_the_study_path(tmp_path, runner, monkeypatch) -> None:
    monkeypatch.setenv("ISSUEMINER_STUDY_PATH", str(tmp_path))
    runner.invoke(app, ["study", "new", "pilot-study", "--dir", str(tmp_path)])
    listed = _json(runner.invoke(app, ["study", "list", "--format", "json"]))
    names = {s["name"]: s for s in listed["studies"]}
    assert {"pilot-study", "distributed-training", "serverless"} <= set(names)
    assert names["pilot-study"]["open_coding"] is True and names["serverless"]["valid"]
    shown = _json(runner.invoke(app, ["study", "show", "serverless", "--format", "json"]))
    assert shown["status"] == "draft" and shown["open_coding"] is True
    assert shown["labels"]["stage"] == "dimension"
    missing = runner.invoke(app, ["study", "show", "no-such-study"])
    assert missing.exit_code == 1 and "no study 'no-such-study'" in missing.output


def test_bundled_studies_validate_and_their_codebooks_name_every_category(runner) -> None:
    for name in ("distributed-training", "serverless"):
        path = REPO_ROOT / "taxonomy" / f"{name}.yaml"
        assert check_study(path) == ([], []), name


def test_serverless_preset_covers_the_platforms_and_themes() -> None:
    serverless = load_taxonomy("serverless")
    assert serverless.status == "draft" and serverless.open_coding
    stages = set(serverless.tree)
    assert {"development", "deployment", "runtime"} <= stages
    workflow = {"programming model", "state management", "orchestration", "data flow"}
    assert workflow | {"performance", "pricing"} <= stages
    names = " ".join(category_names(serverless)).lower()
    for theme in (
        "cold start",
        "timeout",
        "memory",
        "package",
        "permission",
        "trigger",
        "concurrency",
        "state",
        "retr",
    ):
        assert theme in names, theme
    tags = " ".join(serverless.selection["stackoverflow"]["tags_alone"])
    for platform in (
        "aws-lambda",
        "google-cloud-functions",
        "azure-functions",
        "aws-step-functions",
        "azure-durable-functions",
    ):
        assert platform in tags


def test_package_source_names_no_framework() -> None:
    """Everything study-specific lives in taxonomy/ and labeling/, never in the package
    ("aws" as a word: "draws" is not it)."""
    names = ["horovod", "tensorflow", "pytorch", "keras", "torch", "nccl", "deepspeed",
             "megatron", "lambda function", "azure", r"\baws\b"]  # fmt: skip
    found = subprocess.run(
        ["grep", "-rniE", "-e", "|".join(names), "issueminer"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert found.stdout == "", found.stdout


# ---- a new study, end to end, with no code change -----------------------------------------------
def _select(text: str) -> str:
    """What a researcher types into the scaffold's selection section."""
    edits = {
        "  keywords: []": "  keywords: [timeout, quota]",
        "  phrases: []": "  phrases: [cold start]",
        "    tags_alone: []": "    tags_alone: [widget-functions]",
        "    tags_with_keyword: []": "    tags_with_keyword: [cloud-widgets]",
        "    repositories: []": "    repositories:\n"
        "      - {repo: acme/widget-runtime, framework: widget-runtime}",
        "  specific: topic-specific": "  specific: widget-specific",
    }
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _stack_overflow() -> tuple[list, list, set[int]]:
    questions, answers, kept = [], [], set()
    rows = [
        (1, "Function never returns", "<p>It hangs.</p>", "widget-functions", True),
        (2, "Deploy fails", "<p>Upload rejected.</p>", "widget-functions", True),
        (3, "Slow first call", "<p>A cold start takes 5 s.</p>", "cloud-widgets", True),
        (4, "Job ends early", "<p>It hits the <b>timeout</b>.</p>", "cloud-widgets", True),
        (5, "Pricing page", "<p>How much is it?</p>", "cloud-widgets", False),
        (6, "Limit in code", "<pre><code>timeout=3</code></pre>", "cloud-widgets", False),
    ]
    for n, title, body, tag, keep in rows:
        qid = 5000 + n
        questions.append(make_question(qid, title, body, [tag], START + n * 60))
        answers.append(make_answer(qid * 10 + 1, qid, "<p>Raise the limit.</p>", accepted=True))
        if keep:
            kept.add(qid)
    return questions, answers, kept


def _github() -> tuple[dict, set[int]]:
    repo = "acme/widget-runtime"
    issues = [
        make_issue(repo, 1, "Quota error on deploy", "We exceed the quota.",
                   "2022-01-01T00:00:00Z"),
        make_issue(repo, 2, "Cold start is slow", "Every cold start takes 4 s.",
                   "2022-01-02T00:00:00Z"),
        make_issue(repo, 3, "Handler times out", "It fails with a timeout.",
                   "2022-01-03T00:00:00Z"),
        make_issue(repo, 4, "Typo in docs", "Fix the spelling.", "2022-01-04T00:00:00Z"),
    ]  # fmt: skip
    return {repo: issues}, {1, 2, 3}


# what each annotator gives each issue, by position in the round; proposals everywhere
ANA = [
    {"issue_type": "fault", "stage": "runtime", "leaf_symptom": "cold start delay",
     "specific": True, "fix_patterns": ["keep instances warm"]},
    {"issue_type": "fault", "stage": "runtime", "leaf_symptom": "execution timeout",
     "specific": True, "fix_patterns": ["raise the timeout"]},
    {"issue_type": "how-to question", "howto_topic": "configuration"},
    {"issue_type": "fault", "stage": "deployment", "leaf_symptom": "quota exceeded",
     "specific": False, "fix_patterns": []},
    {"issue_type": "not relevant"},
    {"issue_type": "fault", "stage": "runtime", "leaf_symptom": "cold start",
     "specific": True, "fix_patterns": ["keep instances warm"]},
]  # fmt: skip
BEN = [
    {**ANA[0], "leaf_symptom": "cold start"},  # the same idea, another name
    ANA[1],
    ANA[2],
    {**ANA[3], "specific": True},
    ANA[4],
    ANA[5],
]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_new_study_runs_end_to_end_with_no_code_change(tmp_path, runner, db_url) -> None:
    made = runner.invoke(app, ["study", "new", "cloud-widgets", "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    study_file = tmp_path / "cloud-widgets.yaml"
    study_file.write_text(_select(study_file.read_text()))
    assert runner.invoke(app, ["study", "validate", str(study_file)]).exit_code == 0

    questions, answers, so_kept = _stack_overflow()
    issues, gh_kept = _github()
    with FakeStackExchange(questions, answers) as se, FakeGitHub(issues, {}) as gh:
        crawled_so = runner.invoke(
            app,
            ["crawl", "stackoverflow", "--db", db_url, "--study", str(study_file),
             "--api-url", se.url],
        )  # fmt: skip
        assert crawled_so.exit_code == 0, crawled_so.output
        # no --study from here on: the database remembers the study file it was made with
        crawled_gh = runner.invoke(app, ["crawl", "github", "--db", db_url, "--api-url", gh.url])
        assert crawled_gh.exit_code == 0, crawled_gh.output
    store = Store(db_url)
    with store.session() as session:
        rows = session.execute(select(Issue.source, Issue.native_id, Issue.framework)).all()
    assert {int(n) for s, n, _ in rows if s == "stackoverflow"} == so_kept
    assert {int(n) for s, n, _ in rows if s == "github"} == gh_kept
    assert {f for s, _, f in rows if s == "github"} == {"widget-runtime"}

    drawn = runner.invoke(
        app,
        ["round", "create", "--size", "6", "--annotators", "ana,ben", "--db", db_url, "-f", "json"],
    )
    assert drawn.exit_code == 0, drawn.output
    round_one = json.loads(drawn.stdout)
    assert (round_one["round"], round_one["annotators"], round_one["size"]) == (
        "round1",
        ["ana", "ben"],
        6,
    )
    with store.session() as session:
        in_round = session.scalars(
            select(RoundItem.issue_uid)
            .where(RoundItem.round == "round1")
            .order_by(RoundItem.position)
        ).all()
    assert round_one["issues"] == in_round
    taxonomy = load_taxonomy(study_file)
    for person, labels in (("ana", ANA), ("ben", BEN)):
        client = app_client(Settings(store, taxonomy, round="round1", annotator=person))
        page = client.get("/label")
        assert "widget-specific" in page.text and "Open coding" in page.text
        for fields in labels:
            uid = re.search(r'data-uid="([0-9a-f]{40})"', client.get("/label").text).group(1)
            saved = client.post("/api/save", json={"issue": uid, "fields": fields})
            assert saved.status_code == 200 and saved.json()["ok"], saved.text
    # ana's proposals are offered to ben's picker (one name, reused rather than retyped)
    later = app_client(Settings(store, taxonomy, round="round1", annotator="ben"))
    picker = json.loads(
        re.search(r'id="picker-data">(.*?)</script>', later.get(f"/label?issue={uid}").text).group(
            1
        )
    )
    assert {"runtime", "cold start delay"} <= {
        v for s in picker["symptoms"] if s.get("proposed") for v in (s["stage"], s["leaf"])
    }

    finalized = _json(
        runner.invoke(app, ["round", "finalize", "--round", "round1", "--db", db_url,
                            "--format", "json"])
    )  # fmt: skip
    agreeing = sum(a == b for a, b in zip(ANA, BEN, strict=True))
    assert finalized["finalized"] == agreeing and finalized["disagreeing (adjudicate)"] == 2
    judge = app_client(
        Settings(store, taxonomy, round="round1", annotator="carol", adjudicate=True)
    )
    with store.session() as session:
        order = [
            a.issue_uid
            for a in session.scalars(
                select(Annotation).where(Annotation.annotator == "ana").order_by(Annotation.id)
            )
        ]
    for position in (0, 3):  # carol sides with ana on both
        resolved = judge.post(
            "/api/resolve", json={"issue": order[position], "fields": ANA[position]}
        )
        assert resolved.status_code == 200, resolved.text  # fmt: skip

    stats = _json(runner.invoke(app, ["stats", "--db", db_url, "--format", "json"]))
    faults = [a for a in ANA if a["issue_type"] == "fault"]
    assert stats["study"] == "cloud-widgets"
    assert stats["totals"]["faults"] == len(faults)
    assert stats["totals"]["howto"] == sum(a["issue_type"] == "how-to question" for a in ANA)
    assert stats["leaf_symptoms"] == {
        f"{stage} / {leaf}": n
        for (stage, leaf), n in Counter((a["stage"], a["leaf_symptom"]) for a in faults).items()
    }
    assert stats["specific"]["label"] == "widget-specific"
    assert stats["specific"]["yes"] == sum(a["specific"] for a in faults)
    assert set(stats["proposed_categories"]["symptom"]) == {a["leaf_symptom"] for a in faults}
    agree = _json(runner.invoke(app, ["agree", "--db", db_url, "--format", "json"]))
    by_dimension = {row["dimension"]: row for row in agree}
    assert all(row["round"] == "round1" for row in agree) and by_dimension["issue_type"]["n"] == 6
    types_equal = sum(a["issue_type"] == b["issue_type"] for a, b in zip(ANA, BEN, strict=True))
    assert by_dimension["issue_type"]["agreement"] == pytest.approx(types_equal / 6)
    assert any(row["kappa"] is not None and row["kappa"] < 1 for row in agree)
    table = runner.invoke(app, ["stats", "--db", db_url])
    assert "Widget-specific faults" in table.output and "cold start delay" in table.output

    # the team settles on one name: every label using the other one is rewritten
    merged = _json(
        runner.invoke(app, ["taxonomy", "merge", "cold start delay", "cold start", "--db",
                            db_url, "--by", "team", "--format", "json"])
    )  # fmt: skip
    assert merged["dimension"] == "symptom"
    assert merged["annotations_rewritten"] == 1 + 1  # ana's label and carol's adjudication
    assert merged["final_labels_rewritten"] == 1
    after = _json(runner.invoke(app, ["stats", "--db", db_url, "--format", "json"]))
    assert after["leaf_symptoms"]["runtime / cold start"] == 2
    assert "runtime / cold start delay" not in after["leaf_symptoms"]
    with store.session() as session:
        history = session.scalars(select(LabelChange)).all()
        old_rows = session.scalars(
            select(Annotation).where(Annotation.leaf_symptom == "cold start delay")
        ).all()
        finals = session.scalars(select(FinalLabel.leaf_symptom)).all()
    assert {(h.table_name, h.before["leaf_symptom"]) for h in history} == {
        ("annotation", "cold start delay"),
        ("final_label", "cold start delay"),
    }
    assert len(old_rows) == 2 and "cold start delay" not in finals  # history kept, labels not
    with store.session() as session:  # the pickers no longer offer the merged-away name
        offered = rounds.proposals(session, taxonomy)["symptoms"]
    assert ("runtime", None, "cold start") in offered
    assert all(leaf != "cold start delay" for _, _, leaf in offered)
    agreed_after = _json(runner.invoke(app, ["agree", "--db", db_url, "--format", "json"]))
    symptom_after = next(r for r in agreed_after if r["dimension"] == "leaf_symptom")
    symptom_before = by_dimension["leaf_symptom"]
    assert symptom_after["agreement"] > symptom_before["agreement"]
    store.close()


def test_merge_refuses_what_it_cannot_do(runner, sqlite_url) -> None:
    Store(sqlite_url).close()  # an empty study's database
    unknown = runner.invoke(
        app, ["taxonomy", "merge", "no such thing", "hang", "--db", sqlite_url,
              "--study", "distributed-training"]
    )  # fmt: skip
    assert unknown.exit_code == 1 and "no label and no category" in unknown.output
    typo = runner.invoke(
        app, ["taxonomy", "merge", "hnag", "hang", "--db", sqlite_url, "--dimension", "symptom"]
    )
    assert typo.exit_code == 1 and "no label and no symptom of the study is named 'hnag'" in (
        typo.output
    )
    closed = runner.invoke(
        app, ["taxonomy", "merge", "hang", "brand new name", "--db", sqlite_url,
              "--dimension", "symptom"]
    )  # fmt: skip
    assert closed.exit_code == 1 and "add it there first" in closed.output
    same = runner.invoke(app, ["taxonomy", "merge", "hang", "hang", "--db", sqlite_url])
    assert same.exit_code == 1 and "two different" in same.output


def test_merge_asks_which_dimension_when_a_name_has_two(tmp_path, sqlite_url) -> None:
    made = new_study("open-notes", tmp_path)
    taxonomy = load_taxonomy(made.study_file)
    store = Store(sqlite_url)
    with store.session() as session:
        session.add(Issue(uid="u1", source="github", origin="o", native_id="1"))
        session.flush()
        session.add(FinalLabel(issue_uid="u1", issue_type="fault", stage="setup",
                               leaf_symptom="setup", fix_patterns=["setup"]))  # fmt: skip
    with store.session() as session, pytest.raises(MergeError, match="--dimension"):
        merge_categories(session, taxonomy, "setup", "configuration")
    with store.session() as session:
        result = merge_categories(session, taxonomy, "setup", "configuration", "fix_pattern")
    assert result.final_labels == 1
    with store.session() as session:
        final = session.scalars(select(FinalLabel)).one()
        change = session.scalars(select(LabelChange)).one()
    assert (final.stage, final.leaf_symptom, final.fix_patterns) == (
        "setup",
        "setup",
        ["configuration"],
    )
    assert change.before["fix_patterns"] == ["setup"] and change.new_value == "configuration"
    store.close()
