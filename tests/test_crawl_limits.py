"""`crawl status` says what each API had left (issue 17, point 7): GitHub's core and search
limits apart, the Stack Exchange quota a throttled run ended with, and hydrate's limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from issueminer.cli.main import app
from issueminer.store import Store
from tests.fakes.github import FakeGitHub
from tests.fakes.stackexchange import FakeStackExchange, make_answer, make_question
from tests.test_crawl_github import corpus as github_corpus
from tests.test_crawl_github import crawl as crawl_github


def _status(runner, db: str) -> tuple[list[dict], str]:
    runs = json.loads(
        runner.invoke(app, ["crawl", "status", "--db", db, "--format", "json"]).stdout
    )
    return runs, runner.invoke(app, ["crawl", "status", "--db", db]).output


def test_github_run_keeps_core_and_search_limits_apart(tmp_path, taxonomy, runner) -> None:
    db = str(tmp_path / "gh.db")
    issues, comments, _ = github_corpus(n=30)
    with FakeGitHub(issues, comments, search_cap=40) as fake:
        crawl_github(Store(f"sqlite:///{db}"), fake, taxonomy)
        core, search = fake.remaining("core"), fake.remaining("search")
    runs, text = _status(runner, db)
    assert core != search  # one count for both would match only one of them
    assert runs[0]["checkpoint"]["limits"] == {"core": core, "search": search}
    assert f"limit left core {core}, search {search}" in text


def test_a_throttled_run_shows_the_quota_spent(tmp_path, runner) -> None:
    questions = [
        make_question(q, "Horovod hangs", "<p>x</p>", ["horovod"], 1_600_000_000 + q)
        for q in range(1, 300)
    ]
    db = str(tmp_path / "so.db")
    with FakeStackExchange(questions, quota=6) as fake:
        stopped = subprocess.run(
            [sys.executable, "-m", "issueminer.cli", "crawl", "stackoverflow", "--db", db]
            + ["--api-url", fake.url],
            capture_output=True,
            text=True,
        )
    assert stopped.returncode == 1 and "quota spent" in stopped.stderr
    runs, text = _status(runner, db)
    assert runs[0]["status"] == "quota" and runs[0]["checkpoint"]["quota_remaining"] == 0
    assert "[quota]" in text and "limit left 0" in text


def test_hydrate_runs_show_their_limit(tmp_path, runner) -> None:
    db = str(tmp_path / "h.db")
    issues = tmp_path / "issues.jsonl"
    issues.write_text(json.dumps({"url": "https://stackoverflow.com/questions/77"}) + "\n")
    assert runner.invoke(app, ["import", "issues", str(issues), "--db", db]).exit_code == 0
    question = make_question(77, "Horovod hangs", "<p>x</p>", ["horovod"], 1_600_000_000)
    with FakeStackExchange([question], [make_answer(771, 77, "<p>a</p>", True)]) as fake:
        env = {**os.environ, "ISSUEMINER_STACKEXCHANGE_API": fake.url}
        done = subprocess.run(
            [sys.executable, "-m", "issueminer.cli", "crawl", "hydrate", "--db", db]
            + ["--source", "stackoverflow"],
            capture_output=True,
            text=True,
            env=env,
        )
        left = fake.quota_remaining
    assert done.returncode == 0, done.stderr
    runs, text = _status(runner, db)
    (run,) = [r for r in runs if r["source"] == "hydrate-stackoverflow"]
    assert run["checkpoint"]["quota_remaining"] == left
    assert f"hydrate-stackoverflow [done] seen 1 stored 1 limit left {left}" in text
