"""`make crawl` end to end: both crawlers, the study's criteria, fake APIs on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy import select

from issueminer.store import Issue, Reply, Store
from tests import test_crawl_github, test_crawl_stackoverflow
from tests.fakes.github import FakeGitHub, make_issue
from tests.fakes.stackexchange import FakeStackExchange

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_make_crawl_collects_exactly_the_admitted_issues(tmp_path) -> None:
    questions, answers, comments, so_expected = test_crawl_stackoverflow.corpus(n_per_tag=60)
    issues, gh_comments, gh_expected = test_crawl_github.corpus(n=40)
    # the study's other two repositories: one issue each that the criteria admit, one not
    for repo in ("tensorflow/tensorflow", "keras-team/keras"):
        issues[repo] = [
            make_issue(
                repo, 1, "MirroredStrategy with multiple GPUs hangs", "x", "2021-01-01T00:00:00Z"
            ),
            make_issue(repo, 2, "Docs typo", "x", "2021-01-02T00:00:00Z"),
        ]
        gh_expected.add((repo, 1))
    db = tmp_path / "crawl.db"
    with (
        FakeStackExchange(questions, answers, comments) as se,
        FakeGitHub(issues, gh_comments) as gh,
    ):
        env = {
            **os.environ,
            "ISSUEMINER_DB": f"sqlite:///{db}",
            "ISSUEMINER_STACKEXCHANGE_API": se.url,
            "ISSUEMINER_GITHUB_API": gh.url,
        }
        result = subprocess.run(
            ["make", "-s", "crawl"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr
    assert "stackoverflow [done]" in result.stdout and "github [done]" in result.stdout
    store = Store(f"sqlite:///{db}")
    with store.session() as session:
        rows = session.execute(select(Issue.source, Issue.origin, Issue.native_id)).all()
        replies = session.scalar(select(Reply.id).limit(1))
    so = {int(n) for source, _, n in rows if source == "stackoverflow"}
    github = {(o.removeprefix("https://github.com/"), int(n)) for s, o, n in rows if s == "github"}
    assert so == so_expected
    assert github == gh_expected
    assert replies is not None
