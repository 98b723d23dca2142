"""`issueminer estimate`, `round create --for-estimate` and then-and-now on real SQLite files.

A fully labelled population must give exactly `stats`' counts with zero width; a
population of unlabelled issues with predictions and a random labelled sample drawn by
`round create --for-estimate` gets prediction-powered intervals around the true counts;
without a sample, a real classifier's cross-validated errors correct its counts. Then and
now: expected shares, differences and p-values are computed here from `stats` of the
"then" database and the "now" estimate's intervals (scipy), and the report opens in
headless Chromium with one figure (error bars) per table.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import norm
from sqlalchemy import func, select, update

from issueminer.cli.main import app
from issueminer.store import FinalLabel, Issue, LabelingRound, Prediction, RoundItem, Store

STUDY = "distributed-training"
STAGES = ["package build & import", "communication setup", "data and model preparation"]


def _issue(i: int, framework: str, year: int) -> Issue:
    return Issue(
        uid=f"u{i:05d}",
        source="github",
        origin=f"{framework}/{framework}",
        native_id=str(i),
        url=f"https://github.com/{framework}/{framework}/issues/{i}",
        framework=framework,
        title=f"issue {i}",
        body="it fails",
        created_at=datetime(year, 3, 1, tzinfo=UTC),
    )


def _truth(rng: np.random.Generator, n: int) -> list[dict]:
    """Labels of n issues: 60% faults over three stages, the rest how-to questions."""
    rows = []
    for _ in range(n):
        if rng.random() < 0.6:
            stage = STAGES[rng.choice(3, p=[0.5, 0.3, 0.2])]
            rows.append(
                {
                    "issue_type": "fault",
                    "stage": stage,
                    "specific": bool(rng.random() < 0.7),
                    "fix_patterns": ["fix version"] if rng.random() < 0.4 else [],
                }
            )
        else:
            rows.append(
                {"issue_type": "how-to question", "howto_topic": "environment configuration"}
            )
    return rows


def _label(uid: str, row: dict) -> FinalLabel:
    return FinalLabel(issue_uid=uid, resolved_by="test", **row)


def _predict(rng: np.random.Generator, row: dict) -> dict[str, str]:
    """A classifier that calls 25% of how-to questions faults and misplaces stages."""
    if row["issue_type"] == "fault":
        issue_type = "fault" if rng.random() < 0.9 else "how-to question"
    else:
        issue_type = "fault" if rng.random() < 0.25 else "how-to question"
    stage = row.get("stage") or STAGES[0]
    if rng.random() < 0.3:
        stage = STAGES[0]
    return {"issue_type": issue_type, "stage": stage, "howto_topic": "environment configuration"}


@pytest.fixture
def labelled_db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'labelled.db'}"
    rng = np.random.default_rng(1)
    store = Store(url)
    with store.session() as session:
        for i, row in enumerate(_truth(rng, 120)):
            session.add(_issue(i, "deepspeed", 2024))
            session.flush()
            session.add(_label(f"u{i:05d}", row))
    store.close()
    return url


def _invoke(runner, *args: str) -> dict:
    result = runner.invoke(app, [*args, "--study", STUDY, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_fully_labelled_population_gives_stats_counts_with_zero_width(runner, labelled_db):
    stats = _invoke(runner, "stats", "--db", labelled_db)
    found = _invoke(runner, "estimate", "--db", labelled_db)
    tables = found["tables"]
    assert found["population"]["unlabelled"] == 0
    for table in tables.values():
        assert table["estimator"] == "counted on final labels"
        for row in table["rows"]:
            assert row["count"]["low"] == row["count"]["estimate"] == row["count"]["high"]
            assert row["share"]["low"] == row["share"]["high"]

    def counts(name: str) -> dict[str, float]:
        return {r["category"]: r["count"]["estimate"] for r in tables[name]["rows"]}

    assert counts("issue_types") == {
        "fault": stats["totals"]["faults"],
        "how-to question": stats["totals"]["howto"],
    }
    assert counts("stages") == stats["stages"]
    assert counts("fix_patterns") == stats["fix_patterns"]
    assert counts("howto_topics") == stats["howto_topics"]
    assert counts("specific")["yes"] == stats["specific"]["yes"]
    shares = {r["category"]: r["share"]["estimate"] for r in tables["specific"]["rows"]}
    assert shares["yes"] == pytest.approx(stats["specific"]["share"], abs=1e-4)


def test_the_tosem_study_estimated_on_its_labels_is_its_stats(runner, tosem_dir, tmp_path):
    """The real study: every table of the estimate over its labelled issues equals stats."""
    url = f"sqlite:///{tmp_path / 'tosem.db'}"
    imported = runner.invoke(app, ["import", "replication", str(tosem_dir), "--db", url])
    assert imported.exit_code == 0, imported.output
    stats = _invoke(runner, "stats", "--db", url)
    found = _invoke(runner, "estimate", "--db", url, "--labelled-only")
    assert found["population"]["unlabelled"] == 0
    tables = found["tables"]

    def counts(name: str) -> dict[str, float]:
        return {r["category"]: r["count"]["estimate"] for r in tables[name]["rows"]}

    for name in ("stages", "inner_categories", "leaf_symptoms", "fix_patterns", "howto_topics"):
        assert counts(name) == stats[name], name
        assert all(r["count"]["low"] == r["count"]["high"] for r in tables[name]["rows"])
    assert counts("issue_types") == {
        "fault": stats["totals"]["faults"],
        "how-to question": stats["totals"]["howto"],
    }
    assert counts("specific") == {"yes": stats["specific"]["yes"], "no": stats["specific"]["no"]}


@pytest.fixture
def new_population(tmp_path) -> tuple[str, dict[str, dict]]:
    """40 labelled study issues (horovod, 2019) and 600 unlabelled DeepSpeed issues of
    2024 with predictions; returns the URL and the hidden truth of the new issues."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    rng = np.random.default_rng(5)
    store = Store(url)
    hidden = {}
    with store.session() as session:
        for i, row in enumerate(_truth(rng, 40)):
            session.add(_issue(i, "horovod", 2019))
            session.flush()
            session.add(_label(f"u{i:05d}", row))
        for i, row in enumerate(_truth(rng, 600), start=1000):
            uid = f"u{i:05d}"
            session.add(_issue(i, "deepspeed", 2024))
            session.flush()
            hidden[uid] = row
            for target, label in _predict(rng, row).items():
                session.add(
                    Prediction(
                        issue_uid=uid, model_id="m1", target=target, label=label, probability=0.8
                    )
                )
    store.close()
    return url, hidden


