"""The label suggester: features, honest cross-validation, the model file, predictions."""

from __future__ import annotations

import json
import pickle
import random
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from bench.labelled_corpus import generate, signal_words, write_files
from issueminer.analyse.classify import (
    Document,
    ModelFileError,
    classify_unlabelled,
    cross_validate,
    featurize,
    get_target,
    load_examples,
    load_model,
    predict,
    save_model,
    suggestions,
    systems_for,
    tokenize,
    train_model,
    uncertainty_order,
    unlabelled_documents,
)
from issueminer.analyse.classify.evaluation import fold_indices
from issueminer.analyse.classify.features import signals
from issueminer.analyse.classify.systems import decode, make_features, max_marginal, transform
from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels
from issueminer.collect.selection import tokens
from issueminer.store import Issue, Prediction, Store
from tests.conftest import SAMPLE
from tests.helpers import dump

GENERATED_SIZE = 600  # large enough for stable metrics, small enough for a quick suite
GENERATED_UNLABELLED = 40


def _sample_unlabelled() -> int:
    """The sample's issues without any final label, counted from its two files."""
    import csv

    with (SAMPLE / "labels.csv").open(newline="", encoding="utf-8") as handle:
        final = {row["url"] for row in csv.DictReader(handle) if row["kind"] == "final"}
    lines = (SAMPLE / "issues.jsonl").read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line)["url"] not in final for line in lines if line.strip())


SAMPLE_UNLABELLED = _sample_unlabelled()


def _import(store: Store, directory: Path, taxonomy) -> Store:
    import_issues(store, directory / "issues.jsonl", taxonomy)
    import_labels(store, directory / "labels.csv", taxonomy)
    return store


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory, taxonomy) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sample') / 'sample.db'}"
    _import(Store(url), SAMPLE, taxonomy).close()
    return url


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory, taxonomy) -> str:
    directory = tmp_path_factory.mktemp("generated")
    write_files(generate(GENERATED_SIZE, unlabelled=GENERATED_UNLABELLED), directory)
    url = f"sqlite:///{directory / 'generated.db'}"
    _import(Store(url), directory, taxonomy).close()
    return url


def _examples(url: str, target: str, taxonomy):
    store = Store(url)
    with store.session() as session:
        examples = load_examples(session, get_target(target), taxonomy)
    store.close()
    return examples


def _evaluate(examples, target: str, taxonomy, labels=None):
    spec = get_target(target)
    return cross_validate(
        featurize(examples.documents),
        labels if labels is not None else examples.labels,
        spec,
        lambda: systems_for(spec, taxonomy),
        folds=5,
        seed=0,
    )


# ---- features ------------------------------------------------------------------------------
def test_fast_tokenizer_gives_exactly_spacys_tokens() -> None:
    texts = [json.loads(line)["body"] for line in (SAMPLE / "issues.jsonl").open()]
    texts += [issue.body for issue in generate(30)]
    texts.append(
        "can't  don't\tU.S. e.g. 'quoted' (parens) a/b x--y :) 3.14 hvd.init() NCCL_DEBUG=INFO"
    )
    for text in texts:
        assert tokenize(text) == tokens(text)


def test_error_signals_are_kept_and_log_noise_dropped(taxonomy) -> None:
    noise = [f"[2023-01-01 10:00:{i:02d}] INFO step {i} throughput quxnoise" for i in range(50)]
    log = [
        *noise,
        "Traceback (most recent call last):",
        "torch.distributed.DistBackendError: NCCL error",
    ]
    body = "My job dies with CUDA out of memory on rank 3.\n\n```\n" + "\n".join(log) + "\n```\n"
    document = Document("Segfault in allreduce", body)
    words, grams, found = featurize([document], taxonomy.signals).iloc[0][:3]
    found = found.split()
    assert {"signal_out_of_memory", "signal_nccl_error", "signal_segfault"} <= set(found)
    # the library signal is the study file's, not the package's
    generic = featurize([document]).iloc[0]["signals"].split()
    assert "signal_nccl_error" not in generic and "signal_segfault" in generic
    assert "exception_distbackenderror" in found
    assert "quxnoise" not in words and "quxnoise" not in found  # the log's noise lines
    assert "traceback" not in words  # code stays out of the prose words
    assert "rank" in words and "_all" in grams.split()
    assert signals("How do I set the NCCL socket interface?", []) == ["signal_none"]


