"""Honest splits from the command line: train on part of the final labels, compare the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels
from issueminer.store import FinalLabel, Issue, Prediction, Store
from tests.thread_corpus import generate, write_files

THREADS = 160


@pytest.fixture
def split_db(tmp_path, taxonomy) -> str:
    write_files(generate(THREADS, seed=21), tmp_path)
    url = f"sqlite:///{tmp_path / 'split.db'}"
    store = Store(url)
    import_issues(store, tmp_path / "issues.jsonl", taxonomy)
    import_labels(store, tmp_path / "labels.csv", taxonomy)
    store.close()
    return url


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_holdout_trains_on_the_rest_and_classify_compares_the_held_out(
    split_db, runner, tmp_path
) -> None:
    models = tmp_path / "models"
    args = ["train", "--db", split_db, "--target", "stage", "--folds", "0", "--out", str(models)]
    meta = _json(runner.invoke(app, [*args, "--holdout", "0.25", "--seed", "3", "-f", "json"]))
    store = Store(split_db)
    with store.session() as session:
        staged = session.scalar(
            select(func.count(func.distinct(FinalLabel.issue_uid))).where(
                FinalLabel.stage.is_not(None)
            )
        )
        truth = dict(session.execute(select(FinalLabel.issue_uid, FinalLabel.stage)).all())
    held = meta["held_out"]
    assert len(held) == round(0.25 * staged) and meta["training_set"]["n"] == staged - len(held)
    again = _json(runner.invoke(app, [*args, "--holdout", "0.25", "--seed", "3", "-f", "json"]))
    assert again["held_out"] == held  # the seed decides
    other = _json(runner.invoke(app, [*args, "--holdout", "0.25", "--seed", "4", "-f", "json"]))
    assert other["held_out"] != held

    classify = ["classify", "--db", split_db, "--model", meta["path"], "--include-labelled"]
    data = _json(runner.invoke(app, [*classify, "--format", "json"]))
    with store.session() as session:
        issues = session.scalar(select(func.count()).select_from(Issue))
        stored = dict(
            session.execute(
                select(Prediction.issue_uid, Prediction.label).where(Prediction.target == "stage")
            ).all()
        )
    store.close()
    assert len(data["issues"]) == issues  # labelled ones too
    compared = data["held_out"]
    assert compared["n"] == len(held) and {r["uid"] for r in compared["issues"]} == set(held)
    agreeing = sum(stored[uid] == truth[uid] for uid in held)  # counted from the store
    assert compared["accuracy"] == pytest.approx(agreeing / len(held))
    assert compared["accuracy"] > 0.6  # the resolutions name the stage
    markdown = runner.invoke(app, classify)
    assert f"held-out issues: {len(held)}, predicted as finally labelled: " in markdown.output


def test_exclude_labels_leaves_the_named_issues_out(split_db, runner, tmp_path) -> None:
    store = Store(split_db)
    with store.session() as session:
        labelled = session.execute(
            select(Issue.uid, Issue.url)
            .join(FinalLabel, FinalLabel.issue_uid == Issue.uid)
            .where(FinalLabel.issue_type.is_not(None))
            .order_by(Issue.uid)
        ).all()
    store.close()
    named = tmp_path / "exclude.txt"
    # by URL and by uid, with a comment and a blank line
    named.write_text(
        f"# left out\n{labelled[0].url}\n\n{labelled[1].uid}\n{labelled[2].url}\n", "utf-8"
    )
    args = ["train", "--db", split_db, "--folds", "0", "--out", str(tmp_path / "m")]
    meta = _json(runner.invoke(app, [*args, "--exclude-labels", str(named), "-f", "json"]))
    assert meta["held_out"] == sorted(row.uid for row in labelled[:3])
    assert meta["training_set"]["n"] == len(labelled) - 3
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("https://github.com/a/b/issues/1\n", "utf-8")
    refused = runner.invoke(app, [*args, "--exclude-labels", str(unknown)])
    assert refused.exit_code == 1 and "without a final label here" in refused.output
    bad = runner.invoke(app, [*args, "--holdout", "1.5"])
    assert bad.exit_code == 1 and "between 0 and 1" in bad.output
    missing = runner.invoke(app, [*args, "--exclude-labels", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 1 and "cannot be read" in missing.output
    assert len(list((tmp_path / "m").glob("*.skops"))) == 1  # refusals save no model


def test_classify_output_columns_are_unchanged(split_db, runner, tmp_path) -> None:
    """Helper tools read `classify`'s table: its columns stay as they were."""
    trained = runner.invoke(
        app, ["train", "--db", split_db, "--folds", "0", "--out", str(tmp_path), "-f", "json"]
    )
    path = _json(trained)["path"]
    table = runner.invoke(
        app, ["classify", "--db", split_db, "--model", path, "--include-labelled", "-f", "csv"]
    )
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0] == "uid,url,title,label,probability,uncertainty"
    assert Path(path).is_file()