def test_without_a_sample_the_estimate_gives_the_bounds_labels_prove(runner, new_population):
    url, hidden = new_population
    found = _invoke(runner, "estimate", "--db", url, "--group", "current", "--no-quantification")
    assert found["population"] == {
        "filters": {"group": "current", "frameworks": found["population"]["filters"]["frameworks"]},
        "issues": 600,
        "labelled": 0,
        "unlabelled": 600,
        "sample": 0,
        "unpredicted": 0,
        "left_out": 0,
    }
    assert "deepspeed" in found["population"]["filters"]["frameworks"]
    faults = found["tables"]["issue_types"]["rows"]
    fault = next(r for r in faults if r["category"] == "fault")
    assert (fault["count"]["low"], fault["count"]["high"]) == (0, 600)
    assert "round create --for-estimate" in found["tables"]["issue_types"]["assumes"]


def test_a_sample_drawn_for_the_estimate_gives_intervals_around_the_truth(runner, new_population):
    url, hidden = new_population
    drawn = _invoke(
        runner,
        "round",
        "create",
        "--db",
        url,
        "--annotators",
        "alice",
        "--for-estimate",
        "--width",
        "0.2",
        "--by-prediction",
        "--group",
        "current",
        "--seed",
        "3",
    )
    # the size, computed here from the formula with the predictions' share of faults
    predicted_faults = 0
    store = Store(url)
    with store.session() as session:
        rows = session.scalars(select(Prediction).where(Prediction.target == "issue_type"))
        labels = [p.label for p in rows]
        predicted_faults = labels.count("fault") / len(labels)
    share = min(predicted_faults, 1 - predicted_faults, key=lambda s: abs(s - 0.5))
    n0 = 1.959963984540054**2 * share * (1 - share) / 0.1**2
    assert drawn["size"] == math.ceil(n0 / (1 + (n0 - 1) / 600))
    assert drawn["planning_share"] == pytest.approx(share)
    assert drawn["design"] == "prediction"
    assert sum(s["sample"] for s in drawn["strata"].values()) == drawn["size"]
    assert sum(s["frame"] for s in drawn["strata"].values()) == 600
    with store.session() as session:
        the_round = session.get(LabelingRound, drawn["round"])
        assert the_round.kind == "estimate"
        assert set(the_round.settings["estimate"]["stratum"]) == set(drawn["issues"])
        items = set(session.scalars(select(RoundItem.issue_uid)))
        assert items == set(drawn["issues"])
        for uid in drawn["issues"]:  # the annotators' work, adjudicated
            session.add(_label(uid, hidden[uid]))
        for i in range(5000, 5025):  # crawled since, not hydrated: no text, no prediction
            issue = _issue(i, "deepspeed", 2024)
            issue.title = issue.body = None
            session.add(issue)
    store.close()

    found = _invoke(runner, "estimate", "--db", url, "--group", "current")
    population = found["population"]
    assert (population["labelled"], population["sample"]) == (drawn["size"], drawn["size"])
    # neither in the sample's frame nor predictable: left out, and said
    assert (population["issues"], population["left_out"]) == (600, 25)
    assert population["unlabelled"] == 600 - drawn["size"]
    table = found["tables"]["issue_types"]
    assert table["estimator"].startswith("prediction-powered inference")
    assert "drawn at random" in table["assumes"]
    true_faults = sum(1 for row in hidden.values() if row["issue_type"] == "fault")
    fault = next(r for r in table["rows"] if r["category"] == "fault")
    assert fault["count"]["low"] <= true_faults <= fault["count"]["high"]
    stages = {r["category"]: r for r in found["tables"]["stages"]["rows"]}
    true_faults_rows = [r for r in hidden.values() if r["issue_type"] == "fault"]
    for stage in STAGES:
        truth = sum(1 for r in true_faults_rows if r["stage"] == stage) / len(true_faults_rows)
        assert stages[stage]["share"]["low"] <= truth <= stages[stage]["share"]["high"]
    assert found["tables"]["stages"]["faults"]["low"] <= true_faults