def test_fast_transform_equals_scikit_learns(generated_db, taxonomy) -> None:
    examples = _examples(generated_db, "symptom", taxonomy)
    frame = featurize(examples.documents)
    features = make_features().fit(frame.iloc[:200])
    expected, fast = features.transform(frame.iloc[200:]), transform(features, frame.iloc[200:])
    assert fast.shape == expected.shape and fast.nnz == expected.nnz
    assert abs(fast - expected).max() == 0


# ---- honest measurement --------------------------------------------------------------------
@pytest.mark.parametrize("target", ["issue_type", "stage"])
def test_model_beats_both_baselines_on_the_sample(sample_db, taxonomy, target) -> None:
    evaluation = _evaluate(_examples(sample_db, target, taxonomy), target, taxonomy)
    model, baselines = evaluation.model, evaluation.baselines
    assert model.macro_f1 > baselines["majority"].macro_f1
    assert model.macro_f1 > baselines["keywords"].macro_f1


@pytest.mark.parametrize(
    ("target", "floor"),
    [("issue_type", 0.85), ("stage", 0.75), ("symptom", 0.7), ("fix_pattern", 0.45)],
)
def test_model_beats_both_baselines_on_the_generated_corpus(
    generated_db, taxonomy, target, floor
) -> None:
    evaluation = _evaluate(_examples(generated_db, target, taxonomy), target, taxonomy)
    best_baseline = max(r.macro_f1 for r in evaluation.baselines.values())
    assert evaluation.model.macro_f1 > floor > best_baseline
    assert evaluation.model.top3_accuracy >= evaluation.model.accuracy


def test_shuffled_labels_score_at_chance(generated_db, taxonomy) -> None:
    examples = _examples(generated_db, "stage", taxonomy)
    shuffled = list(examples.labels)
    random.Random(3).shuffle(shuffled)
    blind = _evaluate(examples, "stage", taxonomy, labels=shuffled)
    chance = 1 / len(blind.labels)  # macro-F1 of guessing, whatever the label shares
    # the same issues with their true labels score above 0.75 (the test above)
    assert abs(blind.model.macro_f1 - chance) < 0.1


def test_no_system_is_ever_fitted_on_its_test_fold(generated_db, taxonomy) -> None:
    examples = _examples(generated_db, "issue_type", taxonomy)
    frame = featurize(examples.documents)
    frame["row"] = range(len(frame))
    fitted_on: list[set[int]] = []
    scored: list[set[int]] = []

    class Spy:
        classes_ = sorted(set(examples.labels))

        def fit(self, part, y):
            fitted_on.append(set(part["row"]))
            return self

        def scores(self, part):
            scored.append(set(part["row"]))
            return np.ones((len(part), len(self.classes_)))

    told = []
    cross_validate(
        frame,
        examples.labels,
        get_target("issue_type"),
        lambda: {"model": Spy()},
        4,
        on_progress=lambda done, total: told.append((done, total, len(scored))),
    )
    assert told == [(1, 4, 1), (2, 4, 2), (3, 4, 3), (4, 4, 4)]  # after each fold's scoring
    assert all(not (train & test) for train, test in zip(fitted_on, scored, strict=True))
    assert sorted(i for test in scored for i in test) == list(range(len(frame)))
    splits = fold_indices(examples.labels, 4, seed=0)
    assert all(not set(train) & set(test) for train, test in splits)