def test_learning_curve_table_json_and_figure(split_db, runner, tmp_path) -> None:
    figure = tmp_path / "curve.png"
    args = ["evaluate", "--db", split_db, "--target", "symptom", "--folds", "3"]
    data = _json(
        runner.invoke(app, [*args, "--learning-curve", "--figure", str(figure), "-f", "json"])
    )
    rows = data["rows"]
    assert [r["share"] for r in rows] == [0.2, 0.4, 0.6, 0.8, 1.0]
    sizes = [r["train_issues"] for r in rows]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert {"model", "majority", "keywords"} <= set(rows[0])
    assert rows[-1]["model"] > rows[0]["model"]  # more labelled threads, better model
    assert rows[-1]["model"] > max(rows[-1]["majority"], rows[-1]["keywords"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the full share is the ordinary cross-validation
    full = _json(runner.invoke(app, [*args, "--no-figure", "-f", "json"]))
    assert rows[-1]["model"] == pytest.approx(full["model"]["macro_f1"])
    table = runner.invoke(app, [*args, "--learning-curve", "--no-figure", "-f", "csv"])
    assert table.output.splitlines()[0] == "share,train_issues,model,majority,keywords"


def test_calibration_is_reported_with_a_reliability_figure(split_db, runner, tmp_path) -> None:
    figure = tmp_path / "reliability.png"
    args = ["evaluate", "--db", split_db, "--target", "stage", "--folds", "3", "--no-figure"]
    data = _json(runner.invoke(app, [*args, "--reliability", str(figure), "-f", "json"]))
    model = data["model"]
    bins = model["reliability"]
    assert sum(b["n"] for b in bins) == data["n"]  # one top-label claim per issue
    right = sum(b["right"] * b["n"] for b in bins) / data["n"]
    assert right == pytest.approx(model["accuracy"])  # a claim is right when the top label is
    ece = sum(b["n"] * abs(b["claimed"] - b["right"]) for b in bins) / data["n"]
    assert model["ece"] == pytest.approx(ece)
    assert 0 <= model["brier"] < data["baselines"]["majority"]["brier"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fixes = _json(
        runner.invoke(
            app,
            ["evaluate", "--db", split_db, "--target", "fix_pattern", "--folds", "3"]
            + ["--no-figure", "-f", "json"],
        )
    )
    model = fixes["model"]
    assert {"micro_f1", "predicted_per_issue", "true_per_issue", "brier", "ece"} <= set(model)
    assert model["true_per_issue"] >= 1.0
    assert abs(model["predicted_per_issue"] - model["true_per_issue"]) < 0.3
    markdown = runner.invoke(app, [*args])
    assert "## Calibration and label counts" in markdown.output and "| brier" in markdown.output


def test_an_exclusion_list_with_a_byte_order_mark_and_indented_comments(tmp_path) -> None:
    from issueminer.analyse.classify.splits import read_exclusions

    listed = tmp_path / "exclude.txt"
    # as a Windows editor saves it: a byte-order mark, CRLF line ends, an indented comment
    listed.write_bytes("\ufeffgh:a/b#1\r\n   # not an issue\r\nhttps://x/y/issues/2\r\n".encode())
    assert read_exclusions(listed) == {"gh:a/b#1", "https://x/y/issues/2"}