def test_estimate_refuses_an_unknown_group_and_a_bad_date(runner, new_population):
    url, _ = new_population
    result = runner.invoke(app, ["estimate", "--db", url, "--study", STUDY, "--group", "nope"])
    assert result.exit_code == 1
    assert "no framework group 'nope'" in result.output
    result = runner.invoke(app, ["estimate", "--db", url, "--study", STUDY, "--since", "May"])
    assert result.exit_code == 1
    assert "'May' is not a date" in result.output


# ---- the quantification estimator, with a real classifier ------------------------------
WORDS = {
    "package build & import": ["mpirun", "rendezvous", "hostfile", "launcher", "nccl", "port"],
    "communication setup": ["dataset", "loader", "shard", "tfrecord", "sampler", "batch"],
    "data and model preparation": ["loss", "gradient", "epoch", "optimizer", "nan", "diverge"],
    "how-to question": ["how", "configure", "example", "tutorial", "recommended", "should"],
}
NOISE = ["the", "with", "when", "using", "cluster", "gpu", "node", "run", "error", "job"]


def _text(rng: np.random.Generator, kind: str) -> str:
    """Words of the issue's class (a fifth of them from another class) and common words:
    the same class-conditional distribution in the study and the new population."""
    kinds = list(WORDS)
    words = []
    for _ in range(5):
        source = kind if rng.random() < 0.8 else kinds[rng.integers(len(kinds))]
        words.append(WORDS[source][rng.integers(6)])
    words += [NOISE[rng.integers(len(NOISE))] for _ in range(4)]
    rng.shuffle(words)
    return " ".join(words)


def _population(rng, n: int, faults: float, stages: list[float]) -> list[dict]:
    rows = []
    for _ in range(n):
        if rng.random() < faults:
            rows.append({"issue_type": "fault", "stage": STAGES[rng.choice(3, p=stages)]})
        else:
            rows.append(
                {"issue_type": "how-to question", "howto_topic": "environment configuration"}
            )
    return rows