# ---- hierarchy and multi-label -------------------------------------------------------------
def test_path_decoding_keeps_a_leaf_under_its_stage() -> None:
    stages, leaves = ["A", "B"], ["x", "y", "z"]
    paths = [("A", None, "y"), ("A", None, "z"), ("B", None, "x"), ("B", None, "z")]
    stage_p, leaf_p = np.array([[0.6, 0.4]]), np.array([[0.5, 0.3, 0.2]])
    # apart, the models say stage A and leaf x, which is not under A; jointly: B / x
    joint = decode(stage_p, stages, leaf_p, leaves, paths, [1.0] * 4)
    assert paths[int(joint.argmax())] == ("B", None, "x")
    stage_scores = max_marginal(joint, [p[0] for p in paths], stages)
    leaf_scores = max_marginal(joint, [p[2] for p in paths], leaves)
    assert stages[stage_scores.argmax()] == "B" and leaves[leaf_scores.argmax()] == "x"


def test_symptom_predictions_sit_on_the_taxonomy_under_their_stage(generated_db, taxonomy) -> None:
    examples = _examples(generated_db, "symptom", taxonomy)
    model = train_model(
        examples.documents, examples.labels, get_target("symptom"), taxonomy, folds=0
    )
    unseen = [
        Document(i.title, i.body, i.source, str(n)) for n, i in enumerate(generate(60, seed=99))
    ]
    by_issue: dict[str, dict[str, str]] = {}
    for p in predict(model, unseen):
        by_issue.setdefault(p.uid, {})[p.field] = p.label
    assert len(by_issue) == len(unseen)
    for fields in by_issue.values():
        path = (fields["stage"], fields.get("inner_category"), fields["leaf_symptom"])
        assert taxonomy.on_tree(*path), path


def test_fix_patterns_are_multi_label(generated_db, taxonomy) -> None:
    examples = _examples(generated_db, "fix_pattern", taxonomy)
    assert any(len(label) > 1 for label in examples.labels)
    target = get_target("fix_pattern")
    model = train_model(examples.documents, examples.labels, target, taxonomy, folds=0)
    predicted = predict(model, examples.documents[:150])
    sets = [p.label.split(" & ") for p in predicted]
    assert any(len(s) > 1 for s in sets) and all(len(s) >= 1 for s in sets)
    kind, value = model.metadata["decision_rule"]  # chosen by inner cross-validation
    assert kind in ("threshold", "mass")
    for p, chosen in zip(predicted, sets, strict=True):
        assert set(p.probabilities) == set(model.metadata["labels"])
        ranked = sorted(p.probabilities.values(), reverse=True)
        assert [p.probabilities[c] for c in chosen] == ranked[: len(chosen)]  # the likeliest
        if kind == "threshold":
            assert all(p.probabilities[c] >= value - 1e-4 for c in chosen[1:])
            assert len(chosen) == 1 or ranked[len(chosen)] < value + 1e-4
    assert any(sum(p.probabilities.values()) > 1.2 for p in predicted)  # one yes/no per pattern


