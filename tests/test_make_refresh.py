"""`make refresh` end to end against the fake GitHub API on 127.0.0.1.

A made-up study (labelled issues with text) stands for the study's database; the fake
serves new DeepSpeed and ColossalAI issues of 2024 whose classes read like the study's.
The first run crawls, hydrates, trains, classifies, draws the estimate's round and writes
the then-and-now report with the quantification estimate; a rerun resumes (nothing is
crawled, trained or drawn twice); after the round is labelled the estimate is the
labelled-sample one. The report opens in headless Chromium with its intervals.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from issueminer.label.webapp.app import Settings
from issueminer.store import FinalLabel, Issue, LabelingRound, RoundItem, Store
from issueminer.taxonomy import load_taxonomy
from tests.fakes.github import FakeGitHub, make_issue
from tests.labeling_fixtures import app_client
from tests.test_estimate_cli import _issue, _label, _population, _text

REPO_ROOT = Path(__file__).resolve().parent.parent
ROUND = "estimate-2024-01-01"
LEAF = {  # a symptom of each stage of the made-up classes, for complete labels
    "package build & import": "import error",
    "communication setup": "setup failure",
    "data and model preparation": "attribute not found",
}


def _complete(row: dict) -> dict:
    """A label as an annotator saves it in the app: every field the study file requires."""
    if row["issue_type"] != "fault":
        return dict(row)
    leaf = LEAF[row["stage"]]
    return {
        "issue_type": "fault",
        "stage": row["stage"],
        "leaf_symptom": leaf,
        "fix_patterns": ["change hardware"],
    }


CURRENT = ("microsoft/DeepSpeed", "NVIDIA/Megatron-LM", "hpcaitech/ColossalAI", "ray-project/ray")


def _study(path: Path, rng: np.random.Generator) -> None:
    store = Store(f"sqlite:///{path}")
    with store.session() as session:
        for i, row in enumerate(_population(rng, 240, 0.5, [0.2, 0.4, 0.4])):
            issue = _issue(i, "horovod", 2019)
            issue.title = _text(rng, row.get("stage") or row["issue_type"])
            session.add(issue)
            session.flush()
            session.add(_label(issue.uid, row))
    store.close()


def _new_issues(rng: np.random.Generator) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """The fake's issues (every one admitted: a keyword, closed, no excluded label) and the
    hidden labels of each, by its URL."""
    issues: dict[str, list[dict]] = {repo: [] for repo in CURRENT}
    hidden = {}
    rows = _population(rng, 160, 0.7, [0.6, 0.2, 0.2])
    for number, row in enumerate(rows, start=1):
        repo = CURRENT[0] if number % 2 else CURRENT[2]
        title = "distributed " + _text(rng, row.get("stage") or row["issue_type"])
        created = f"2024-{1 + number % 12:02d}-{1 + number % 27:02d}T10:00:00Z"
        issues[repo].append(make_issue(repo, number, title, "see title", created, labels=["bug"]))
        hidden[f"https://github.com/{repo}/issues/{number}".lower()] = row  # stored lower-case
    return issues, hidden


def _make(tmp_path: Path, api: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ISSUEMINER_GITHUB_API": api}
    env.pop("ISSUEMINER_DB", None)
    variables = [
        f"STUDY_DB={tmp_path / 'study.db'}",
        f"REFRESH_DB={tmp_path / 'refresh.db'}",
        f"REFRESH_DIR={tmp_path / 'refresh'}",
        "SINCE=2024-01-01",
        "WIDTH=0.3",
        "ANNOTATORS=alice,bob",
        "REFRESH_TARGETS=issue_type stage",
    ]
    return subprocess.run(
        ["make", "-s", "refresh", *variables],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _counts(url: str) -> tuple[int, int, list[str]]:
    store = Store(url)
    with store.session() as session:
        issues = session.scalar(select(func.count()).select_from(Issue))
        items = session.scalar(select(func.count()).select_from(RoundItem))
        rounds = list(session.scalars(select(LabelingRound.name)))
    store.close()
    return issues, items, rounds


def test_make_refresh_runs_from_crawl_to_report_and_resumes(tmp_path, browser) -> None:
    rng = np.random.default_rng(4)
    _study(tmp_path / "study.db", rng)
    issues, hidden = _new_issues(rng)
    url = f"sqlite:///{tmp_path / 'refresh.db'}"
    report = tmp_path / "refresh" / "then-now.html"
    with FakeGitHub(issues) as gh:
        first = _make(tmp_path, gh.url)
        assert first.returncode == 0, first.stderr + first.stdout
        after_first = _counts(url)
        models = sorted((tmp_path / "refresh" / "models").iterdir())
        second = _make(tmp_path, gh.url)
        assert second.returncode == 0, second.stderr + second.stdout
    assert after_first[0] == 240 + 160  # the study's copy and every new issue
    assert after_first[2] == [ROUND]
    assert _counts(url) == after_first  # the rerun crawled and drew nothing new
    assert sorted((tmp_path / "refresh" / "models").iterdir()) == models  # nor trained
    assert [p.name.split("-")[0] for p in models] == ["issue_type", "stage"]
    assert "adjusted classify-and-count" in report.read_text()

    # the round labelled through the annotation app by both annotators, who agree
    store = Store(url)
    with store.session() as session:
        drawn = session.execute(
            select(Issue.uid, Issue.url).join(RoundItem, RoundItem.issue_uid == Issue.uid)
        ).all()
    taxonomy = load_taxonomy("distributed-training")
    for annotator in ("alice", "bob"):
        app = app_client(Settings(store, taxonomy, round=ROUND, annotator=annotator))
        for uid, issue_url in drawn:
            fields = _complete(hidden[issue_url.lower()])
            saved = app.post("/api/save", json={"issue": uid, "fields": fields})
            assert saved.status_code == 200 and saved.json()["ok"], saved.text
    store.close()
    with FakeGitHub(issues) as gh:
        third = _make(tmp_path, gh.url)
    assert third.returncode == 0, third.stderr + third.stdout
    store = Store(url)
    with store.session() as session:  # the rerun made the agreed labels final
        labelled = session.scalar(select(func.count()).select_from(FinalLabel))
    store.close()
    assert labelled == 240 + len(drawn) > 240
    text = report.read_text()
    assert "prediction-powered inference" in text

    page = browser.new_page()
    page.goto(report.as_uri())
    assert page.locator("section.table").count() >= 5
    widths = page.eval_on_selector_all("section.table img", "els => els.map(e => e.naturalWidth)")
    assert widths and all(w > 0 for w in widths)
    stages = page.locator("#stages").inner_text()
    assert "[" in stages and "prediction-powered inference" in stages
    page.close()