def test_without_a_sample_the_classifier_errors_correct_the_counts(runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'shift.db'}"
    rng = np.random.default_rng(8)
    study = _population(rng, 300, 0.5, [0.2, 0.4, 0.4])
    new = _population(rng, 400, 0.7, [0.6, 0.2, 0.2])  # prior shift: other shares
    store = Store(url)
    with store.session() as session:
        for i, row in enumerate(study):
            issue = _issue(i, "horovod", 2019)
            issue.title = _text(rng, row.get("stage") or row["issue_type"])
            session.add(issue)
            session.flush()
            session.add(_label(issue.uid, row))
        for i, row in enumerate(new, start=1000):
            issue = _issue(i, "deepspeed", 2024)
            issue.title = _text(rng, row.get("stage") or row["issue_type"])
            session.add(issue)
    store.close()
    models = str(tmp_path / "models")
    for target in ("issue_type", "stage"):
        args = ["--db", url, "--study", STUDY, "--target", target]
        trained = runner.invoke(app, ["train", *args, "--folds", "0", "--out", models])
        assert trained.exit_code == 0, trained.output
        classified = runner.invoke(
            app, ["classify", "--db", url, "--target", target, "--models", models]
        )
        assert classified.exit_code == 0, classified.output

    found = _invoke(runner, "estimate", "--db", url, "--group", "current")
    types = found["tables"]["issue_types"]
    # every issue has the models' probabilities: the probabilistic variant (PACC)
    assert types["estimator"].startswith("probabilistic adjusted classify-and-count")
    assert found["tables"]["stages"]["estimator"] == types["estimator"]
    assert "prior shift" in types["assumes"]
    true_faults = sum(r["issue_type"] == "fault" for r in new)
    fault = next(r for r in types["rows"] if r["category"] == "fault")
    assert fault["count"]["low"] <= true_faults <= fault["count"]["high"]
    assert 0 < fault["count"]["high"] - fault["count"]["low"] < 120
    stages = {r["category"]: r for r in found["tables"]["stages"]["rows"]}
    faults = [r for r in new if r["issue_type"] == "fault"]
    for stage in STAGES:
        truth = sum(r["stage"] == stage for r in faults) / len(faults)
        assert stages[stage]["share"]["low"] <= truth <= stages[stage]["share"]["high"], stage
    # fix patterns: no single-label model, so the honest bounds
    assert found["tables"]["fix_patterns"]["estimator"] == "bounds from the labels alone"

    # predictions stored without probabilities: the labels' counts corrected (ACC)
    store = Store(url)
    with store.session() as session:
        session.execute(update(Prediction).values(probabilities={}))
    store.close()
    found = _invoke(runner, "estimate", "--db", url, "--group", "current", "--table", "stages")
    stages = found["tables"]["stages"]
    assert stages["estimator"].startswith("adjusted classify-and-count (ACC)")
    rows = {r["category"]: r for r in stages["rows"]}
    for stage in STAGES:
        truth = sum(r["stage"] == stage for r in faults) / len(faults)
        assert rows[stage]["share"]["low"] <= truth <= rows[stage]["share"]["high"], stage


# ---- then and now ---------------------------------------------------------------------
@pytest.fixture
def labelled_now(runner, new_population):
    url, hidden = new_population
    drawn = _invoke(
        runner,
        "round",
        "create",
        "--db",
        url,
        "--annotators",
        "a",
        "--for-estimate",
        "--size",
        "150",
        "--group",
        "current",
        "--seed",
        "2",
    )
    store = Store(url)
    with store.session() as session:
        for uid in drawn["issues"]:
            session.add(_label(uid, hidden[uid]))
    store.close()
    return url