# ---- the model file ------------------------------------------------------------------------
def _tamper(path: Path, out: Path) -> Path:
    """The same model, one object swapped for subprocess.Popen in its schema."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "schema.json":
                text = data.decode().replace('"LogisticRegression"', '"Popen"', 1)
                data = text.replace('"sklearn.linear_model._logistic"', '"subprocess"', 1).encode()
            target.writestr(item, data)
    return out


def test_model_file_round_trips_and_refuses_untrusted_content(
    sample_db, taxonomy, tmp_path, runner
) -> None:
    examples = _examples(sample_db, "stage", taxonomy)
    told = []
    model = train_model(
        examples.documents,
        examples.labels,
        get_target("stage"),
        taxonomy,
        folds=3,
        on_progress=lambda done, total: told.append((done, total)),
    )
    assert told == [(1, 4), (2, 4), (3, 4), (4, 4)]  # three folds, then the final fit
    path = save_model(model, tmp_path / "models")
    assert path.name == f"{model.model_id}.skops"
    loaded = load_model(path)
    assert loaded.metadata == model.metadata
    meta = loaded.metadata
    assert meta["labels"] == sorted({label for label in examples.labels})
    assert len(meta["training_set"]["sha256"]) == 64 and meta["training_set"]["n"] == 30
    assert {"scikit-learn", "numpy", "spacy", "skops"} <= set(meta["versions"])
    assert set(meta["metrics"]) >= {"model", "majority", "keywords", "folds"}
    assert meta["target"] == "stage" and meta["created_at"]
    assert predict(loaded, examples.documents) == predict(model, examples.documents)

    tampered = _tamper(path, tmp_path / "tampered.skops")
    with pytest.raises(ModelFileError, match="untrusted types.*subprocess.Popen"):
        load_model(tampered)
    pickled = tmp_path / "pickled.skops"
    pickled.write_bytes(pickle.dumps(model))
    with pytest.raises(ModelFileError, match="not an issueminer model"):
        load_model(pickled)
    result = runner.invoke(app, ["classify", "--db", sample_db, "--model", str(tampered)])
    assert result.exit_code == 1 and "refusing to load" in result.output
    with Store(sample_db).session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0


# ---- predictions in the store --------------------------------------------------------------
def _tables(runner, url: str) -> tuple[str, str]:
    stats = runner.invoke(app, ["stats", "--db", url, "--format", "json"])
    agree = runner.invoke(app, ["agree", "--db", url, "--format", "json"])
    assert stats.exit_code == 0 and agree.exit_code == 0, stats.output + agree.output
    return stats.output, agree.output


def test_classify_writes_predictions_only_and_changes_no_table(
    store, taxonomy, runner, tmp_path
) -> None:
    _import(store, SAMPLE, taxonomy)
    url = store.engine.url.render_as_string(hide_password=False)
    before, labels_before = _tables(runner, url), dump(store, skip_tables={"prediction"})
    trained = runner.invoke(
        app, ["train", "--db", url, "--target", "symptom", "--folds", "0", "--out", str(tmp_path)]
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        app,
        ["classify", "--db", url, "--target", "symptom", "--models", str(tmp_path)]
        + ["--order", "uncertainty", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    queue = json.loads(result.stdout)["issues"]
    assert len(queue) == SAMPLE_UNLABELLED
    uncertain = [row["uncertainty"] for row in queue]
    assert uncertain == sorted(uncertain, reverse=True)
    with store.session() as session:
        rows = session.scalars(select(Prediction)).all()
        fields = Counter(row.target for row in rows)
        assert fields["leaf_symptom"] == fields["stage"] == SAMPLE_UNLABELLED
        assert set(fields) <= {"leaf_symptom", "stage", "inner_category"}
        uid = queue[0]["uid"]
        top = suggestions(session, uid, target="leaf")
        assert len(top) == 3 and top[0][0] == queue[0]["label"]
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        assert suggestions(session, "no-such-issue") == []
        order = uncertainty_order(session, ["unpredicted", *[row["uid"] for row in queue]])
        assert order[-1] == "unpredicted" and len(order) == SAMPLE_UNLABELLED + 1
    assert _tables(runner, url) == before  # stats and agree ignore predictions
    assert dump(store, skip_tables={"prediction"}) == labels_before


def test_uncertainty_order_puts_the_least_certain_first(tmp_path, taxonomy) -> None:
    store = Store(f"sqlite:///{tmp_path / 'queue.db'}")
    import_issues(store, SAMPLE / "issues.jsonl", taxonomy)
    with store.session() as session:
        sure, unsure, between, unpredicted = session.scalars(select(Issue.uid).limit(4)).all()
        shares = {sure: (0.9, 0.1), unsure: (0.5, 0.5), between: (0.6, 0.4)}
        for uid, (p, q) in shares.items():
            session.add(
                Prediction(
                    issue_uid=uid,
                    model_id="m2",
                    target="stage",
                    label="a",
                    probability=p,
                    probabilities={"a": p, "b": q},
                )
            )
        old = datetime(2020, 1, 1, tzinfo=UTC)  # an older model was unsure of `sure`
        session.add(
            Prediction(
                issue_uid=sure,
                model_id="m1",
                target="stage",
                label="a",
                probability=0.5,
                probabilities={"a": 0.5, "b": 0.5},
                created_at=old,
            )
        )
        session.add(
            Prediction(
                issue_uid=sure,
                model_id="m2",
                target="fix_patterns",
                label="x",
                probability=0.55,
                probabilities={"x": 0.55, "y": 0.1},
            )
        )
        session.flush()
        uids = [unpredicted, sure, between, unsure]
        assert uncertainty_order(session, uids, "stage") == [unsure, between, sure, unpredicted]
        # fix patterns: each pattern is a yes/no question; 0.55 is nearly a coin flip
        assert uncertainty_order(session, uids, "fix_pattern")[0] == sure
        assert suggestions(session, sure, target="stage") == [("a", 0.9), ("b", 0.1)]
    store.close()


def _export(runner, url: str, out: Path) -> dict[str, bytes]:
    result = runner.invoke(app, ["export", "--db", url, "--out", str(out), "--sheets", "csv"])
    assert result.exit_code == 0, result.output
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_classifying_again_replaces_predictions_and_exports_ignore_them(
    sample_db, taxonomy, runner, tmp_path
) -> None:
    examples = _examples(sample_db, "issue_type", taxonomy)
    target = get_target("issue_type")
    model = train_model(examples.documents, examples.labels, target, taxonomy, folds=0)
    exported = _export(runner, sample_db, tmp_path / "before")
    store = Store(sample_db)
    with store.session() as session:
        assert len(unlabelled_documents(session)) == SAMPLE_UNLABELLED
        told = []
        first = classify_unlabelled(session, model, on_progress=lambda *step: told.append(step))
        again = classify_unlabelled(session, model)
        count = session.scalar(select(func.count()).where(Prediction.model_id == model.model_id))
    assert first == again and count == SAMPLE_UNLABELLED
    assert told == [(SAMPLE_UNLABELLED, SAMPLE_UNLABELLED)]  # one batch here
    assert _export(runner, sample_db, tmp_path / "after") == exported
    with store.session() as session:
        session.execute(Prediction.__table__.delete())
    store.close()


# ---- the commands --------------------------------------------------------------------------
def test_evaluate_json_md_csv_and_the_figure(
    generated_db, sample_db, taxonomy, runner, tmp_path
) -> None:
    figure = tmp_path / "confusion.png"
    args = ["evaluate", "--db", generated_db, "--target", "stage", "--folds", "4"]
    result = runner.invoke(app, [*args, "--seed", "2", "--figure", str(figure), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["target"], data["folds"], data["seed"]) == ("stage", 4, 2)
    assert data["n"] == len(_examples(generated_db, "stage", taxonomy).labels)
    keys = {"accuracy", "macro_f1", "top3_accuracy", "weighted_f1"}
    assert keys <= set(data["model"])
    assert all(keys <= set(data["baselines"][b]) for b in ("majority", "keywords"))
    assert len(data["model"]["confusion"]) == len(data["labels"]) == 4
    per_class = data["model"]["per_class"]
    assert sum(row["support"] for row in per_class) == data["n"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000

    args = ["evaluate", "--db", sample_db, "--target", "stage", "--folds", "3"]  # quicker
    markdown = runner.invoke(app, [*args, "--no-figure"])
    assert markdown.exit_code == 0 and "| model |" in markdown.output
    assert "| keywords |" in markdown.output and "## Per label" in markdown.output
    table = runner.invoke(app, [*args, "--no-figure", "--format", "csv"])
    lines = table.output.splitlines()
    assert lines[0].startswith("system,accuracy,macro_f1") and len(lines) == 4
    per_label = runner.invoke(app, [*args, "--no-figure", "--format", "csv", "--per-class"])
    assert per_label.output.splitlines()[0].startswith("label,support,precision,recall,f1")


def test_the_svm_classifier_also_beats_both_baselines(generated_db, runner) -> None:
    args = ["evaluate", "--db", generated_db, "--target", "stage", "--folds", "3"]
    result = runner.invoke(app, [*args, "--classifier", "svm", "--no-figure", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["classifier"] == "svm"
    assert data["model"]["macro_f1"] > max(b["macro_f1"] for b in data["baselines"].values())
    unknown = runner.invoke(app, [*args, "--classifier", "forest"])
    assert unknown.exit_code == 2


def test_train_and_classify_formats(generated_db, sample_db, runner, tmp_path) -> None:
    args = ["--db", generated_db, "--target", "howto_topic"]
    trained = runner.invoke(
        app, ["train", *args, "--folds", "3", "--out", str(tmp_path), "--format", "json"]
    )
    assert trained.exit_code == 0, trained.output
    meta = json.loads(trained.stdout)
    assert Path(meta["path"]).is_file() and meta["target"] == "howto_topic"
    assert meta["metrics"]["model"]["macro_f1"] > meta["metrics"]["keywords"]["macro_f1"]
    csv_out = runner.invoke(
        app, ["train", "--db", sample_db, "--out", str(tmp_path / "sample"), "-f", "csv"]
    )
    lines = csv_out.stdout.splitlines()
    assert lines[0] == "system,accuracy,macro_f1,weighted_f1,top3_accuracy" and len(lines) == 4

    classify = ["classify", *args, "--models", str(tmp_path), "--limit", "5"]
    listed = runner.invoke(app, [*classify, "--format", "csv"])
    assert listed.exit_code == 0, listed.output
    rows = listed.output.splitlines()
    assert rows[0] == "uid,url,title,label,probability,uncertainty" and len(rows) == 6
    markdown = runner.invoke(app, classify)
    assert "5 issues predicted by howto_topic-" in markdown.output
    other = runner.invoke(
        app, ["classify", "--db", generated_db, "--target", "stage", "--model", meta["path"]]
    )
    assert other.exit_code == 1 and "predicts howto_topic, not stage" in other.output
    missing = runner.invoke(
        app, ["classify", "--db", generated_db, "--models", str(tmp_path / "x")]
    )
    assert missing.exit_code == 1 and "no issue_type model" in missing.output
    unknown = runner.invoke(app, ["evaluate", "--db", generated_db, "--target", "mood"])
    assert unknown.exit_code == 1 and "unknown target 'mood'" in unknown.output


def test_classifier_commands_refuse_bad_input_first(sample_db, runner, tmp_path) -> None:
    """An unwritable figure before the cross-validation, a misspelt target before looking
    for a model, and a zip that only looks like a model file: one line each."""
    figure = tmp_path / "no-such-folder" / "confusion.png"
    refused = runner.invoke(app, ["evaluate", "--db", sample_db, "--figure", str(figure)])
    assert refused.exit_code == 2 and "no folder" in refused.output
    bogus = runner.invoke(app, ["classify", "--db", sample_db, "--target", "bogus"])
    assert bogus.exit_code == 1 and "unknown target 'bogus'" in bogus.output
    fake = tmp_path / "fake.skops"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("schema.json", "{}")
    loaded = runner.invoke(app, ["classify", "--db", sample_db, "--model", str(fake)])
    assert loaded.exit_code == 1 and "is not an issueminer model file" in loaded.output


def test_generated_labels_follow_their_signal_words() -> None:
    issues = generate(200, seed=5)
    faults = [i for i in issues if i.labels["issue_type"] == "fault"]
    carried = [any(w in i.title + i.body for w in signal_words(i.labels["stage"])) for i in faults]
    assert 0.7 < sum(carried) / len(faults) < 0.98  # mostly, never always
    assert generate(20, seed=5)[:20] == issues[:20]