def test_then_and_now_accounts_for_the_estimates_uncertainty(
    runner,
    labelled_db,
    labelled_now,
    tmp_path,
    browser,
):
    report = tmp_path / "then-now.html"
    found = _invoke(
        runner,
        "estimate",
        "--db",
        labelled_now,
        "--group",
        "current",
        "--then",
        labelled_db,
        "--report",
        str(report),
        "--no-quantification",
    )
    stats = _invoke(runner, "stats", "--db", labelled_db)
    now = _invoke(
        runner, "estimate", "--db", labelled_now, "--group", "current", "--no-quantification"
    )
    faults_then = stats["totals"]["faults"]
    stage_rows = {r["category"]: r for r in found["tables"]["stages"]["rows"]}
    now_rows = {r["category"]: r for r in now["tables"]["stages"]["rows"]}
    assert set(stage_rows) == set(stats["stages"]) | set(now_rows)
    for stage, count in stats["stages"].items():
        row = stage_rows[stage]
        p_then = count / faults_then
        assert row["then"]["estimate"] == pytest.approx(p_then, abs=1e-4)
        share = now_rows[stage]["share"]
        assert row["now"] == share
        d = share["estimate"] - p_then
        facing = share["estimate"] - share["low"] if d > 0 else share["high"] - share["estimate"]
        se = math.hypot(math.sqrt(p_then * (1 - p_then) / faults_then), facing / 1.959963984540054)
        assert row["difference"]["estimate"] == pytest.approx(d, abs=1e-4)
        assert row["p"] == pytest.approx(2 * norm.sf(abs(d) / se), abs=1e-4)
    ps = sorted(r["p"] for r in stage_rows.values())
    assert max(r["p_holm"] for r in stage_rows.values()) <= 1.0
    assert min(r["p_holm"] for r in stage_rows.values()) == pytest.approx(
        min(1.0, len(ps) * ps[0]), abs=1e-3
    )
    assert found["tables"]["stages"]["now_estimator"].startswith("prediction-powered")
    assert found["report"] == str(report)

    page = browser.new_page()
    page.goto(report.as_uri())
    sections = page.locator("section.table")
    assert sections.count() == len(found["tables"])
    widths = page.eval_on_selector_all("section.table img", "els => els.map(e => e.naturalWidth)")
    assert len(widths) == sum(1 for t in found["tables"].values() if t["rows"])
    assert all(w > 0 for w in widths)
    text = page.locator("#stages").inner_text()
    assert "prediction-powered inference" in text
    first = found["tables"]["stages"]["rows"][0]
    low, high = 100 * first["now"]["low"], 100 * first["now"]["high"]
    assert f"[{low:.1f}, {high:.1f}]" in text
    page.close()


def test_report_needs_then_and_then_needs_labels(runner, new_population, tmp_path):
    url, _ = new_population
    result = runner.invoke(
        app, ["estimate", "--db", url, "--study", STUDY, "--report", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 1
    assert "give --then STUDY_DB" in result.output
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(empty).close()
    result = runner.invoke(
        app, ["estimate", "--db", url, "--study", STUDY, "--then", empty, "--no-quantification"]
    )
    assert result.exit_code == 1
    assert "no final label to compare with" in result.output


def test_round_for_estimate_refuses_bad_widths_and_sizes(runner, new_population):
    url, _ = new_population
    base = ["round", "create", "--db", url, "--study", STUDY, "--annotators", "a"]
    for extra, message in (
        (["--width", "1.5"], "--width is an interval's width, between 0 and 1, not 1.5"),
        (["--size", "601"], "only 600 unlabelled issues with text (601 asked for)"),
        ([], "--size N or --width 0.05"),
        (["--group", "nope", "--size", "3"], "no framework group 'nope'"),
    ):
        result = runner.invoke(app, [*base, "--for-estimate", *extra])
        assert result.exit_code == 1, result.output
        assert message in result.output
    store = Store(url)
    with store.session() as session:  # nothing stored half-written
        assert session.scalar(select(func.count()).select_from(LabelingRound)) == 0
    store.close()


def test_diff_study_estimate_compares_with_the_estimates_intervals(
    runner, labelled_db, labelled_now
):
    args = [labelled_db, labelled_now, "--estimate", "--group", "current"]
    found = _invoke(runner, "diff-study", *args)
    direct = _invoke(
        runner, "estimate", "--db", labelled_now, "--group", "current", "--then", labelled_db
    )
    assert found == direct
    assert found["tables"]["stages"]["now_estimator"].startswith("prediction-powered")
    result = runner.invoke(app, ["diff-study", labelled_db, labelled_now, "--group", "current"])
    assert result.exit_code == 1
    assert "give --estimate too" in result.output
